"""Backbones: every family builds, splits into named blocks, freezes exactly, trains and reloads."""

from __future__ import annotations

import numpy as np
import pytest
import keras

import keras_transfer as kt
from keras_transfer.backbones.blocks import _leaf_layers

# The smallest member of each keras.applications family: the full train/save/load round trip.
REPRESENTATIVES = [
    "vgg16", "resnet50", "resnet50_v2", "mobilenet", "mobilenet_v2", "mobilenet_v3_small",
    "mobilenet_v3_large", "inception_v3", "inception_resnet_v2", "xception", "densenet121",
    "efficientnet_b0", "efficientnet_v2_b0", "convnext_tiny", "nasnet_mobile",
]
# Members whose random init alone takes long (tens of millions of parameters or more).
LARGE = {"convnext_base", "convnext_large", "convnext_xlarge", "efficientnet_v2_l",
         "efficientnet_v2_m", "nasnet_large", "efficientnet_b7", "efficientnet_b6",
         "resnet152", "resnet152_v2", "vgg19", "efficientnet_b5"}


def small_shape(name: str) -> tuple[int, int, int]:
    size = max(32, kt.get_spec(name).min_size)
    return (size, size, 3)


def images(n: int, shape) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (n, *shape)).astype("float32")


def paths(variables) -> set[str]:
    return {v.path for v in variables}


def test_every_family_is_registered():
    names = set(kt.list_backbones())
    expected = {
        "vgg16", "vgg19", "resnet50", "resnet101", "resnet152", "resnet50_v2", "resnet101_v2",
        "resnet152_v2", "mobilenet", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large",
        "inception_v3", "inception_resnet_v2", "xception", "densenet121", "densenet169",
        "densenet201", "nasnet_mobile", "nasnet_large", "efficientnet_v2_s", "efficientnet_v2_m",
        "efficientnet_v2_l",
        *(f"efficientnet_b{i}" for i in range(8)),
        *(f"efficientnet_v2_b{i}" for i in range(4)),
        *(f"convnext_{s}" for s in ("tiny", "small", "base", "large", "xlarge")),
    }
    assert expected <= names


@pytest.mark.parametrize("name", REPRESENTATIVES)
def test_family_freeze_fit_save_reload(name, tmp_path):
    shape = small_shape(name)
    model = kt.build_image_classifier(name, num_classes=3, weights=None, input_shape=shape)
    blocks = kt.blocks_of(model)
    names = [b.name for b in blocks]
    middle = names[len(names) // 2]
    kt.freeze(model, up_to=middle)
    # Eagerly: tracing the train and predict graphs of the large families costs more than the
    # two steps themselves, and the freezing semantics checked here are the same in a graph.
    model.compile("adam", "sparse_categorical_crossentropy", run_eagerly=True)

    # Exactly the non-BatchNorm weights of the blocks after `middle`, plus the head, train.
    later = blocks[names.index(middle) + 1 :]
    expected = {
        w.path
        for block in later
        for layer in block.layers
        if not isinstance(layer, keras.layers.BatchNormalization)
        for w in layer.weights
        if w.trainable or layer.trainable  # sublayers of composite layers carry their own flag
    }
    expected = {w.path for w in model.trainable_weights} & expected | {
        w.path for w in model.get_layer("predictions").weights
    }
    trainable = paths(model.trainable_weights)
    assert trainable == expected
    earlier = {w.path for b in blocks[: names.index(middle) + 1] for l in b.layers for w in l.weights}
    assert not trainable & earlier
    assert all(
        not w.trainable
        for layer in model.get_layer(name)._flatten_layers()
        if isinstance(layer, keras.layers.BatchNormalization)
        for w in layer.weights
    )

    x, y = images(8, shape), np.arange(8) % 3
    before = {w.path: np.array(w) for w in model.weights}
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    changed = {w.path for w in model.weights if not np.array_equal(before[w.path], np.array(w))}
    assert changed <= trainable, "frozen weights (incl. BatchNorm statistics) must not change"
    assert model.get_layer("predictions").bias.path in changed  # the head trained

    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x, training=False)),
                               keras.ops.convert_to_numpy(loaded(x, training=False)),
                               rtol=1e-5, atol=1e-6)
    # Variable paths of nested layers can differ after loading: compare by position.
    trainable_mask = lambda m: [id(w) in {id(t) for t in m.trainable_weights} for w in m.weights]  # noqa: E731
    assert trainable_mask(loaded) == trainable_mask(model)
    assert [b.name for b in kt.blocks_of(loaded)] == names


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.slow) if n in LARGE else n
        for n in kt.list_backbones("keras.applications")
        if n not in REPRESENTATIVES
    ],
)
def test_every_backbone_splits_into_its_declared_blocks(name):
    backbone = kt.build_backbone(name, weights=None, input_shape=small_shape(name))
    spec = kt.get_spec(name)
    blocks = kt.blocks_of(backbone)
    names = [b.name for b in blocks]
    assert names[0] == "stem" and set(names) <= set(spec.block_names())
    assert [n for n in spec.block_names() if n in names] == names  # declared order
    declared = [n for n, end in spec.blocks if not end.optional]
    assert set(declared) <= set(names)
    # Every layer sits in exactly one block, in graph order.
    assert [l for b in blocks for l in b.layers] == _leaf_layers(backbone)
    # Feature maps never grow from one block to the next.
    sizes = [b.output_layer.output.shape[1] for b in blocks if len(b.output_layer.output.shape) == 4]
    assert sizes == sorted(sizes, reverse=True)


def test_freeze_unfreeze_set_trainable_semantics():
    model = kt.build_image_classifier("vgg16", num_classes=2, weights=None,
                                      input_shape=(32, 32, 3))
    status = lambda: {r["block"]: r["status"] for r in kt.describe(model, print_fn=None)}  # noqa: E731
    assert set(status().values()) == {"-", "frozen"}  # the default: feature extraction
    kt.unfreeze(model, last=2)
    assert status() == {"stem": "-", "block1": "frozen", "block2": "frozen", "block3": "frozen",
                        "block4": "trainable", "block5": "trainable"}
    kt.freeze(model, up_to="block2")
    assert [status()[f"block{i}"] for i in range(1, 6)] == ["frozen"] * 2 + ["trainable"] * 3
    kt.set_trainable(model, {"block3": False, "block1": True})
    assert [status()[f"block{i}"] for i in range(1, 6)] == [
        "trainable", "frozen", "frozen", "trainable", "trainable"]
    kt.freeze(model)
    assert model.trainable_weights == model.get_layer("predictions").trainable_weights
    kt.unfreeze(model)
    assert len(model.trainable_weights) == 2 * 13 + 2


def test_block_errors_name_the_blocks():
    model = kt.build_image_classifier("vgg16", num_classes=2, weights=None,
                                      input_shape=(32, 32, 3))
    with pytest.raises(ValueError, match="block9.*block5"):
        kt.freeze(model, up_to="block9")
    with pytest.raises(ValueError, match="blocks"):
        kt.set_trainable(model, {"nope": True})
    with pytest.raises(ValueError, match="6 blocks"):
        kt.unfreeze(model, last=7)


def test_batchnorm_stays_in_inference_mode_unless_asked():
    shape = (32, 32, 3)
    x, y = images(8, shape), np.arange(8) % 2
    for train_bn in (False, True):
        model = kt.build_image_classifier("mobilenet_v2", num_classes=2, weights=None,
                                          input_shape=shape, trainable_blocks="all",
                                          train_batchnorm=train_bn)
        model.compile("adam", "sparse_categorical_crossentropy", run_eagerly=True)  # no tracing
        bn = model.get_layer("mobilenet_v2").get_layer("block_16_project_BN")
        before = [np.array(w) for w in bn.weights]  # gamma, beta, moving mean, moving variance
        model.fit(x, y, batch_size=4, epochs=1, verbose=0)
        moved = [not np.array_equal(b, np.array(w)) for b, w in zip(before, bn.weights)]
        assert all(moved) if train_bn else not any(moved)


def test_preprocessing_matches_keras_applications():
    from keras.applications import densenet, mobilenet_v2, vgg16

    x = images(2, (8, 8, 3))
    for mode, reference in (("caffe", vgg16), ("tf", mobilenet_v2), ("torch", densenet)):
        ours = np.array(kt.ImagePreprocessing(mode)(x))
        np.testing.assert_allclose(ours, reference.preprocess_input(x.copy()), rtol=1e-5, atol=1e-4)


def test_local_weights_file_reproduces_outputs(tmp_path):
    shape = (32, 32, 3)
    source = kt.build_backbone("resnet50", weights=None, input_shape=shape)
    path = tmp_path / "resnet50.weights.h5"
    source.save_weights(path)
    fresh = kt.build_backbone("resnet50", weights=str(path), input_shape=shape)
    x = images(2, shape)
    np.testing.assert_allclose(source.predict(x, verbose=0), fresh.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)


def test_keras_applications_h5_file_loads(tmp_path):
    """A keras.applications '.h5' weights file (legacy format) loads through weights=path."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    shape = (32, 32, 3)
    reference = keras.applications.VGG16(include_top=False, weights=None, input_shape=shape)
    path = tmp_path / "vgg16_notop.h5"
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, reference)
    ours = kt.build_backbone("vgg16", weights=str(path), input_shape=shape)
    x = images(2, shape)
    from keras.applications.vgg16 import preprocess_input

    np.testing.assert_allclose(ours.predict(x, verbose=0),
                               reference.predict(preprocess_input(x.copy()), verbose=0),
                               rtol=1e-4, atol=1e-4)


def test_imagenet_without_network_gives_clear_error(offline):
    with pytest.raises(kt.WeightsUnavailableError) as info:
        kt.build_backbone("mobilenet_v2", weights="imagenet", input_shape=(96, 96, 3))
    message = str(info.value)
    assert "unreachable" in message and "weights=None" in message and ".weights.h5" in message


def test_bad_arguments_are_named():
    with pytest.raises(kt.UnknownBackboneError, match="resnet50"):
        kt.build_backbone("resnet5O", weights=None)
    with pytest.raises(ValueError, match="at least 75"):
        kt.build_backbone("inception_v3", weights=None, input_shape=(32, 32, 3))
    with pytest.raises(kt.WeightsUnavailableError, match="no such file"):
        kt.build_backbone("vgg16", weights="/nonexistent/w.weights.h5", input_shape=(32, 32, 3))
    with pytest.raises(ValueError, match="num_classes"):
        kt.build_image_classifier("vgg16", num_classes=0, weights=None, input_shape=(32, 32, 3))


@pytest.mark.parametrize("task,targets", [("multi_label", "multi"), ("regression", "real")])
def test_multi_label_and_regression_heads(task, targets):
    shape = (32, 32, 3)
    model = kt.build_image_classifier("mobilenet_v2", num_classes=4, task=task, weights=None,
                                      input_shape=shape, hidden_units=(16,), pooling="max")
    x = images(8, shape)
    rng = np.random.default_rng(1)
    y = (rng.uniform(size=(8, 4)) > 0.5).astype("float32") if targets == "multi" else rng.normal(
        size=(8, 4)).astype("float32")
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    out = model.predict(x, verbose=0)
    assert out.shape == (8, 4)
    if task == "multi_label":
        assert ((out >= 0) & (out <= 1)).all() and not np.allclose(out.sum(1), 1.0)


def test_fit_accepts_tf_data_and_no_lambda_layers():
    import tensorflow as tf

    shape = (32, 32, 3)
    model = kt.build_image_classifier("efficientnet_b0", num_classes=2, weights=None,
                                      input_shape=shape, trainable_blocks=1)
    data = tf.data.Dataset.from_tensor_slices((images(8, shape), np.arange(8) % 2)).batch(4)
    model.fit(data, epochs=1, verbose=0)
    every = [l for l in model._flatten_layers()]
    assert not any(isinstance(l, keras.layers.Lambda) for l in every)


def test_keras_hub_preset_directory(tmp_path):
    """Any keras-hub image backbone saved as a local preset: blocks from its feature pyramid."""
    keras_hub = pytest.importorskip("keras_hub")
    hub_backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64, 64, 64],
        stackwise_num_blocks=[1, 1, 1], stackwise_num_strides=[1, 2, 2], block_type="basic_block",
    )
    preset = tmp_path / "tiny_resnet"
    hub_backbone.save_to_preset(str(preset))
    model = kt.build_image_classifier(str(preset), num_classes=2, input_shape=(32, 32, 3),
                                      trainable_blocks=1)
    names = [b.name for b in kt.blocks_of(model)]
    assert names[0] == "stem" and len(names) >= 3
    x = images(4, (32, 32, 3))
    # weights="imagenet" for a preset means the preset's own weights: identical features.
    np.testing.assert_allclose(
        kt.find_backbone(model)[0].predict(x, verbose=0),
        hub_backbone.predict(x / 255.0, verbose=0), rtol=1e-4, atol=1e-4)
    model.fit(x, np.array([0, 1, 0, 1]), epochs=1, verbose=0)
    path = tmp_path / "hub.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(model.predict(x, verbose=0), loaded.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    assert [b.name for b in kt.blocks_of(loaded)] == names
