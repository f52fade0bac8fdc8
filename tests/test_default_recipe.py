"""The data-aware default recipe: symmetry probe, converged head, budget plan, job decisions."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_transfer.data import from_arrays
from keras_transfer.data.symmetry import GENERATORS, RandomSymmetry, apply_view, group_views
from keras_transfer.recipes import budget as budget_module
from keras_transfer.recipes.auto import decide_symmetries
from keras_transfer.recipes.budget import TimeBudget, WarmupCosine, plan_fine_tuning
from keras_transfer.recipes.head_stage import train_head


def _shapes(count: int, mirrored_classes: bool, seed: int = 0):
    """16x16 images of an 'L' drawn in some orientations (views of the dihedral group).

    Mirrored: class 0 is the L upright or turned by 180°, class 1 its mirror images (flipped
    left-right or up-down): every flip turns one class into the other. Invariant: class 0 is
    the L in all 8 orientations, class 1 a square outline: no flip or turn changes a label.
    """
    from keras_transfer.data.symmetry import View

    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 2
    images = []
    for label in labels:
        image = rng.uniform(0, 40, (16, 16, 1))
        # Positions whose spread is itself symmetric, so a flipped image is still a likely one.
        r, c = rng.integers(1, 7), rng.integers(2, 9)
        if label == 0 or mirrored_classes:
            image[r:r + 9, c] = 255  # the L's bar
            image[r + 8, c:c + 6] = 255  # and its foot
            if mirrored_classes:
                views = [View(False, 0), View(False, 2)] if label == 0 else [
                    GENERATORS["hflip"], GENERATORS["vflip"]]
            else:
                views = group_views(("hflip", "vflip", "rot90"))
            image = np.asarray(apply_view(image[None], views[rng.integers(len(views))]))[0]
        else:
            r, c = rng.integers(2, 8, size=2)
            image[r, c:c + 7] = image[r + 6, c:c + 7] = 255
            image[r:r + 7, c] = image[r:r + 7, c + 6] = 255
        images.append(image)
    return np.repeat(np.stack(images), 3, axis=-1).astype("float32"), labels


def _small_cnn() -> keras.Model:
    """A model that keeps where things are (no global pooling), trained on original images."""
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(16, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(16, 3, activation="relu")(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(2, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


@pytest.mark.parametrize("mirrored", [True, False])
def test_symmetry_probe_keeps_only_what_the_labels_survive(mirrored):
    keras.utils.set_random_seed(0)
    x, y = _shapes(600, mirrored)
    model = _small_cnn()
    model.fit(x[:450], y[:450], epochs=25, batch_size=32, verbose=0)
    validation = tf.data.Dataset.from_tensor_slices((x[450:], y[450:])).batch(32)
    kept, record = decide_symmetries("auto", declared=None, model=model, validation=validation)
    assert record["source"] == "probe"
    assert record["probe"]["baseline_accuracy"] > 0.9  # the model learned the task
    if mirrored:  # both flips turn one class into the other
        assert "hflip" not in kept and "vflip" not in kept, record["reason"]
    else:
        assert kept == ("hflip", "vflip", "rot90"), record["reason"]


def test_declared_and_explicit_symmetries_skip_the_probe():
    kept, record = decide_symmetries("auto", declared=("hflip",))
    assert kept == ("hflip",) and record["source"] == "dataset"
    kept, record = decide_symmetries("none", declared=("hflip",))
    assert kept == () and record["source"] == "setting"
    kept, record = decide_symmetries("auto", declared=None)  # nothing to probe with
    assert kept == () and record["source"] == "none"


def test_random_symmetry_draws_every_view_and_only_views():
    x = np.arange(16.0).reshape(1, 4, 4, 1).repeat(400, axis=0)
    out = np.asarray(RandomSymmetry(("hflip", "rot90"), seed=1)(x, training=True))
    views = [np.asarray(apply_view(x[:1], v))[0] for v in group_views(("hflip", "rot90"))]
    seen = [next(i for i, v in enumerate(views) if np.array_equal(o, v)) for o in out]
    assert sorted(set(seen)) == list(range(8))  # each of the 8 views drawn, nothing else


def _head_data(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (96, 32, 32, 3)).astype("uint8")
    y = (x[..., 0].mean(axis=(1, 2)) > 127).astype(int)  # learnable from colour statistics
    y[:12] = 1 - y[:12]  # and some label noise, so the validation loss turns up again
    return from_arrays(x, y, validation_split=0.25, batch_size=16, verbose=False)


def test_head_stage_stops_on_a_plateau_and_restores_the_best_weights():
    from keras_transfer import build_image_classifier
    from keras_transfer.recipes.features import extract_features

    keras.utils.set_random_seed(0)
    data = _head_data()
    model = build_image_classifier("vgg16", 2, weights=None, input_shape=(32, 32, 3))
    stage = train_head(model, data.train, data.validation, max_epochs=400, patience=5,
                       learning_rate=1e-2, imbalance="none")
    logs = stage.history.stages[0][1]
    assert len(logs["loss"]) < 400  # stopped by the plateau, not the ceiling
    best = int(np.argmin(logs["val_loss"]))
    assert len(logs["val_loss"]) == best + 1 + 5  # patience epochs after the best one
    x, y = extract_features(stage.features, data.validation)
    restored = stage.option.loss(0.1)(y, model.get_layer("predictions")(
        model.get_layer("dropout")(x)))
    assert float(restored) == pytest.approx(min(logs["val_loss"]), rel=1e-4)


def test_head_stage_compares_imbalance_treatments_on_validation():
    from keras_transfer import build_image_classifier

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 255, (120, 32, 32, 3)).astype("uint8")
    y = np.where(np.arange(120) % 8 == 0, 1, 0)  # 1 in 8: imbalanced
    data = from_arrays(x, y, validation_split=0.25, batch_size=16, verbose=False)
    model = build_image_classifier("vgg16", 2, weights=None, input_shape=(32, 32, 3))
    stage = train_head(model, data.train, data.validation, max_epochs=20)
    names = [c["name"] for c in stage.candidates]
    assert names == ["none", "class_weight", "focal"]
    assert all({"accuracy", "macro_f1", "recall"} <= set(c) for c in stage.candidates)
    assert stage.option.name in names and stage.reason.startswith(stage.option.name)
    # The model is compiled with the chosen loss for what follows.
    assert model.loss.get_config()["focal_gamma"] == stage.option.focal_gamma


def test_plan_trades_blocks_and_size_for_epochs():
    common = dict(num_train=1000, num_validation=100, forward_rate=100.0, image_size=224,
                  num_blocks=8)
    assert plan_fine_tuning(budget_s=3600, native_size=300, **common).image_size == 288
    roomy = plan_fine_tuning(budget_s=300, native_size=300, **common)
    assert (roomy.image_size, roomy.unfreeze_blocks) == (224, None)  # 288 leaves < 8 epochs
    tight = plan_fine_tuning(budget_s=100, **common)
    assert tight.unfreeze_blocks is not None and tight.unfreeze_blocks < 8
    for plan in (roomy, tight):  # what the plan expects to spend fits the budget
        assert plan.epochs * plan.seconds_per_epoch <= plan.budget_s


class _Clock:
    """A fake `time.perf_counter`: each training step advances it by `step` seconds."""

    def __init__(self, step: float):
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        return self.now


def test_time_budget_sizes_the_schedule_and_stops_inside_the_budget(monkeypatch):
    clock = _Clock(step=0.5)
    monkeypatch.setattr(budget_module.time, "perf_counter", clock)

    class Tick(keras.callbacks.Callback):  # the fake clock moves as batches run
        def on_train_batch_end(self, batch, logs=None):
            clock.now += clock.step

    x = np.random.default_rng(0).normal(size=(40, 3)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
    schedule = WarmupCosine(1e-2, warmup_steps=2, total_steps=4 * 50)
    model.compile(keras.optimizers.Adam(schedule), "sparse_categorical_crossentropy")
    budget = TimeBudget(12.0, steps_per_epoch=4, schedule=schedule, measure_steps=2)
    model.fit(x, y, batch_size=10, epochs=50, callbacks=[Tick(), budget], verbose=0)
    # 4 steps of 0.5 s = 2 s an epoch: 6 epochs fit in 12 s, and the cosine ends with them.
    assert budget.record["epochs_run"] == budget.record["planned_epochs"] == 6
    assert float(schedule.total_steps.numpy()) == 6 * 4
    assert float(schedule(24)) == pytest.approx(0.0, abs=1e-9)
    assert budget.record["spent_s"] <= 12.0


def test_warmup_cosine_round_trips_through_a_keras_file(tmp_path):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
    schedule = WarmupCosine(1e-3, warmup_steps=5, total_steps=50)
    schedule.set_total_steps(80)
    model.compile(keras.optimizers.AdamW(schedule), "sparse_categorical_crossentropy")
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    saved = loaded.optimizer.get_config()["learning_rate"]
    assert saved["class_name"] == "WarmupCosine"
    assert saved["config"] == {"peak": 1e-3, "warmup_steps": 5, "total_steps": 80}


def test_job_settings_are_checked_before_any_data_is_read(tmp_path, capsys):
    from keras_transfer.commands.cli import main

    missing = str(tmp_path / "no-such-folder")  # never read: the settings fail first
    for flags, word in ((["--augment", "sideways"], "sideways"),
                        (["--time-budget", "-3"], "time_budget"),
                        (["--schedule", "classic", "--augment", "rot45"], "rot45")):
        assert main(["train", "--dataset", missing, *flags]) == 2
        err = capsys.readouterr().err
        assert word in err and "Traceback" not in err and "no-such-folder" not in err


def test_repeatable_config_writes_out_the_decisions():
    from keras_transfer.commands.image_job import ImageJobConfig, _repeatable_config

    decisions = {"augment": {"symmetries": ["hflip", "vflip"]}, "head": {"imbalance": "focal"},
                 "image_size": {"size": 288}, "plan": {"epochs_run": 7, "blocks_unfrozen": 9}}
    settings = _repeatable_config(ImageJobConfig(), decisions)
    assert (settings["augment"], settings["imbalance"], settings["image_size"]) == (
        "hflip,vflip", "focal", 288)
    assert (settings["epochs"], settings["unfreeze_blocks"]) == (7, 9)
    # Given explicitly, the settings stay as they were.
    given = _repeatable_config(ImageJobConfig(epochs=3, unfreeze_blocks=2), decisions)
    assert (given["epochs"], given["unfreeze_blocks"]) == (3, 2)
    json.dumps(settings)  # what config.json holds


def test_auto_fine_tune_runs_every_step_within_its_budget_plan():
    from keras_transfer import build_image_classifier
    from keras_transfer.recipes import auto_fine_tune

    keras.utils.set_random_seed(0)
    x, y = _shapes(96, mirrored_classes=False)
    x = x.repeat(2, axis=1).repeat(2, axis=2)  # 32x32: VGG's smallest input
    data = from_arrays(x.astype("uint8"), y, validation_split=0.25, batch_size=16,
                       verbose=False)
    model = build_image_classifier("vgg16", 2, weights=None, input_shape=(32, 32, 3))
    result = auto_fine_tune(model, data, time_budget=15, verbose=0)
    decisions = result.decisions
    assert set(decisions) == {"head", "augment", "plan", "fine_tune"}
    assert decisions["fine_tune"]["kept"] in ("fine_tuned", "frozen_features")
    assert decisions["augment"]["source"] == "probe"
    tolerated = () if decisions["fine_tune"]["kept"] == "frozen_features" else tuple(
        decisions["augment"]["symmetries"])  # a kept frozen-features head: no TTA views
    assert result.symmetries == tolerated
    plan = decisions["plan"]
    assert plan["unfreeze_blocks"] is None or plan["unfreeze_blocks"] >= 1
    measured = plan["measured"]  # TimeBudget's record: what it planned and what ran
    assert measured["epochs_run"] == plan["epochs_run"] >= 1
    assert measured["epochs_run"] <= measured["planned_epochs"]
    assert [name for name, _ in result.history.stages] == ["head", "fine_tune"]
    assert plan["blocks_unfrozen"] >= 1


def test_a_fine_tuning_worse_than_frozen_features_on_validation_is_not_kept():
    from keras_transfer import build_image_classifier
    from keras_transfer.evaluation.classification import predict_dataset
    from keras_transfer.recipes import auto_fine_tune

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    y = np.arange(64) % 2  # dark vs bright: a head on random VGG features separates them
    x = rng.uniform(0, 100, (64, 32, 32, 3)) + 155 * y[:, None, None, None]
    data = from_arrays(x.astype("uint8"), y, validation_split=0.25, batch_size=16,
                       verbose=False)
    model = build_image_classifier("vgg16", 2, weights=None, input_shape=(32, 32, 3))
    seen = {}
    # A rate that wrecks the network: fine-tuning ends far below the trained head.
    result = auto_fine_tune(model, data, time_budget=None, epochs=1, augment="hflip",
                            fine_tune_learning_rate=50.0, block_decay=None, verbose=0,
                            after_head=lambda m: seen.update(p=predict_dataset(m, data.validation)[0]))
    kept = result.decisions["fine_tune"]
    accuracy = kept["validation_accuracy"]
    assert accuracy["frozen_features"] > 0.7  # the head learned something worth keeping
    assert accuracy["fine_tuned"] < accuracy["frozen_features"]
    assert kept["kept"] == "frozen_features"
    np.testing.assert_allclose(predict_dataset(model, data.validation)[0], seen["p"], atol=1e-5)
    # Fine-tuning augmented with flips; the head it fell back to never saw them: no TTA.
    assert result.decisions["augment"]["symmetries"] == ["hflip"]
    assert result.symmetries == () and result.decisions["augment"]["tta"] == []
