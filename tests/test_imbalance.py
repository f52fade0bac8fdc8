"""Imbalance treatments (`recipes.imbalance`) and their loss (`recipes.losses`)."""

import json
import math
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_transfer.errors import BadInputError
from keras_transfer.recipes.imbalance import (
    FOCAL_GAMMA,
    IMBALANCE_RATIO_THRESHOLD,
    ImbalanceOption,
    balanced_sqrt_weights,
    choose_option,
    class_balance,
    imbalance_options,
    option_scores,
)
from keras_transfer.recipes.losses import SmoothedSparseCrossentropy

NUM_CLASSES = 4
# 96 / 2 / 1 / 1 % of 100 examples: imbalanced (ratio 96).
SKEWED = [0] * 96 + [1] * 2 + [2, 3]
BALANCED = [0, 1, 2, 3] * 5 + [0, 1]


def _probabilities(rows: int, classes: int, seed: int = 0) -> np.ndarray:
    logits = np.random.default_rng(seed).normal(size=(rows, classes)) * 2.0
    exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (exp / exp.sum(axis=-1, keepdims=True)).astype(np.float32)


def _per_example(loss, y_true, y_pred) -> np.ndarray:
    return keras.ops.convert_to_numpy(loss(y_true, y_pred))


# --------------------------------------------------------------------------- class balance


def test_class_balance_counts_ratio_and_threshold():
    balance = class_balance(np.array([0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2, 2]), num_classes=3)
    assert balance["counts"] == [3, 0, 9]
    assert balance["frequencies"] == pytest.approx([0.25, 0.0, 0.75])
    # The empty class 1 does not make the ratio infinite.
    assert balance["imbalance_ratio"] == 3.0 == IMBALANCE_RATIO_THRESHOLD
    assert balance["is_imbalanced"] is True
    below = class_balance([0, 0, 1, 0, 0, 1, 1], num_classes=2)  # 4:3
    assert below["imbalance_ratio"] == pytest.approx(4 / 3) and below["is_imbalanced"] is False
    assert class_balance([], num_classes=2)["imbalance_ratio"] == 1.0
    with pytest.raises(BadInputError, match=r"\[0, 2\).*\[5\]"):
        class_balance([0, 5], num_classes=2)


# --------------------------------------------------------------------------- options


def test_options_per_mode():
    def names(labels, mode):
        return [option.name for option in imbalance_options(labels, NUM_CLASSES, mode)]

    assert names(SKEWED, "auto") == ["none", "class_weight", "focal"]
    assert names(BALANCED, "auto") == ["none"]
    for labels in (SKEWED, BALANCED):  # an explicit mode is honoured whatever the labels
        assert names(labels, "none") == ["none"]
        assert names(labels, "class_weight") == ["class_weight"]
        assert names(labels, "focal") == ["focal"]
    none, weighted, focal = imbalance_options(SKEWED, NUM_CLASSES)
    assert none == ImbalanceOption("none", None, 0.0)
    assert weighted.focal_gamma == 0.0 and weighted.class_weights == balanced_sqrt_weights(
        SKEWED, NUM_CLASSES)
    assert focal == ImbalanceOption("focal", None, FOCAL_GAMMA) and FOCAL_GAMMA == 2.0


def test_bad_mode_names_the_setting_and_the_accepted_values():
    with pytest.raises(BadInputError, match=r"imbalance='balanced'.*'auto', 'none', "
                                            r"'class_weight', 'focal'"):
        imbalance_options(SKEWED, NUM_CLASSES, mode="balanced")


def test_balanced_sqrt_weights():
    labels = np.array(SKEWED)
    weights = np.array(balanced_sqrt_weights(labels, NUM_CLASSES))
    # Mean 1 over the examples: the loss keeps its unweighted scale.
    assert weights[labels].mean() == pytest.approx(1.0)
    # Rarer classes heavier; equally rare classes equal.
    assert weights[0] < weights[1] < weights[2] == pytest.approx(weights[3])
    # The square-root law: weight ratio = sqrt of the inverse frequency ratio (96/2 -> ~6.9).
    assert weights[1] / weights[0] == pytest.approx(math.sqrt(96 / 2))
    assert weights[2] / weights[1] == pytest.approx(math.sqrt(2))
    # An absent class gets the largest weight rather than infinity.
    with_absent = balanced_sqrt_weights([0, 0, 0, 0, 1], num_classes=3)
    assert with_absent[2] == max(with_absent) == with_absent[1]
    assert balanced_sqrt_weights(BALANCED[:20], NUM_CLASSES) == pytest.approx((1.0,) * 4)


def test_option_as_dict_and_loss():
    option = ImbalanceOption("class_weight", (0.5, 2.0), 0.0)
    assert option.as_dict() == dict(name="class_weight", class_weights=[0.5, 2.0],
                                    focal_gamma=0.0)
    json.dumps(option.as_dict())
    loss = option.loss(label_smoothing=0.1, reduction="sum", name="head_loss")
    assert isinstance(loss, SmoothedSparseCrossentropy)
    assert loss.get_config() == dict(name="head_loss", reduction="sum", label_smoothing=0.1,
                                     focal_gamma=0.0, class_weights=[0.5, 2.0], dtype=None)


def test_option_scores_reuse_the_classification_report():
    probabilities = np.array([[.9, .1, 0], [.2, .8, 0], [.6, .4, 0], [.3, .7, 0]])
    scores = option_scores([0, 1, 1, 0], probabilities)
    # Class 2 has no examples: left out of the macro average.
    assert scores == dict(accuracy=0.5, macro_f1=0.5, recall=[0.5, 0.5, 0.0])


# --------------------------------------------------------------------------- the choice


def test_a_treatment_within_one_standard_error_with_better_macro_f1_wins():
    scores = [dict(accuracy=0.79, macro_f1=0.52), dict(accuracy=0.78, macro_f1=0.61),
              dict(accuracy=0.77, macro_f1=0.58)]
    # Standard error at 0.79 over 200 examples: 0.0288; 0.78 is within it, 0.77 is not.
    index, reason = choose_option(scores, 200, names=["none", "class_weight", "focal"])
    assert index == 1
    assert reason == ("class_weight: validation macro-F1 0.610 vs 0.520 for none at accuracy "
                      "0.780 vs 0.790 (within one standard error 0.029)")


def test_a_clearly_less_accurate_treatment_loses_despite_better_macro_f1():
    scores = [dict(name="none", accuracy=0.79, macro_f1=0.52),
              dict(name="class_weight", accuracy=0.70, macro_f1=0.70)]
    index, reason = choose_option(scores, 200)
    assert index == 0
    assert reason.startswith("none: validation macro-F1 0.520 vs 0.700 for class_weight at "
                             "accuracy 0.790 vs 0.700, class_weight being more than one "
                             "standard error (0.029) below")
    # The same gap is noise on 20 examples (standard error 0.09): the treatment wins there.
    assert choose_option(scores, 20)[0] == 1


def test_the_standard_error_is_taken_at_the_best_accuracy():
    # Best accuracy 0.9 (not the baseline's 0.8): SE = sqrt(.9 * .1 / 100) = 0.03.
    scores = [dict(accuracy=0.80, macro_f1=0.9), dict(accuracy=0.90, macro_f1=0.5),
              dict(accuracy=0.875, macro_f1=0.6)]
    index, reason = choose_option(scores, 100, names=["none", "class_weight", "focal"])
    assert index == 2
    assert "for none at accuracy 0.875 vs 0.800, none being more than one standard error " \
           "(0.030)" in reason


def test_ties_keep_the_earlier_option():
    scores = [dict(accuracy=0.8, macro_f1=0.6), dict(accuracy=0.8, macro_f1=0.6),
              dict(accuracy=0.81, macro_f1=0.6)]
    index, reason = choose_option(scores, 500, names=["none", "class_weight", "focal"])
    assert index == 0
    assert reason == ("none: validation macro-F1 0.600 vs 0.600 for class_weight at accuracy "
                      "0.800 vs 0.800 (within one standard error 0.018; a tie keeps the "
                      "earlier option)")
    only = choose_option([dict(accuracy=0.8, macro_f1=0.6)], 50)
    assert only == (0, "option 0: the only option (validation accuracy 0.800, macro-F1 0.600)")
    with pytest.raises(ValueError, match="at least one"):
        choose_option([], 10)


# --------------------------------------------------------------------------- the loss


@pytest.mark.parametrize("labels_shape", [(8,), (8, 1)])
def test_loss_with_every_option_off_is_sparse_categorical_crossentropy(labels_shape):
    probabilities = _probabilities(8, 5)
    labels = np.arange(8).reshape(labels_shape) % 5
    ours = SmoothedSparseCrossentropy(reduction=None)
    theirs = keras.losses.SparseCategoricalCrossentropy(reduction=None)
    expected = _per_example(theirs, labels, probabilities)
    assert expected.shape == (8,) and expected.min() > 0
    np.testing.assert_allclose(_per_example(ours, labels, probabilities), expected, rtol=1e-5)
    # Reduced the default way too.
    np.testing.assert_allclose(float(SmoothedSparseCrossentropy()(labels, probabilities)),
                               expected.mean(), rtol=1e-5)


def test_loss_label_smoothing_is_categorical_crossentropys():
    probabilities = _probabilities(10, 4, seed=1)
    labels = np.arange(10) % 4
    one_hot = np.eye(4, dtype=np.float32)[labels]
    ours = _per_example(SmoothedSparseCrossentropy(0.2, reduction=None), labels, probabilities)
    theirs = _per_example(keras.losses.CategoricalCrossentropy(label_smoothing=0.2,
                                                               reduction=None),
                          one_hot, probabilities)
    plain = _per_example(SmoothedSparseCrossentropy(reduction=None), labels, probabilities)
    assert not np.allclose(theirs, plain)  # smoothing changes the loss
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)


@pytest.mark.parametrize("gamma,smoothing", [(2.0, 0.0), (0.5, 0.1)])
def test_loss_focal_is_categorical_focal_crossentropys_with_alpha_one(gamma, smoothing):
    probabilities = _probabilities(10, 3, seed=2)
    labels = np.arange(10) % 3
    one_hot = np.eye(3, dtype=np.float32)[labels]
    ours = _per_example(SmoothedSparseCrossentropy(smoothing, focal_gamma=gamma, reduction=None),
                        labels, probabilities)
    # Keras's alpha (default 0.25) is a constant factor for every class; 1.0 switches it off.
    theirs = _per_example(keras.losses.CategoricalFocalCrossentropy(
        alpha=1.0, gamma=gamma, label_smoothing=smoothing, reduction=None),
        one_hot, probabilities)
    plain = _per_example(SmoothedSparseCrossentropy(smoothing, reduction=None),
                         labels, probabilities)
    assert np.all(ours < plain)  # the modulating factor down-weights every example
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)


def test_loss_class_weights_multiply_each_examples_loss():
    probabilities = _probabilities(6, 3, seed=3)
    labels = np.array([0, 1, 2, 2, 1, 0])
    weights = [0.5, 2.0, 3.0]
    for options in (dict(), dict(label_smoothing=0.1, focal_gamma=2.0)):
        plain = _per_example(SmoothedSparseCrossentropy(**options, reduction=None),
                             labels, probabilities)
        weighted = _per_example(SmoothedSparseCrossentropy(**options, class_weights=weights,
                                                           reduction=None),
                                labels, probabilities)
        np.testing.assert_allclose(weighted, plain * np.array(weights)[labels], rtol=1e-6)
    with pytest.raises(ValueError, match="2 entries but the predictions have 3 classes"):
        SmoothedSparseCrossentropy(class_weights=[1.0, 2.0])(labels, probabilities)


def test_loss_is_safe_at_zero_and_one_probabilities():
    probabilities = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], np.float32)
    loss = SmoothedSparseCrossentropy(0.1, focal_gamma=2.0, class_weights=[1, 1, 1],
                                      reduction=None)
    values = _per_example(loss, np.array([1, 1]), probabilities)
    # Clipped like Keras's losses: log(1e-7) for the certain wrong answer, not infinity.
    assert np.all(np.isfinite(values)) and values[0] > 10.0 > values[1]


def test_loss_rejects_bad_settings():
    with pytest.raises(ValueError, match="label_smoothing"):
        SmoothedSparseCrossentropy(label_smoothing=1.5)
    with pytest.raises(ValueError, match="focal_gamma"):
        SmoothedSparseCrossentropy(focal_gamma=-1.0)
    with pytest.raises(ValueError, match="non-negative"):
        SmoothedSparseCrossentropy(class_weights=[1.0, -0.5])


def test_loss_trains_a_model():
    keras.utils.set_random_seed(0)
    features = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    labels = (features[:, 0] > 0.8).astype(np.int32)  # about 1 in 5 positive
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=ImbalanceOption(
        "class_weight", balanced_sqrt_weights(labels, 2), 0.0).loss(label_smoothing=0.05))
    history = model.fit(features, labels[:, None], epochs=15, batch_size=16, verbose=0)
    losses = history.history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < 0.7 * losses[0]


_LOAD = """
import json, sys
import keras
try:  # Nothing has registered the loss yet: Keras must refuse the file.
    keras.models.load_model(sys.argv[1], safe_mode=True)
    print("loaded without keras_transfer", file=sys.stderr)
    sys.exit(1)
except Exception as error:
    assert "SmoothedSparseCrossentropy" in str(error), error
import keras_transfer  # the only import: it must register the loss
model = keras.models.load_model(sys.argv[1], safe_mode=True)
print(json.dumps([type(model.loss).__name__, model.loss.get_config()]))
"""


@pytest.mark.slow  # a second interpreter imports TensorFlow: 5-15 s on 2 busy cores
def test_a_model_compiled_with_the_loss_loads_after_import_keras_transfer(tmp_path):
    loss = SmoothedSparseCrossentropy(0.1, focal_gamma=2.0, class_weights=[1.0, 2.5, 0.5],
                                      name="imbalance_loss")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss=loss)
    path = tmp_path / "model.keras"
    model.save(path)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    run = subprocess.run([sys.executable, "-c", _LOAD, str(path)], capture_output=True,
                         text=True, env=env, cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    name, config = json.loads(run.stdout.strip().splitlines()[-1])
    assert name == "SmoothedSparseCrossentropy"
    assert config == loss.get_config() == dict(
        name="imbalance_loss", reduction="sum_over_batch_size", label_smoothing=0.1,
        focal_gamma=2.0, class_weights=[1.0, 2.5, 0.5], dtype=None)
