"""Evaluation reports against values computed by hand."""

import numpy as np

from keras_transfer.evaluate import classification_report


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
