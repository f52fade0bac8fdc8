"""Recipes: cached feature extraction trains only the head; staged fine-tuning trains the right blocks."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import keras_transfer as kt
from keras_transfer.recipes import extract_features, feature_extraction, fine_tune, split_at
from keras_transfer.recipes import features as features_module

SHAPE = (32, 32, 3)


def dataset(n=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (n, *SHAPE)).astype("float32")
    y = (x[..., 0].mean(axis=(1, 2)) > 127).astype("int32")
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(8)


def snapshot(model):
    return {w.path: np.array(w) for w in model.weights}


def changed(model, before):
    return {w.path for w in model.weights if not np.array_equal(before[w.path], np.array(w))}


def test_split_at_shares_the_head_weights():
    model = kt.build_image_classifier("mobilenet_v2", 2, weights=None, input_shape=SHAPE,
                                      hidden_units=(8,))
    features, head = split_at(model)
    x = np.random.default_rng(0).uniform(0, 255, (3, *SHAPE)).astype("float32")
    np.testing.assert_allclose(head(features(x)), model(x), rtol=1e-5, atol=1e-6)
    assert {w.path for w in head.weights} == {
        w.path for name in ("hidden1", "predictions") for w in model.get_layer(name).weights}


def test_feature_extraction_trains_only_the_head():
    model = kt.build_image_classifier("mobilenet_v2", 2, weights=None, input_shape=SHAPE,
                                      trainable_blocks="all")
    before = snapshot(model)
    history = feature_extraction(model, dataset(), dataset(8, seed=1), epochs=3, verbose=0)
    head = {w.path for w in model.get_layer("predictions").weights}
    assert changed(model, before) == head
    assert len(history.series("loss")) == 3 and len(history.series("val_loss")) == 3
    assert model.trainable_weights == model.get_layer("predictions").trainable_weights


def test_feature_pass_progress_bar_follows_verbose(capsys):
    model = kt.build_image_classifier("vgg16", 2, weights=None, input_shape=(32, 32, 3))
    data = tf.data.Dataset.from_tensor_slices(
        (np.zeros((4, 32, 32, 3), "float32"), [0, 1, 0, 1])).batch(2)
    feature_extraction(model, data, epochs=1, verbose=0, cache=None)
    assert "train features" not in capsys.readouterr().err
    extract_features(split_at(model)[0], data, cache=None, description="train features")
    assert "train features" in capsys.readouterr().err  # the tqdm bar, on by default


def test_feature_cache_hits_and_never_goes_stale(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_TRANSFER_CACHE", str(tmp_path))
    model = kt.build_image_classifier("mobilenet_v2", 2, weights=None, input_shape=SHAPE)
    features, _ = split_at(model)
    calls = []
    original = features.predict_on_batch
    monkeypatch.setattr(features, "predict_on_batch", lambda x: calls.append(1) or original(x))
    for cache in ("memory", "disk"):
        features_module.clear_memory_cache()
        calls.clear()
        first = extract_features(features, dataset(), cache=cache)
        second = extract_features(features, dataset(), cache=cache)
        assert len(calls) == 2  # two batches computed once, then served from the cache
        np.testing.assert_array_equal(first[0], second[0])
        other = extract_features(features, dataset(seed=3), cache=cache)  # other pixels
        assert len(calls) == 4 and not np.array_equal(other[0], first[0])
    assert list(tmp_path.glob("features/*.npz"))
    layer = model.get_layer("mobilenet_v2").get_layer("Conv1")
    layer.kernel.assign(layer.kernel * 2.0)  # a changed model must not reuse features
    third = extract_features(features, dataset(), cache="memory")
    assert len(calls) == 6 and not np.array_equal(third[0], first[0])


def test_fine_tune_trains_only_the_unfrozen_blocks(tmp_path):
    model = kt.build_image_classifier("mobilenet_v2", 2, weights=None, input_shape=SHAPE)
    blocks = kt.blocks_of(model)
    before = snapshot(model)
    history = fine_tune(model, dataset(), dataset(8, seed=1), head_epochs=2, epochs=2,
                        unfreeze_blocks=2, run_dir=tmp_path / "run", verbose=0)
    assert [name for name, _ in history.stages] == ["head", "fine_tune"]
    moved = changed(model, before)
    frozen = {w.path for b in blocks[:-2] for l in b.layers for w in l.weights}
    unfrozen = {w.path for b in blocks[-2:] for l in b.layers for w in l.weights
                if "BN" not in l.name and "bn" not in l.name}
    assert not moved & frozen
    assert moved & unfrozen
    assert model.get_layer("predictions").kernel.path in moved
    assert (tmp_path / "run" / "best.weights.h5").exists()
    assert (tmp_path / "run" / "tensorboard").is_dir()


def test_feature_extraction_rejects_bad_cache_option():
    model = kt.build_image_classifier("mobilenet_v2", 2, weights=None, input_shape=SHAPE)
    with pytest.raises(ValueError, match="cache"):
        feature_extraction(model, dataset(), cache="ram", verbose=0)
