"""Report numbers from labels and model outputs: NumPy only, no model needed.

The dicts built here are the reports of `keras_transfer.evaluation.classification` (schema `REPORT_SCHEMA`):
`classification_report` (single-label), `multilabel_report` and `regression_report`, plus the
pieces they share (calibration, top-k accuracy, ROC AUC, F1-tuned thresholds).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

REPORT_SCHEMA = "keras_transfer.evaluation/1"
TASKS = ("single_label", "multi_label", "regression")


def _r4(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


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
