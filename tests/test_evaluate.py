"""Evaluation reports against hand-computed values; `evaluate` and `keras-transfer evaluate`."""

import json

import keras
import numpy as np
import pytest
from PIL import Image

from keras_transfer.commands.cli import main
from keras_transfer.evaluation.classification import (
    REPORT_SCHEMA,
    calibration,
    classification_report,
    evaluate,
    multilabel_report,
    regression_report,
    roc_auc,
)

# Six predictions over four classes: "c" is never predicted, "d" never occurs in the labels.
LABELS = [0, 0, 0, 1, 1, 2]
PROBABILITIES = np.array([
    [0.70, 0.20, 0.10, 0.00],  # a, right, confidence 0.70
    [0.50, 0.10, 0.40, 0.00],  # a, right, 0.50
    [0.32, 0.58, 0.10, 0.00],  # a predicted b, 0.58 (a is 2nd: right at top-2)
    [0.12, 0.78, 0.05, 0.05],  # b, right, 0.78
    [0.20, 0.45, 0.30, 0.05],  # b, right, 0.45
    [0.90, 0.05, 0.02, 0.03],  # c predicted a, 0.90 (c is 4th: wrong at top-2 and top-3)
])


def test_report_matches_hand_computed_values():
    # Class "c" is never predicted; class "d" never occurs in the labels.
    labels = [0, 0, 0, 1, 1, 2]
    predicted = [0, 0, 1, 1, 1, 0]
    probabilities = np.eye(4)[predicted]
    report = classification_report(labels, probabilities, ["a", "b", "c", "d"])
    assert report["accuracy"] == round(4 / 6, 4)
    assert report["confusion_matrix"] == [[2, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    a, b, c, d = (report["per_class"][k] for k in "abcd")
    assert (a["precision"], a["recall"], a["support"]) == (round(2 / 3, 4), round(2 / 3, 4), 3)
    assert (b["precision"], b["recall"], b["f1"]) == (round(2 / 3, 4), 1.0, 0.8)
    assert (c["precision"], c["recall"], c["f1"]) == (0.0, 0.0, 0.0)
    assert d["support"] == 0
    # Macro over the classes present (a, b, c); weighted by support.
    assert report["macro_avg"]["recall"] == round((2 / 3 + 1 + 0) / 3, 4)
    assert report["weighted_avg"]["recall"] == round((3 * 2 / 3 + 2 * 1 + 0) / 6, 4)
    assert report["num_examples"] == 6


def test_top_k_calibration_and_wrong_examples_by_hand():
    report = classification_report(LABELS, PROBABILITIES, list("abcd"), top_k=(1, 2, 3, 5),
                                   num_bins=5)
    assert report["schema"] == REPORT_SCHEMA and report["task"] == "single_label"
    # k=5 exceeds the four classes and is skipped.
    assert report["top_k_accuracy"] == {"1": round(4 / 6, 4), "2": round(5 / 6, 4),
                                        "3": round(5 / 6, 4)}
    assert [report["per_class"][k]["predicted"] for k in "abcd"] == [3, 3, 0, 0]
    assert report["macro_avg"]["precision"] == round((2 / 3 + 2 / 3 + 0) / 3, 4)
    assert report["macro_avg"]["f1"] == round((2 / 3 + 0.8 + 0) / 3, 4)
    assert report["weighted_avg"]["f1"] == round((3 * 2 / 3 + 2 * 0.8) / 6, 4)
    # Bins of width 0.2: (0.4, 0.6] holds 0.50 ✓, 0.58 ✗, 0.45 ✓; (0.6, 0.8] 0.70 ✓, 0.78 ✓;
    # (0.8, 1] 0.90 ✗.
    cal = report["calibration"]
    assert [b["count"] for b in cal["bins"]] == [0, 0, 3, 2, 1]
    assert cal["bins"][2]["confidence"] == round((0.50 + 0.58 + 0.45) / 3, 4)
    assert cal["bins"][2]["accuracy"] == round(2 / 3, 4)
    gaps = [abs(2 / 3 - 1.53 / 3), abs(1.0 - 0.74), abs(0.0 - 0.90)]
    assert cal["ece"] == round((3 * gaps[0] + 2 * gaps[1] + 1 * gaps[2]) / 6, 4) == 0.315
    assert cal["mce"] == 0.9
    # Most confident mistake first.
    assert [(w["index"], w["label"], w["predicted"]) for w in report["confidently_wrong"]] == [
        (5, "c", "a"), (2, "a", "b")]
    assert report["confidently_wrong"][0]["confidence"] == 0.9


def test_calibration_of_a_perfectly_calibrated_bin_is_zero():
    assert calibration([0.75] * 4, [1, 1, 1, 0], num_bins=4)["ece"] == 0.0


def test_report_rejects_labels_outside_the_classes():
    with pytest.raises(ValueError, match=r"class ids in \[0, 2\).*\[5\]"):
        classification_report([0, 5], np.eye(2), ["a", "b"])


def test_multilabel_report_by_hand():
    labels = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0], [1, 0, 0]])
    probabilities = np.array([[0.9, 0.2, 0.1], [0.4, 0.7, 0.3], [0.6, 0.4, 0.2],
                              [0.3, 0.1, 0.05], [0.35, 0.3, 0.6]])
    report = multilabel_report(labels, probabilities, ["x", "y", "z"])
    x, y, z = (report["per_label"][k] for k in "xyz")
    # x: positives 0.9, 0.6, 0.35 against negatives 0.4, 0.3: 5 of 6 pairs ordered.
    assert x["auc"] == round(5 / 6, 4) and y["auc"] == 1.0 and z["auc"] is None
    assert (x["precision"], x["recall"], x["f1"]) == (1.0, round(2 / 3, 4), 0.8)
    assert (y["precision"], y["recall"], y["f1"]) == (1.0, 0.5, round(2 / 3, 4))
    assert (z["support"], z["precision"], z["f1"]) == (0, 0.0, 0.0)
    # Tuned for F1: x at 0.35 catches all three positives for one false positive (F1 6/7).
    assert (x["tuned_threshold"], x["tuned_f1"]) == (0.35, round(6 / 7, 4))
    assert (y["tuned_threshold"], y["tuned_f1"]) == (0.4, 1.0)
    assert z["tuned_threshold"] == 0.5  # no positives: nothing to tune
    assert report["macro_avg"]["auc"] == round((5 / 6 + 1) / 2, 4)
    assert report["macro_avg"]["f1"] == round((0.8 + 2 / 3) / 2, 4)  # labels with positives
    assert report["micro_avg"] == {"precision": 0.75, "recall": 0.6, "f1": round(2 / 3, 4)}
    assert report["subset_accuracy"] == 0.6 and report["label_accuracy"] == 0.8
    # Thresholds from elsewhere (e.g. a validation split) are applied as given.
    tuned = multilabel_report(labels, probabilities, ["x", "y", "z"],
                              thresholds=report["tuned_thresholds"])
    assert tuned["per_label"]["x"]["f1"] == round(6 / 7, 4)
    assert tuned["thresholds"]["y"] == 0.4


def test_roc_auc_agrees_with_scikit_learn_including_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    scores = np.round(rng.uniform(size=200) + 0.3 * labels, 1)  # many tied scores
    assert roc_auc(labels, scores) == round(roc_auc_score(labels, scores), 4)


def test_regression_report_by_hand():
    targets = np.array([[1, 10], [2, 20], [3, 30], [4, 40]], float)
    predictions = np.array([[1, 12], [2, 18], [4, 30], [4, 40]], float)
    report = regression_report(targets, predictions, ["small", "large"])
    assert report["per_target"]["small"] == {"mae": 0.25, "rmse": 0.5, "r2": 0.8}
    assert report["per_target"]["large"] == {"mae": 1.0, "rmse": round(2**0.5, 4),
                                             "r2": round(1 - 8 / 500, 4)}
    assert (report["mae"], report["rmse"]) == (0.625, round(1.125**0.5, 4))
    assert report["r2"] == round((0.8 + 1 - 8 / 500) / 2, 4)


def _image_model(logits: bool = False) -> keras.Model:
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    outputs = keras.layers.Dense(3, activation=None if logits else "softmax",
                                 name="logits" if logits else "predictions")(x)
    return keras.Model(inputs, outputs)


def test_evaluate_writes_the_report_and_plots(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.uniform(0, 255, (20, 8, 8, 3)).astype("float32")
    labels = np.arange(20) % 3
    model = _image_model()
    report = evaluate(model, (images, labels), class_names=["r", "g", "b"], output_dir=tmp_path,
                      batch_size=6, num_wrong=4, name="toy")
    expected = classification_report(labels, model.predict(images, verbose=0), ["r", "g", "b"],
                                     num_wrong=4)
    assert report["accuracy"] == expected["accuracy"]
    assert report["confusion_matrix"] == expected["confusion_matrix"]
    assert report["confidently_wrong"] == expected["confidently_wrong"]
    written = json.loads((tmp_path / "evaluation.json").read_text())
    assert written["schema"] == REPORT_SCHEMA and written["files"] == report["files"]
    for name in ("confusion_matrix.png", "reliability.png", "confidently_wrong.png",
                 "evaluation.json"):
        assert name in report["files"] and (tmp_path / name).stat().st_size > 0


def test_evaluate_turns_logits_into_probabilities():
    rng = np.random.default_rng(2)
    images = rng.uniform(0, 255, (9, 8, 8, 3)).astype("float32")
    labels = np.arange(9) % 3
    model = _image_model(logits=True)
    report = evaluate(model, (images, labels), task="single_label", num_wrong=0)
    logits = model.predict(images, verbose=0).astype("float64")
    softmax = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    expected = classification_report(labels, softmax, ["0", "1", "2"])
    assert report["calibration"] == expected["calibration"]
    assert report["accuracy"] == expected["accuracy"]


def test_cli_evaluate_on_a_saved_model_and_folder(tmp_path, capsys):
    root = tmp_path / "images"
    rng = np.random.default_rng(0)
    for name, low in (("dark", 0), ("bright", 128)):
        (root / name).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(rng.integers(low, low + 127, (8, 8, 3), dtype=np.uint8)).save(
                root / name / f"{i}.png")
    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Dense(2, activation="softmax", name="predictions")(
        keras.layers.GlobalAveragePooling2D()(inputs))
    model_path = tmp_path / "model.keras"
    keras.Model(inputs, outputs).save(model_path)
    out = tmp_path / "eval"
    assert main(["evaluate", str(model_path), "--dataset", str(root), "--validation-split", "0",
                 "--test-split", "0.3", "--output-dir", str(out), "--top-k", "1", "2"]) == 0
    report = json.loads((out / "evaluation.json").read_text())
    assert report["schema"] == REPORT_SCHEMA and report["class_names"] == ["bright", "dark"]
    assert report["num_examples"] == 6 and set(report["top_k_accuracy"]) == {"1", "2"}
    assert (out / "reliability.png").exists()
    assert "accuracy" in capsys.readouterr().out

    assert main(["evaluate", str(tmp_path / "missing.keras"), "--dataset", str(root)]) == 2
    err = capsys.readouterr().err
    assert "missing.keras" in err and "Traceback" not in err
