"""Evaluation reports for classifiers: accuracy, per-class precision/recall/F1, confusion matrix."""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf


def predict_dataset(model: keras.Model, dataset: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Runs `model` over a batched `(image, label)` dataset; returns `(probabilities, labels)`.

    Example:
    >>> import numpy as np, tensorflow as tf, keras
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3, "softmax")])
    >>> data = tf.data.Dataset.from_tensor_slices((np.ones((4, 2)), [0, 1, 2, 0])).batch(2)
    >>> probs, labels = predict_dataset(model, data)
    >>> probs.shape, labels.tolist()
    ((4, 3), [0, 1, 2, 0])
    """
    probabilities, labels = [], []
    for images, batch_labels in dataset:
        probabilities.append(np.asarray(model.predict_on_batch(images)))
        labels.append(np.asarray(batch_labels))
    return np.concatenate(probabilities), np.concatenate(labels)


def classification_report(
    labels: Sequence[int], probabilities: np.ndarray, class_names: Sequence[str]
) -> dict:
    """Accuracy, per-class precision/recall/F1/support, macro and weighted averages, confusion.

    Precision of a class never predicted is 0 (as scikit-learn's ``zero_division=0``); classes
    absent from the labels get support 0 and are left out of the macro average.

    Example:
    >>> import numpy as np
    >>> r = classification_report([0, 1, 1], np.array([[.9, .1], [.2, .8], [.6, .4]]), ["a", "b"])
    >>> r["accuracy"], r["per_class"]["b"]["recall"], r["confusion_matrix"]
    (0.6667, 0.5, [[1, 0], [1, 1]])
    """
    labels = np.asarray(labels).astype(int).reshape(-1)
    predicted = np.asarray(probabilities).argmax(axis=-1)
    k = len(class_names)
    confusion = np.zeros((k, k), dtype=int)
    np.add.at(confusion, (labels, predicted), 1)
    support = confusion.sum(axis=1)
    predicted_count = confusion.sum(axis=0)
    true_positive = np.diag(confusion)
    precision = np.divide(true_positive, predicted_count, out=np.zeros(k), where=predicted_count > 0)
    recall = np.divide(true_positive, support, out=np.zeros(k), where=support > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros(k), where=denominator > 0)
    present = support > 0
    r4 = lambda v: round(float(v), 4)  # noqa: E731
    per_class = {
        name: dict(precision=r4(precision[i]), recall=r4(recall[i]), f1=r4(f1[i]),
                   support=int(support[i]))
        for i, name in enumerate(class_names)
    }
    average = lambda values, weights: r4(np.average(values[present], weights=weights))  # noqa: E731
    return dict(
        num_examples=int(labels.size),
        accuracy=r4((predicted == labels).mean()) if labels.size else 0.0,
        per_class=per_class,
        macro_avg=dict(precision=average(precision, None), recall=average(recall, None),
                       f1=average(f1, None)),
        weighted_avg=dict(precision=average(precision, support[present]),
                          recall=average(recall, support[present]),
                          f1=average(f1, support[present])),
        confusion_matrix=confusion.tolist(),
        class_names=list(class_names),
    )


def evaluate_classifier(
    model: keras.Model, dataset: tf.data.Dataset, class_names: Sequence[str]
) -> dict:
    """Predicts `dataset` and returns `classification_report` for it.

    Example:
    >>> import numpy as np, tensorflow as tf, keras
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, "softmax")])
    >>> data = tf.data.Dataset.from_tensor_slices((np.ones((4, 2)), [0, 1, 1, 0])).batch(2)
    >>> evaluate_classifier(model, data, ["a", "b"])["num_examples"]
    4
    """
    probabilities, labels = predict_dataset(model, dataset)
    return classification_report(labels, probabilities, class_names)
