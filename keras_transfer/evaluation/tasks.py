"""Each task's evaluation on one split, as a JSON-ready report and a one-line summary.

The evaluators here are the `evaluate` entries of the task registry (`tasks/*.py`), and each
task's `headline` metrics say what `summary` prints and `headline` returns, so nothing below
branches on the task:
text classification: accuracy and macro-F1 (multi-label: exact-match accuracy and macro-F1 at
0.5); segmentation: mean IoU and pixel accuracy; detection: COCO mAP; question answering:
SQuAD exact match and token F1; causal LM: perplexity and next-token accuracy.
"""

from __future__ import annotations

import collections
import math
import re
import string
from typing import Any, Sequence

import numpy as np

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the job's data (commands.task_data) is only passed through here
    from keras_transfer.commands.task_data import TaskData


def evaluate_split(model: Any, data: "TaskData", split: str, task: str) -> dict[str, Any]:
    """The task's metrics of `model` on ``data.split(split)`` (the task's `evaluate`).

    Example:
    >>> # evaluate_split(model, data, "test", "segmentation")["mean_iou"]  ->  0.61
    """
    from keras_transfer.tasks import get_task

    data.split(split)  # a clear error when the split is missing
    report = get_task(task).evaluate(model, data, split)
    return {"task": task, "split": split, "num_examples": data.sizes.get(split), **report}


def summary(report: dict[str, Any]) -> str:
    """One line of the report's headline metrics (the task's `headline`).

    Example:
    >>> summary({"task": "causal_lm", "split": "test", "num_examples": 8, "perplexity": 12.5,
    ...          "token_accuracy": 0.25})
    '8 test texts: perplexity 12.50, token accuracy 25.00%'
    """
    from keras_transfer.tasks import get_task

    task = get_task(report["task"])
    # An evaluator may rename a metric for this report (multi-label "exact-match accuracy").
    words = report.get("metric_words", {})
    said = ", ".join(f"{words.get(m.key, m.words)} {m.fmt.format(report[m.key])}"
                     for m in task.headline)
    return f"{report['num_examples']} {report['split']} {task.examples}: {said}"


def headline(report: dict[str, Any]) -> dict[str, float]:
    """The report's headline numbers (what `summary` prints), e.g. for ``metadata.json``.

    Example:
    >>> headline({"task": "question_answering", "exact_match": 0.5, "f1": 0.75, "per": {}})
    {'exact_match': 0.5, 'f1': 0.75}
    """
    from keras_transfer.tasks import get_task

    return {m.key: report[m.key] for m in get_task(report["task"]).headline}


# ----------------------------------------------------------------------------- text


def evaluate_text_classifier(model: Any, data: "TaskData", split: str) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class scores and the confusion matrix of a text classifier
    (multi-label: `multi_label_scores`).

    Example:
    >>> # evaluate_text_classifier(model, data, "test")["macro_f1"]  ->  0.69
    """
    from keras_transfer.evaluation.classification import predict_dataset
    from keras_transfer.evaluation.metrics import classification_report

    probabilities, labels = predict_dataset(model, data.split(split))
    if labels.ndim == 2:
        return multi_label_scores(labels, probabilities, data.class_names)
    report = classification_report(labels, probabilities, data.class_names)
    return {"accuracy": report["accuracy"], "macro_f1": report["macro_avg"]["f1"],
            "per_class": report["per_class"], "confusion_matrix": report["confusion_matrix"],
            "class_names": list(data.class_names)}


def multi_label_scores(labels: np.ndarray, probabilities: np.ndarray,
                       class_names: Sequence[str], threshold: float = 0.5) -> dict[str, Any]:
    """Exact-match accuracy, macro-F1 and per-class F1 of multi-hot labels at `threshold`.

    Example:
    >>> scores = multi_label_scores(np.array([[1, 0], [1, 1]]), np.array([[.9, .2], [.8, .1]]),
    ...                             ["a", "b"])
    >>> scores["accuracy"], scores["per_class"]["b"]["f1"]
    (0.5, 0.0)
    """
    truth, predicted = np.asarray(labels) > 0.5, np.asarray(probabilities) >= threshold
    per_class = {}
    for k, name in enumerate(class_names):
        hits = float(np.sum(truth[:, k] & predicted[:, k]))
        total = float(np.sum(truth[:, k]) + np.sum(predicted[:, k]))
        per_class[str(name)] = {"f1": 2 * hits / total if total else 0.0,
                                "support": int(np.sum(truth[:, k]))}
    scored = [v["f1"] for v in per_class.values() if v["support"]]
    return {"multi_label": True, "threshold": threshold,
            "metric_words": {"accuracy": "exact-match accuracy"},
            "accuracy": float(np.mean(np.all(truth == predicted, axis=1))),
            "macro_f1": float(np.mean(scored)) if scored else 0.0, "per_class": per_class,
            "class_names": list(class_names)}


# ----------------------------------------------------------------------------- images


def evaluate_image_classifier(model: Any, data: Any, split: str) -> dict[str, Any]:
    """`evaluation.classification.evaluate_classifier` on one split, with ``macro_f1`` at the
    top level like the other tasks' reports (the image job itself reports more: TTA, plots).

    Example:
    >>> # evaluate_image_classifier(model, data, "test")["accuracy"]  ->  0.76
    """
    from keras_transfer.evaluation.classification import evaluate_classifier

    report = evaluate_classifier(model, data.split(split), data.class_names)
    return {**report, "macro_f1": report["macro_avg"]["f1"]}



def evaluate_segmentation(model: Any, data: "TaskData", split: str) -> dict[str, Any]:
    """Mean IoU, pixel accuracy and per-class IoU (the data's ignore class left out).

    Example:
    >>> # evaluate_segmentation(model, data, "test")["mean_iou"]  ->  0.61
    """
    from keras_transfer.evaluation.segmentation import evaluate_segmenter

    return evaluate_segmenter(model, data.split(split), class_names=data.class_names,
                              ignore_class=data.ignore_class)


def evaluate_detector(model: Any, data: "TaskData", split: str) -> dict[str, Any]:
    """COCO mAP@0.5:0.95, mAP@0.5 and per-class AP@0.5 of a detector.

    Example:
    >>> # evaluate_detector(model, data, "test")["map50"]  ->  0.42
    """
    from keras_transfer.detection import detect, mean_average_precision

    detections, truth = [], []
    for images, targets in data.split(split):
        # A low score threshold, as COCO evaluation: the precision-recall curve needs the tail.
        detections += detect(model, np.asarray(images), score_threshold=0.05)
        for boxes, classes in zip(np.asarray(targets["boxes"]), np.asarray(targets["classes"])):
            keep = classes >= 0  # padding rows are -1
            truth.append({"boxes": boxes[keep], "classes": classes[keep].astype(int)})
    scores = mean_average_precision(detections, truth, num_classes=len(data.class_names))
    per_class = scores.pop("per_class50", [])
    scores["per_class_ap50"] = {name: (None if math.isnan(value) else value)
                                for name, value in zip(data.class_names, per_class)}
    scores["class_names"] = list(data.class_names)
    return scores


# ----------------------------------------------------------------------------- QA


def normalize_answer(text: str) -> str:
    """SQuAD's answer normalization: lower case, no punctuation, articles or extra spaces.

    Example:
    >>> normalize_answer("The  Eiffel Tower!")
    'eiffel tower'
    """
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def answer_f1(prediction: str, truth: str) -> float:
    """SQuAD's token-overlap F1 of two answers (after `normalize_answer`).

    Example:
    >>> answer_f1("in paris", "paris")
    0.6666666666666666
    """
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(truth).split()
    common = sum((collections.Counter(predicted) & collections.Counter(expected)).values())
    if not predicted or not expected:
        return float(predicted == expected)
    if not common:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def evaluate_question_answerer(model: Any, data: "TaskData", split: str) -> dict[str, Any]:
    """SQuAD exact match and token F1 of the answers, with the first five shown.

    Example:
    >>> # evaluate_question_answerer(model, data, "test")["f1"]  ->  0.58
    """
    from keras_transfer.text import answer_questions

    examples = data.examples[split]
    answers = answer_questions(model, [e["question"] for e in examples],
                               [e["context"] for e in examples])
    exact = [normalize_answer(a["answer"]) == normalize_answer(e["answer"])
             for a, e in zip(answers, examples)]
    f1 = [answer_f1(a["answer"], e["answer"]) for a, e in zip(answers, examples)]
    shown = [{"question": e["question"], "expected": e["answer"], "predicted": a["answer"]}
             for a, e in zip(answers[:5], examples[:5])]
    return {"exact_match": float(np.mean(exact)), "f1": float(np.mean(f1)), "examples": shown}


# ----------------------------------------------------------------------------- causal LM


def evaluate_causal_lm(model: Any, data: "TaskData", split: str) -> dict[str, Any]:
    """Perplexity and next-token accuracy over the real (unpadded) tokens.

    Example:
    >>> # evaluate_causal_lm(model, data, "test")["perplexity"]  ->  41.2
    """
    import keras

    nll = tokens = correct = 0.0
    for texts in data.split(split):
        # The model's own preprocessor: targets are the next tokens, padding has weight 0.
        x, y, weights = model.preprocessor(texts)
        logits = model(x, training=False)
        weights = keras.ops.convert_to_numpy(weights).astype(np.float64)
        y = keras.ops.convert_to_numpy(y)
        losses = keras.ops.convert_to_numpy(keras.losses.sparse_categorical_crossentropy(
            y, logits, from_logits=True))
        predicted = keras.ops.convert_to_numpy(keras.ops.argmax(logits, axis=-1))
        nll += float(np.sum(losses * weights))
        tokens += float(np.sum(weights))
        correct += float(np.sum((predicted == y) * weights))
    mean = nll / max(tokens, 1.0)
    return {"perplexity": float(math.exp(min(mean, 700.0))), "mean_loss": mean,
            "token_accuracy": correct / max(tokens, 1.0), "num_tokens": int(tokens)}
