"""EfficientNet-Lite0 through `build_backbone`: real ImageNet weights, preprocessing inside."""

import numpy as np
import pytest

import keras_transfer as kt


@pytest.mark.slow
def test_lite0_backbone_matches_the_converted_preset_and_knows_a_cat():
    keras_hub = pytest.importorskip("keras_hub")
    skimage_data = pytest.importorskip("skimage.data")
    import tensorflow as tf

    from keras_transfer.weights.assets import efficientnet_lite0_preset

    classifier = keras_hub.models.ImageClassifier.from_preset(str(efficientnet_lite0_preset()))
    backbone = kt.build_backbone("efficientnet_lite0", input_shape=(224, 224, 3))
    images = np.stack([
        tf.image.resize(skimage_data.chelsea(), (224, 224)).numpy(),
        tf.image.resize(skimage_data.coffee(), (224, 224)).numpy(),
    ]).astype("float32")
    # Our wrapper takes raw pixels; the preset's own head on our features gives ImageNet classes.
    features = backbone.predict(images, verbose=0).mean(axis=(1, 2))
    dense = classifier.get_layer("predictions")
    logits = features @ np.array(dense.kernel) + np.array(dense.bias)
    top1 = logits.argmax(axis=1)
    assert 281 <= top1[0] <= 285  # a cat
    assert top1[1] in (967, 968)  # espresso / cup
    names = [b.name for b in kt.blocks_of(backbone)]
    assert names == ["stem"] + [f"block{i}" for i in range(1, 8)] + ["top"]


def test_lite0_random_init_needs_no_assets():
    backbone = kt.build_backbone("efficientnet_lite0", weights=None, input_shape=(64, 64, 3))
    assert backbone.output_shape == (None, 2, 2, 1280)
    assert kt.get_spec("efficientnet_lite0").has_offline_weights
