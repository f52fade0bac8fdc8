"""Evaluation reports: one JSON schema for single-label, multi-label and regression models.

`evaluate(model, data)` predicts a dataset and returns (and, given `output_dir`, writes) a report:

- single-label: accuracy, per-class precision/recall/F1/support, macro and weighted averages,
  confusion matrix, top-k accuracy, calibration (expected calibration error, reliability bins)
  and the most confidently wrong examples;
- multi-label: per-label ROC AUC, precision/recall/F1 at 0.5 (or given thresholds), per-label
  thresholds tuned for F1, micro/macro averages, subset accuracy and calibration;
- regression: MAE, RMSE and R² per target and overall.

Every report carries ``"schema": REPORT_SCHEMA`` and ``"task"``; the main job's ``report.json``
(``report["test"]``), ``keras-transfer evaluate`` and the tuner all use these dicts.
"""

from __future__ import annotations

import dataclasses
import heapq
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf

REPORT_SCHEMA = "keras_transfer.evaluation/1"
TASKS = ("single_label", "multi_label", "regression")
_ACTIVATION_TASK = {"softmax": "single_label", "sigmoid": "multi_label", "linear": "regression"}


def _r4(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


# --------------------------------------------------------------------------- prediction


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
    for batch in dataset:
        inputs, batch_labels = batch[0], batch[1]
        probabilities.append(np.asarray(model.predict_on_batch(inputs)))
        labels.append(np.asarray(batch_labels))
    return np.concatenate(probabilities), np.concatenate(labels)


def as_probabilities(outputs: np.ndarray, task: str = "single_label") -> np.ndarray:
    """Model outputs as probabilities: logits (values outside [0, 1], or rows not summing to 1
    for single-label) go through softmax / sigmoid; probabilities pass unchanged.

    keras-hub classifiers return logits by default, keras-transfer heads probabilities.

    Example:
    >>> as_probabilities(np.array([[0.0, np.log(3.0)]])).round(2).tolist()
    [[0.25, 0.75]]
    """
    outputs = np.asarray(outputs, dtype=np.float64)
    if task == "single_label":
        if outputs.min() < 0 or outputs.max() > 1 or not np.allclose(outputs.sum(-1), 1, atol=1e-3):
            shifted = np.exp(outputs - outputs.max(axis=-1, keepdims=True))
            return shifted / shifted.sum(axis=-1, keepdims=True)
    elif task == "multi_label" and (outputs.min() < 0 or outputs.max() > 1):
        return 1.0 / (1.0 + np.exp(-outputs))
    return outputs


# --------------------------------------------------------------------------- metrics


def calibration(confidence: Sequence[float], outcome: Sequence[float], num_bins: int = 10) -> dict:
    """Reliability bins and the expected calibration error (ECE) of predicted probabilities.

    Bin ``i`` holds the confidences in ``(i / num_bins, (i + 1) / num_bins]`` (the first bin
    includes 0). ECE = Σ_bins (count / N) · |mean outcome − mean confidence|; MCE is the largest
    gap. For a single-label model `confidence` is the top probability and `outcome` whether the
    prediction was right; for multi-label every (example, label) probability and its 0/1 label.

    Example:
    >>> calibration([0.2, 0.9, 0.9], [0, 1, 0], num_bins=2)["ece"]
    0.3333
    """
    confidence = np.asarray(confidence, np.float64).reshape(-1)
    outcome = np.asarray(outcome, np.float64).reshape(-1)
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    index = np.digitize(confidence, edges[1:-1], right=True)
    bins, ece, mce = [], 0.0, 0.0
    for i in range(num_bins):
        chosen = index == i
        count = int(chosen.sum())
        mean_conf = float(confidence[chosen].mean()) if count else None
        mean_outcome = float(outcome[chosen].mean()) if count else None
        if count:
            gap = abs(mean_outcome - mean_conf)
            ece += count / confidence.size * gap
            mce = max(mce, gap)
        bins.append(dict(lower=_r4(edges[i]), upper=_r4(edges[i + 1]), count=count,
                         confidence=_r4(mean_conf), accuracy=_r4(mean_outcome)))
    return dict(ece=_r4(ece), mce=_r4(mce), num_bins=num_bins, bins=bins)


def top_k_accuracy(labels: Sequence[int], probabilities: np.ndarray, k: int) -> float:
    """Fraction of examples whose label is among the `k` most probable classes (ties go to the
    lower class index).

    Example:
    >>> top_k_accuracy([2, 0], np.array([[.5, .3, .2], [.1, .6, .3]]), k=2)
    0.0
    """
    labels = np.asarray(labels).astype(int).reshape(-1)
    if not labels.size:
        return 0.0
    top = np.argsort(-np.asarray(probabilities), axis=-1, kind="stable")[:, :k]
    return _r4((top == labels[:, None]).any(axis=1).mean())


def classification_report(
    labels: Sequence[int],
    probabilities: np.ndarray,
    class_names: Sequence[str],
    *,
    top_k: Sequence[int] = (1, 3, 5),
    num_bins: int = 10,
    num_wrong: int = 16,
) -> dict:
    """The single-label report: accuracy, per-class precision/recall/F1/support, macro and
    weighted averages, confusion matrix (true label on the rows), top-k accuracy, calibration
    and the `num_wrong` most confidently wrong examples (their positions in `labels`).

    Precision of a class never predicted is 0 (as scikit-learn's ``zero_division=0``); classes
    absent from the labels get support 0 and are left out of the macro average. Top-k values
    above the number of classes are skipped.

    Example:
    >>> import numpy as np
    >>> r = classification_report([0, 1, 1], np.array([[.9, .1], [.2, .8], [.6, .4]]), ["a", "b"])
    >>> r["accuracy"], r["per_class"]["b"]["recall"], r["confusion_matrix"]
    (0.6667, 0.5, [[1, 0], [1, 1]])
    """
    labels = np.asarray(labels).astype(int).reshape(-1)
    probabilities = np.asarray(probabilities, np.float64)
    k = len(class_names)
    if labels.size and (labels.min() < 0 or labels.max() >= k):
        raise ValueError(f"labels must be class ids in [0, {k}); got values "
                         f"{sorted(set(labels[(labels < 0) | (labels >= k)].tolist()))[:5]}.")
    if probabilities.shape != (labels.size, k):
        raise ValueError(f"probabilities have shape {probabilities.shape}; expected "
                         f"({labels.size}, {k}) for {k} class names.")
    predicted = probabilities.argmax(axis=-1)
    confusion = np.zeros((k, k), dtype=int)
    np.add.at(confusion, (labels, predicted), 1)
    support = confusion.sum(axis=1)
    predicted_count = confusion.sum(axis=0)
    true_positive = np.diag(confusion)
    precision = np.divide(true_positive, predicted_count, out=np.zeros(k),
                          where=predicted_count > 0)
    recall = np.divide(true_positive, support, out=np.zeros(k), where=support > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros(k), where=denominator > 0)
    present = support > 0
    per_class = {
        name: dict(precision=_r4(precision[i]), recall=_r4(recall[i]), f1=_r4(f1[i]),
                   support=int(support[i]), predicted=int(predicted_count[i]))
        for i, name in enumerate(class_names)
    }

    def average(values, weights):
        return _r4(np.average(values[present], weights=weights)) if present.any() else 0.0

    confidence = probabilities.max(axis=-1) if labels.size else np.zeros(0)
    correct = predicted == labels
    wrong = np.flatnonzero(~correct)
    wrong = wrong[np.argsort(-confidence[wrong], kind="stable")][:num_wrong]
    return dict(
        schema=REPORT_SCHEMA,
        task="single_label",
        num_examples=int(labels.size),
        class_names=list(class_names),
        accuracy=_r4(correct.mean()) if labels.size else 0.0,
        per_class=per_class,
        macro_avg=dict(precision=average(precision, None), recall=average(recall, None),
                       f1=average(f1, None)),
        weighted_avg=dict(precision=average(precision, support[present]),
                          recall=average(recall, support[present]),
                          f1=average(f1, support[present])),
        confusion_matrix=confusion.tolist(),
        top_k_accuracy={str(n): top_k_accuracy(labels, probabilities, n) for n in top_k if n <= k},
        calibration=calibration(confidence, correct, num_bins),
        confidently_wrong=[
            dict(index=int(i), label=class_names[labels[i]], predicted=class_names[predicted[i]],
                 confidence=_r4(confidence[i]))
            for i in wrong
        ],
    )


def roc_auc(labels: Sequence[int], scores: Sequence[float]) -> float | None:
    """Area under the ROC curve (the Mann-Whitney statistic; tied scores count one half).

    None when `labels` hold only one class (the AUC is undefined then).

    Example:
    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    return _r4(_auc(labels, scores))


def _auc(labels: Sequence[int], scores: Sequence[float]) -> float | None:
    labels = np.asarray(labels).astype(bool).reshape(-1)
    scores = np.asarray(scores, np.float64).reshape(-1)
    positives = int(labels.sum())
    negatives = labels.size - positives
    if not positives or not negatives:
        return None
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    average_rank = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based, ties share their mean rank
    ranks = average_rank[inverse]
    return (ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives)


def tune_thresholds(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Per-label decision thresholds that maximise F1 on these examples.

    Candidates are the predicted probabilities themselves (predict positive when p >= t); ties
    in F1 go to the threshold nearest 0.5. Labels without positives keep 0.5. Tune on a
    validation split and pass the result to `multilabel_report(thresholds=...)` on the test
    split: thresholds tuned on the test split overstate the test F1.

    Example:
    >>> tune_thresholds(np.array([[1], [1], [0]]), np.array([[0.3], [0.9], [0.2]])).tolist()
    [0.3]
    """
    labels = np.asarray(labels, np.float64).reshape(len(labels), -1)
    probabilities = np.asarray(probabilities, np.float64).reshape(labels.shape)
    thresholds = np.full(labels.shape[1], 0.5)
    for j in range(labels.shape[1]):
        y, p = labels[:, j] > 0.5, probabilities[:, j]
        if not y.any():
            continue
        order = np.argsort(-p, kind="stable")
        p_sorted, true_positive = p[order], np.cumsum(y[order])
        last_of_value = np.r_[p_sorted[1:] != p_sorted[:-1], True]  # predict all with p >= value
        candidates = p_sorted[last_of_value]
        tp = true_positive[last_of_value]
        predicted = np.flatnonzero(last_of_value) + 1
        f1 = 2 * tp / (predicted + y.sum())
        best = np.flatnonzero(np.isclose(f1, f1.max()))
        thresholds[j] = candidates[best[np.argmin(np.abs(candidates[best] - 0.5))]]
    return thresholds


def _binary_scores(y: np.ndarray, predicted: np.ndarray) -> tuple[float, float, float]:
    tp = float((y & predicted).sum())
    precision = tp / predicted.sum() if predicted.sum() else 0.0
    recall = tp / y.sum() if y.sum() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def multilabel_report(
    labels: np.ndarray,
    probabilities: np.ndarray,
    class_names: Sequence[str],
    *,
    thresholds: float | Sequence[float] | Mapping[str, float] = 0.5,
    num_bins: int = 10,
) -> dict:
    """The multi-label report: per-label ROC AUC, support, precision/recall/F1 at `thresholds`,
    F1-tuned thresholds (``tuned_threshold``, ``tuned_f1``: tuned on these same examples, an
    optimistic figure), micro/macro averages, subset and per-label accuracy, calibration.

    Example:
    >>> r = multilabel_report(np.array([[1, 0], [0, 1], [1, 1]]),
    ...                       np.array([[.8, .3], [.4, .6], [.7, .2]]), ["x", "y"])
    >>> r["per_label"]["x"]["auc"], r["per_label"]["y"]["recall"], r["subset_accuracy"]
    (1.0, 0.5, 0.6667)
    """
    labels = np.asarray(labels, np.float64).reshape(len(labels), -1) > 0.5
    probabilities = np.asarray(probabilities, np.float64).reshape(labels.shape)
    names = list(class_names)
    if len(names) != labels.shape[1]:
        raise ValueError(f"{len(names)} class names for {labels.shape[1]} labels per example.")
    if isinstance(thresholds, Mapping):
        thresholds = [thresholds.get(name, 0.5) for name in names]
    used = np.broadcast_to(np.asarray(thresholds, np.float64), (len(names),))
    tuned = tune_thresholds(labels, probabilities)
    predicted = probabilities >= used
    per_label, rows = {}, []
    for j, name in enumerate(names):
        precision, recall, f1 = _binary_scores(labels[:, j], predicted[:, j])
        tuned_f1 = _binary_scores(labels[:, j], probabilities[:, j] >= tuned[j])[2]
        auc = _auc(labels[:, j], probabilities[:, j])
        per_label[name] = dict(auc=_r4(auc), support=int(labels[:, j].sum()),
                               threshold=_r4(used[j]),
                               precision=_r4(precision), recall=_r4(recall), f1=_r4(f1),
                               tuned_threshold=_r4(tuned[j]), tuned_f1=_r4(tuned_f1))
        rows.append((auc, precision, recall, f1, tuned_f1, labels[:, j].any()))
    present = [r for r in rows if r[5]]  # labels with positives, as in the single-label macro
    aucs = [r[0] for r in rows if r[0] is not None]
    micro = _binary_scores(labels.reshape(-1), predicted.reshape(-1))
    mean = lambda i: _r4(np.mean([r[i] for r in present])) if present else 0.0  # noqa: E731
    return dict(
        schema=REPORT_SCHEMA,
        task="multi_label",
        num_examples=int(labels.shape[0]),
        class_names=names,
        subset_accuracy=_r4((predicted == labels).all(axis=1).mean()) if labels.size else 0.0,
        label_accuracy=_r4((predicted == labels).mean()) if labels.size else 0.0,
        per_label=per_label,
        macro_avg=dict(auc=_r4(np.mean(aucs)) if aucs else None, precision=mean(1),
                       recall=mean(2), f1=mean(3), tuned_f1=mean(4)),
        micro_avg=dict(precision=_r4(micro[0]), recall=_r4(micro[1]), f1=_r4(micro[2])),
        thresholds={name: _r4(t) for name, t in zip(names, used)},
        tuned_thresholds={name: _r4(t) for name, t in zip(names, tuned)},
        calibration=calibration(probabilities, labels, num_bins),
    )


def regression_report(
    targets: np.ndarray, predictions: np.ndarray, target_names: Sequence[str] | None = None
) -> dict:
    """MAE, RMSE and R² per target, and overall (errors over all values, R² averaged over the
    targets as scikit-learn's ``multioutput="uniform_average"``; None for a constant target).

    Example:
    >>> r = regression_report([1.0, 2.0, 3.0], [1.0, 2.0, 4.0])
    >>> r["mae"], r["rmse"], r["r2"]
    (0.3333, 0.5774, 0.5)
    """
    targets = np.asarray(targets, np.float64)
    targets = targets.reshape(len(targets), -1)
    predictions = np.asarray(predictions, np.float64).reshape(targets.shape)
    names = list(target_names or [f"target_{i}" for i in range(targets.shape[1])])
    errors = predictions - targets
    total = ((targets - targets.mean(axis=0)) ** 2).sum(axis=0)
    residual = (errors**2).sum(axis=0)
    r2 = [None if t == 0 else 1.0 - r / t for r, t in zip(residual, total)]
    defined = [v for v in r2 if v is not None]
    return dict(
        schema=REPORT_SCHEMA,
        task="regression",
        num_examples=int(targets.shape[0]),
        class_names=names,
        mae=_r4(np.abs(errors).mean()),
        rmse=_r4(np.sqrt((errors**2).mean())),
        r2=_r4(np.mean(defined)) if defined else None,
        per_target={name: dict(mae=_r4(np.abs(errors[:, i]).mean()),
                               rmse=_r4(np.sqrt((errors[:, i] ** 2).mean())), r2=_r4(r2[i]))
                    for i, name in enumerate(names)},
    )


def primary_metric(report: Mapping[str, Any]) -> tuple[str, float]:
    """The headline number of a report (higher is better): accuracy, macro AUC or −RMSE.

    Example:
    >>> primary_metric({"task": "single_label", "accuracy": 0.9})
    ('accuracy', 0.9)
    """
    if report["task"] == "multi_label":
        return "macro_auc", report["macro_avg"]["auc"] or 0.0
    if report["task"] == "regression":
        return "neg_rmse", -report["rmse"]
    return "accuracy", report["accuracy"]


# --------------------------------------------------------------------------- whole models


@dataclasses.dataclass
class Evaluation:
    """A report plus what its plots need: labels, probabilities, and the inputs of the most
    confidently wrong examples (same order as ``report["confidently_wrong"]``)."""

    report: dict
    labels: np.ndarray
    outputs: np.ndarray
    examples: list = dataclasses.field(default_factory=list)
    name: str | None = None

    def write(self, output_dir: str | Path, report_name: str | None = "evaluation.json") -> dict:
        """Writes the PNGs (and the JSON report unless `report_name` is None) atomically into
        `output_dir`; returns ``{file name: path}`` (also stored in ``report["files"]``)."""
        from keras_transfer import plots
        from keras_transfer.weights.cache import atomic_write_bytes

        output_dir = Path(output_dir)
        report, files = self.report, {}
        prefix = f"{self.name}: " if self.name else ""
        if report["task"] == "single_label":
            files["confusion_matrix.png"] = plots.plot_confusion_matrix(
                report["confusion_matrix"], report["class_names"],
                output_dir / "confusion_matrix.png",
                title=f"{prefix}accuracy {report['accuracy']:.1%}")
        if report["task"] in ("single_label", "multi_label"):
            files["reliability.png"] = plots.plot_reliability_diagram(
                report["calibration"], output_dir / "reliability.png", title=f"{prefix}calibration")
        if self.examples:
            files["confidently_wrong.png"] = plots.plot_confidently_wrong(
                self.examples, report["confidently_wrong"], output_dir / "confidently_wrong.png")
        if report["task"] == "regression":
            files["predictions.png"] = plots.plot_regression(
                self.labels, self.outputs, output_dir / "predictions.png", title=prefix.strip(": "))
        report["files"] = sorted(files) + ([report_name] if report_name else [])
        if report_name:
            files[report_name] = atomic_write_bytes(
                output_dir / report_name, json.dumps(report, indent=2).encode())
        return files


def _infer_task(model: keras.Model, labels: np.ndarray) -> str:
    try:
        return _ACTIVATION_TASK[model.get_layer("predictions").activation.__name__]
    except (ValueError, AttributeError, KeyError):
        pass
    if labels.ndim == 2 and labels.shape[1] > 1 and np.isin(labels, (0, 1)).all():
        return "multi_label"
    if np.issubdtype(labels.dtype, np.floating) and not np.array_equal(labels, np.round(labels)):
        return "regression"
    return "single_label"


def _dataset_of(data: Any, split: str | None,
                batch_size: int) -> tuple[tf.data.Dataset, list | None]:
    """A batched `(inputs, labels)` dataset and class names from the accepted `data` forms."""
    if isinstance(data, tf.data.Dataset):
        return data, None
    if isinstance(data, tuple) and len(data) == 2:
        return tf.data.Dataset.from_tensor_slices(data).batch(batch_size), None
    names = list(getattr(data, "class_names", None) or []) or None
    splits = [split] if split else ["test", "validation"]
    for name in splits:
        dataset = getattr(data, name, None)
        if dataset is not None:
            return dataset, names
    raise ValueError(
        f"evaluate: `data` must be a tf.data.Dataset of (inputs, labels), an (x, y) tuple, or a "
        f"dataset object with a {' or '.join(repr(s) for s in splits)} split; got "
        f"{type(data).__name__}."
    )


def _displayable(inputs: Any, i: int) -> Any:
    if isinstance(inputs, dict):  # text models: show the first string feature
        inputs = next((v for v in inputs.values() if np.asarray(v).dtype == object), None)
        if inputs is None:
            return None
    value = np.asarray(inputs[i])
    if value.dtype == object or value.dtype.kind in "SU":
        value = value.reshape(-1)[0]
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return value if value.ndim == 3 else None


def evaluate_details(
    model: keras.Model,
    data: Any,
    *,
    class_names: Sequence[str] | None = None,
    task: str | None = None,
    split: str | None = None,
    top_k: Sequence[int] = (1, 3, 5),
    num_bins: int = 10,
    num_wrong: int = 16,
    thresholds: float | Sequence[float] | Mapping[str, float] | str = 0.5,
    batch_size: int = 32,
    name: str | None = None,
) -> Evaluation:
    """Like `evaluate`, but returns an `Evaluation` (report, labels, outputs, wrong examples) to
    write later: the main job computes the report before exporting and writes it after.

    Example:
    >>> import numpy as np, keras
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, "softmax")])
    >>> ev = evaluate_details(model, (np.ones((4, 2), "float32"), np.array([0, 1, 1, 0])))
    >>> ev.report["num_examples"], ev.labels.shape
    (4, (4,))
    """
    if task is not None and task not in TASKS:
        raise ValueError(f"task={task!r}: expected one of {TASKS}.")
    dataset, found_names = _dataset_of(data, split, batch_size)
    outputs, labels, heap, offset = [], [], [], 0
    for batch in dataset:
        inputs, batch_labels = batch[0], np.asarray(batch[1])
        batch_outputs = np.asarray(model.predict_on_batch(inputs))
        outputs.append(batch_outputs)
        labels.append(batch_labels)
        single_label = (batch_outputs.ndim == 2 and batch_labels.ndim == 1
                        and batch_outputs.shape[1] > 1)
        if num_wrong and single_label:
            # Keep only the inputs of the most confidently wrong so far (a bounded heap).
            batch_probabilities = as_probabilities(batch_outputs)
            predicted, confidence = batch_probabilities.argmax(-1), batch_probabilities.max(-1)
            for i in np.flatnonzero(predicted != batch_labels.astype(int)):
                item = (float(confidence[i]), -(offset + int(i)))
                if len(heap) < num_wrong:
                    heapq.heappush(heap, (*item, _displayable(inputs, i)))
                elif item > heap[0][:2]:
                    heapq.heapreplace(heap, (*item, _displayable(inputs, i)))
        offset += len(batch_labels)
    if not outputs:
        raise ValueError("evaluate: the dataset is empty.")
    outputs, labels = np.concatenate(outputs), np.concatenate(labels)
    task = task or _infer_task(model, labels)
    names = list(class_names or found_names or [str(i) for i in range(outputs.shape[-1])])
    if task == "single_label":
        report = classification_report(labels, as_probabilities(outputs, task), names,
                                       top_k=top_k, num_bins=num_bins, num_wrong=num_wrong)
        by_index = {-index: value for _, index, value in heap}
        examples = [by_index.get(row["index"]) for row in report["confidently_wrong"]]
        examples = examples if any(e is not None for e in examples) else []
    elif task == "multi_label":
        probabilities = as_probabilities(outputs, task)
        if isinstance(thresholds, str):
            if thresholds != "tune":
                raise ValueError(f"thresholds={thresholds!r}: a number, one per label, or 'tune'.")
            thresholds = tune_thresholds(labels, probabilities)
        report = multilabel_report(labels, probabilities, names, thresholds=thresholds,
                                   num_bins=num_bins)
        examples = []
    else:
        report = regression_report(labels, outputs, class_names)
        examples = []
    return Evaluation(report, labels, outputs, examples, name)


def evaluate(
    model: keras.Model,
    data: Any,
    *,
    output_dir: str | Path | None = None,
    class_names: Sequence[str] | None = None,
    task: str | None = None,
    split: str | None = None,
    top_k: Sequence[int] = (1, 3, 5),
    num_bins: int = 10,
    num_wrong: int = 16,
    thresholds: float | Sequence[float] | Mapping[str, float] | str = 0.5,
    batch_size: int = 32,
    name: str | None = None,
) -> dict:
    """Evaluates `model` on `data` and returns the report (`REPORT_SCHEMA`); with `output_dir`
    also writes ``evaluation.json`` and PNGs (confusion matrix, reliability diagram, the most
    confidently wrong examples; predicted-vs-true for regression).

    Args:
        data: a batched ``(inputs, labels)`` `tf.data.Dataset`, an ``(x, y)`` tuple of arrays,
            or an `ImageDataset` / `TextDataset` (its `split`; default test, else validation;
            class names taken from it).
        task: ``"single_label"``, ``"multi_label"`` or ``"regression"``; default: from the
            ``predictions`` layer's activation, else from the labels.
        top_k: top-k accuracies to report (single-label; k above the class count is skipped).
        num_bins: reliability-diagram bins of the expected calibration error.
        thresholds: multi-label decision thresholds: one number, one per label, a
            ``{label: threshold}`` mapping (e.g. ``report["tuned_thresholds"]`` of a validation
            report) or ``"tune"`` (tuned on `data` itself).
        name: what is evaluated, for plot titles (e.g. ``"elpv test"``).

    Example:
    >>> import numpy as np, keras
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3, "softmax")])
    >>> report = evaluate(model, (np.ones((6, 2), "float32"), np.array([0, 1, 2, 0, 1, 2])))
    >>> report["schema"], report["task"], sorted(report["top_k_accuracy"])
    ('keras_transfer.evaluation/1', 'single_label', ['1', '3'])
    """
    evaluation = evaluate_details(
        model, data, class_names=class_names, task=task, split=split, top_k=top_k,
        num_bins=num_bins, num_wrong=num_wrong, thresholds=thresholds, batch_size=batch_size,
        name=name)
    if output_dir is not None:
        evaluation.write(output_dir)
    return evaluation.report


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
