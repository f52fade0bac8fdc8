"""The tuner: a tiny offline search, re-running its best config, and the shared feature cache."""

from __future__ import annotations

import dataclasses
import json
import sys
import types
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from keras_transfer import BackboneSpec, BlockEnd, register_backbone
from keras_transfer.commands.cli import main
from keras_transfer.errors import BadInputError
from keras_transfer.commands.image_job import ImageJobConfig
from keras_transfer.tuning import (
    ImageTrainer,
    ModelTrainer,
    SearchSpace,
    tune,
)

TINY = "tiny_tuning_test"


def _tiny_core(input_tensor, weights=None):
    """A two-block random-weight conv net, so trials (and their tracing) take seconds."""
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu",
                            name="block1_conv")(input_tensor)
    x = keras.layers.BatchNormalization(name="block1_bn")(x)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu",
                            name="block2_conv")(x)
    return types.SimpleNamespace(output=x)  # all build_backbone reads of a keras.applications model


@pytest.fixture(scope="module")
def tiny_backbone():
    from keras_transfer.backbones.registry import _REGISTRY

    register_backbone(BackboneSpec(
        name=TINY, family="tiny", source="keras.applications", build=_tiny_core,
        preprocessing="tf",
        blocks=(("block1", BlockEnd(r"^block1_")), ("block2", BlockEnd(r"^block2_"))),
        default_size=32, min_size=8))
    yield TINY
    _REGISTRY.pop(TINY, None)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """Three classes by overall brightness, overlapping so that settings change the score."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for c, name in enumerate(("dark", "mid", "bright")):
        (root / name).mkdir()
        for i in range(24):
            level = 45 * c + rng.uniform(0, 110)
            pixels = np.clip(level + rng.normal(0, 40, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


@pytest.fixture
def base(image_folder, tiny_backbone):
    return ImageJobConfig(dataset=str(image_folder), backbone=tiny_backbone, weights=None,
                          image_size=32, batch_size=8, validation_split=0.25, test_split=0.2,
                          augment=False)


@pytest.mark.slow  # a 3-trial search, then a training run of the best config
def test_cli_search_then_train_reruns_the_best_config(base, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # train writes saved_models/ and runs/ here
    # Exporting is test_jobs' concern; here it would only add SavedModel/TFLite conversion time.
    def export_report_only(model, directory, **kwargs):  # the job's report, not the model
        Path(directory).mkdir(parents=True, exist_ok=True)
        kwargs["extra_files"](Path(directory), {})
        return {}

    # `keras_transfer.export` the attribute is `kt.export`; patch the subpackage the job imports.
    monkeypatch.setattr(sys.modules["keras_transfer.export"], "export", export_report_only)
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"learning_rate": [0.003, 0.05], "dropout": [0.0, 0.3],
                                 "hidden_units": [0, 16], "recipes": ["feature_extraction"]}))
    out = tmp_path / "search"
    assert main(["tune", "--dataset", base.dataset, "--backbone", TINY, "--weights", "none",
                 "--image-size", "32", "--batch-size", "8", "--validation-split", "0.25",
                 "--no-augment", "--space", str(space), "--head-epochs", "5",
                 "--algorithm", "random", "--max-trials", "3", "--output-dir", str(out)]) == 0
    assert "keras-transfer train --config" in capsys.readouterr().out
    for name in ("best_config.json", "trials.csv", "tuning.json", "search.png"):
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "tuning.json").read_text())
    assert len(summary["rows"]) == 3
    scores = [row["score"] for row in summary["rows"]]
    assert summary["best_score"] == max(scores)
    assert len({row["learning_rate"] for row in summary["rows"]}) == 3
    # Three trials, one frozen configuration: the backbone ran over the data once.
    assert summary["feature_store"] == {"frozen_configurations": 1, "computations": 1,
                                        "reuses": 2}
    best = json.loads((out / "best_config.json").read_text())
    assert best["epochs"] == 0 and 1 <= best["head_epochs"] <= 5  # epochs kept by early stopping

    # The saved config is a `train` config; re-running it reproduces the trial.
    assert main(["train", "--config", str(out / "best_config.json")]) == 0
    job_dir = tmp_path / "saved_models" / f"{Path(base.dataset).name}_{TINY}"
    report = json.loads((job_dir / "report.json").read_text())
    assert report["validation"]["accuracy"] == pytest.approx(summary["best_score"], abs=1e-6)
    trial_curve = summary["best_history"]["feature_extraction"]["val_loss"][:best["head_epochs"]]
    np.testing.assert_allclose(report["history"]["feature_extraction"]["val_loss"], trial_curve,
                               rtol=1e-4)
    assert report["test"]["schema"] == "keras_transfer.evaluation/1"
    assert (job_dir / "reliability.png").exists()


def test_fine_tune_trial_reruns_from_its_config(base, monkeypatch):
    from keras_transfer import recipes

    calls = []
    real = recipes.extract_features
    monkeypatch.setattr(recipes, "extract_features",
                        lambda *a, **k: calls.append(k["description"]) or real(*a, **k))
    config = dataclasses.replace(base, head_epochs=2, epochs=1, unfreeze_blocks=1,
                                 learning_rate=0.01, hidden_units=(8,),
                                 fine_tune_learning_rate=1e-3)
    first = ImageTrainer(base, early_stopping=None).train(config)
    assert calls == ["train features", "validation features"]
    assert list(first.history) == ["feature_extraction", "fine_tune"]
    # Re-run from its config with a fresh store (features computed anew): the same trial.
    again = ImageTrainer(base, early_stopping=None).train(first.config)
    assert len(calls) == 4
    assert again.score == pytest.approx(first.score, abs=1e-6)
    np.testing.assert_allclose(again.history["fine_tune"]["val_loss"],
                               first.history["fine_tune"]["val_loss"], rtol=1e-4)


def test_search_space_maps_trials_onto_train_configs():
    import keras_tuner

    space = SearchSpace(recipes=("feature_extraction", "fine_tune"), unfreeze_blocks=(2,),
                        hidden_units=(0, 32), fine_tune_epochs=3)
    hp = keras_tuner.HyperParameters()
    values = space.declare(hp)
    assert set(hp.values) >= {"recipe", "learning_rate", "dropout", "hidden_units"}
    config = space.apply({**values, "recipe": "fine_tune", "hidden_units": 32,
                          "unfreeze_blocks": 2, "fine_tune_learning_rate": 1e-4})
    assert (config.epochs, config.unfreeze_blocks, config.hidden_units) == (3, 2, (32,))
    config = space.apply({**values, "recipe": "feature_extraction", "hidden_units": 0})
    assert (config.epochs, config.unfreeze_blocks, config.hidden_units) == (0, 0, ())
    with pytest.raises(BadInputError, match="recipes"):
        SearchSpace(recipes=("distillation",))
    with pytest.raises(BadInputError, match="bogus"):
        SearchSpace.from_dict({"bogus": 1})


def _dense_trainer(**kwargs):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 4)).astype("float32")
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype("int32")

    def build(config):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(config["units"], "relu"),
                                  keras.layers.Dense(2, activation="softmax",
                                                     name="predictions")])
        model.compile(keras.optimizers.Adam(config["lr"]), "sparse_categorical_crossentropy")
        return model

    def declare(hp):
        return {"units": hp.Choice("units", [2, 8]),
                "lr": hp.Float("lr", 1e-3, 1e-1, sampling="log")}

    return ModelTrainer(declare, build, (x[:32], y[:32]), (x[32:], y[32:]), **kwargs)


def test_generic_trainer_with_hyperband_and_a_time_budget(tmp_path):
    # Hyperband hands each trial an epoch budget; the result records the epochs kept.
    result = tune(_dense_trainer(early_stopping=None, epochs=3), algorithm="hyperband",
                  max_trials=2, output_dir=tmp_path, verbose=0)
    assert len(result.rows) == 2
    assert all(1 <= row["epochs"] <= 3 for row in result.rows)
    assert result.best_report["task"] == "single_label"
    # A spent time budget still runs one trial, then stops.
    result = tune(_dense_trainer(epochs=1), algorithm="bayesian", max_trials=10, max_minutes=0,
                  verbose=0)
    assert len(result.rows) == 1


def test_bad_settings_are_clear_errors(base, tmp_path, capsys):
    # A setting that fails every trial stops the search at once with its own message.
    assert main(["tune", "--dataset", base.dataset, "--backbone", "no_such_net", "--weights",
                 "none", "--image-size", "32", "--max-trials", "3",
                 "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("keras-transfer tune: error: backbone='no_such_net': Unknown backbone "
                          "'no_such_net'")
    assert "Traceback" not in err
    with pytest.raises(BadInputError, match="validation_split"):
        ImageTrainer(dataclasses.replace(base, validation_split=0.0))
    with pytest.raises(BadInputError, match="budget"):
        tune(_dense_trainer(), max_trials=None, max_minutes=None)
    with pytest.raises(BadInputError, match="algorithm"):
        tune(_dense_trainer(), algorithm="grid")


@pytest.mark.slow  # imports keras-hub (~20 s here) for the text backbone
def test_text_classifier_search_shares_features_and_reruns(tmp_path):
    import tensorflow as tf

    from keras_transfer.testing.tiny_text import make_tiny_preset
    from keras_transfer.tuning import TextTrainer, text_classifier_builder

    preset = str(make_tiny_preset("bert", tmp_path / "bert"))
    words = [("great", 1), ("good", 1), ("love", 1), ("awful", 0), ("bad", 0), ("hate", 0)]
    texts = [f"{w} {v} film" for w, _ in words for v in ("a", "the", "big", "red")]
    labels = [y for _, y in words for _ in range(4)]
    dataset = tf.data.Dataset.from_tensor_slices((texts, labels))
    train, validation = dataset.shuffle(24, seed=0).batch(8), dataset.take(24).batch(8)
    space = SearchSpace(learning_rate=(1e-3, 3e-2), hidden_units=(0, 8), dropout=(0.0,),
                        recipes=("feature_extraction", "fine_tune"), unfreeze_blocks=(2,),
                        head_epochs=3, fine_tune_epochs=1)
    trainer = TextTrainer(text_classifier_builder(preset, 2, sequence_length=8), train,
                          validation, space=space, class_names=["neg", "pos"])
    result = tune(trainer, algorithm="random", max_trials=2, verbose=0)
    assert len(result.rows) == 2
    assert result.feature_store == {"frozen_configurations": 1, "computations": 1, "reuses": 1}
    again = TextTrainer(trainer.build_model, train, validation, space=space,
                        class_names=["neg", "pos"]).train(result.best_config)
    assert again.score == pytest.approx(result.best_score, abs=1e-6)
