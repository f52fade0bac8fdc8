"""Evaluation reports: one JSON schema for single-label, multi-label and regression models.

`evaluate(model, data)` predicts a dataset and returns (and, given `output_dir`, writes) a report:

- single-label: accuracy, per-class precision/recall/F1/support, macro and weighted averages,
  confusion matrix, top-k accuracy, calibration (expected calibration error, reliability bins)
  and the most confidently wrong examples;
- multi-label: per-label ROC AUC, precision/recall/F1 at 0.5 (or given thresholds), per-label
  thresholds tuned for F1, micro/macro averages, subset accuracy and calibration;
- regression: MAE, RMSE and R² per target and overall.

With ``tta=`` (symmetries, see `keras_transfer.data.symmetry`) the outputs are the mean over every
view of the symmetry group (test-time augmentation); the report then also carries
``"tta": {"symmetries", "views", "single_view"}``, the last being the headline metric of the
identity view alone, computed from the same forward passes.

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

from keras_transfer.data.symmetry import (
    IDENTITY,
    apply_view,
    check_square,
    group_views,
    parse_symmetries,
)
from keras_transfer.errors import BadInputError

# The report numbers live in `report_metrics`; they are re-exported so that one import serves.
from keras_transfer.evaluation.metrics import (  # noqa: F401
    REPORT_SCHEMA,
    TASKS,
    as_probabilities,
    calibration,
    classification_report,
    multilabel_report,
    primary_metric,
    regression_report,
    roc_auc,
    top_k_accuracy,
    tune_thresholds,
)

_ACTIVATION_TASK = {"softmax": "single_label", "sigmoid": "multi_label", "linear": "regression"}


# --------------------------------------------------------------------------- prediction


def predict_views_batch(model: keras.Model, inputs: Any,
                        symmetries: Sequence[str] | str | None = None) -> np.ndarray:
    """The model's outputs on every view of one batch, stacked: ``(views, N, ...)``, the
    identity first. The mean over axis 0 is the test-time-augmented prediction.

    Example:
    >>> import numpy as np, keras
    >>> inputs = keras.Input((1, 2, 1)); model = keras.Model(inputs, keras.layers.Flatten()(inputs))
    >>> predict_views_batch(model, np.array([[[[1.0], [3.0]]]]), "hflip")[:, 0].tolist()
    [[1.0, 3.0], [3.0, 1.0]]
    """
    symmetries = parse_symmetries(symmetries)
    views = group_views(symmetries)
    if len(views) > 1:
        shape = getattr(inputs, "shape", None)
        if shape is None or len(shape) != 4:
            raise BadInputError(
                f"tta={symmetries}: test-time augmentation flips and turns image batches "
                f"(N, H, W, C); these inputs are {type(inputs).__name__}"
                f"{'' if shape is None else ' of shape ' + str(tuple(shape))}. Pass tta=None.")
        check_square(symmetries, tuple(shape[1:3]))
    return np.stack([
        np.asarray(model.predict_on_batch(inputs if view == IDENTITY else apply_view(inputs, view)))
        for view in views
    ])


def predict_dataset(model: keras.Model, dataset: tf.data.Dataset, *,
                    tta: Sequence[str] | str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Runs `model` over a batched `(image, label)` dataset; returns `(probabilities, labels)`.

    With `tta` (symmetries), each batch is predicted in every view of their group and the outputs
    are averaged (`predict_views_batch`).

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
        probabilities.append(predict_views_batch(model, inputs, tta).mean(axis=0))
        labels.append(np.asarray(batch_labels))
    return np.concatenate(probabilities), np.concatenate(labels)


def _tta_entry(symmetries: Sequence[str] | str | None) -> dict:
    symmetries = parse_symmetries(symmetries)
    return {"symmetries": list(symmetries), "views": len(group_views(symmetries))}


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
    # The image classifier evaluated: wrong_examples_gradcam.png explains its wrong examples.
    model: Any = dataclasses.field(default=None, repr=False, compare=False)

    def write(self, output_dir: str | Path, report_name: str | None = "evaluation.json") -> dict:
        """Writes the PNGs (and the JSON report unless `report_name` is None) atomically into
        `output_dir`; returns ``{file name: path}`` (also stored in ``report["files"]``)."""
        from keras_transfer.evaluation import plots
        from keras_transfer.utils.files import atomic_write_bytes

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
        if self.examples and self.model is not None:
            from keras_transfer.explain.files import write_wrong_examples_gradcam

            gradcam = write_wrong_examples_gradcam(self.model, self.examples,
                                                   report["confidently_wrong"],
                                                   report["class_names"], output_dir)
            if gradcam is not None:
                files[gradcam.name] = gradcam
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
    tta: Sequence[str] | str | None = None,
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
    tta_entry = _tta_entry(tta) if tta is not None else None
    # The identity view is one of the TTA passes: keep it, the single-view score comes for free.
    outputs, single_view, labels, heap, offset = [], [], [], [], 0
    for batch in dataset:
        inputs, batch_labels = batch[0], np.asarray(batch[1])
        view_outputs = predict_views_batch(model, inputs, tta)
        batch_outputs = view_outputs.mean(axis=0) if len(view_outputs) > 1 else view_outputs[0]
        outputs.append(batch_outputs)
        if len(view_outputs) > 1:
            single_view.append(view_outputs[0])
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
    settings = dict(top_k=top_k, num_bins=num_bins, num_wrong=num_wrong, thresholds=thresholds)
    report = _report(task, labels, outputs, names, class_names, **settings)
    examples = []
    if task == "single_label":
        by_index = {-index: value for _, index, value in heap}
        examples = [by_index.get(row["index"]) for row in report["confidently_wrong"]]
        examples = examples if any(e is not None for e in examples) else []
    images = [e for e in examples if isinstance(e, np.ndarray) and e.ndim == 3]
    if tta_entry is not None:
        if single_view:
            plain = _report(task, labels, np.concatenate(single_view), names, class_names,
                            **settings)
            metric, value = primary_metric(plain)
            tta_entry["single_view"] = {metric: value}
        report["tta"] = tta_entry
    return Evaluation(report, labels, outputs, examples, name, model if images else None)


def _report(task: str, labels: np.ndarray, outputs: np.ndarray, names: list[str],
            class_names: Sequence[str] | None, *, top_k: Sequence[int], num_bins: int,
            num_wrong: int, thresholds: Any) -> dict:
    if task == "single_label":
        return classification_report(labels, as_probabilities(outputs, task), names,
                                     top_k=top_k, num_bins=num_bins, num_wrong=num_wrong)
    if task == "multi_label":
        probabilities = as_probabilities(outputs, task)
        if isinstance(thresholds, str):
            if thresholds != "tune":
                raise ValueError(f"thresholds={thresholds!r}: a number, one per label, or 'tune'.")
            thresholds = tune_thresholds(labels, probabilities)
        return multilabel_report(labels, probabilities, names, thresholds=thresholds,
                                 num_bins=num_bins)
    return regression_report(labels, outputs, class_names)


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
    tta: Sequence[str] | str | None = None,
) -> dict:
    """Evaluates `model` on `data` and returns the report (`REPORT_SCHEMA`); with `output_dir`
    also writes ``evaluation.json`` and PNGs (confusion matrix, reliability diagram, the most
    confidently wrong examples and, for image classifiers, their Grad-CAM overlays;
    predicted-vs-true for regression).

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
        tta: test-time augmentation: symmetries that keep the label (a preset such as
            ``"flips"`` or ``"dihedral"``, ``"hflip,vflip"`` or a sequence of names; see
            `keras_transfer.data.symmetry`). The outputs are then the mean over every view of
            their group (one forward pass per view) and the report gets ``"tta"``:
            ``{"symmetries", "views", "single_view": {metric: value}}``.

    Example:
    >>> import numpy as np, keras
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3, "softmax")])
    >>> report = evaluate(model, (np.ones((6, 2), "float32"), np.array([0, 1, 2, 0, 1, 2])))
    >>> report["schema"], report["task"], sorted(report["top_k_accuracy"])
    ('keras_transfer.evaluation/1', 'single_label', ['1', '3'])
    >>> images = np.zeros((6, 4, 4, 3), "float32")
    >>> cnn = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Flatten(),
    ...                         keras.layers.Dense(3, "softmax")])
    >>> evaluate(cnn, (images, np.array([0, 1, 2, 0, 1, 2])), tta="flips")["tta"]["views"]
    4
    """
    evaluation = evaluate_details(
        model, data, class_names=class_names, task=task, split=split, top_k=top_k,
        num_bins=num_bins, num_wrong=num_wrong, thresholds=thresholds, batch_size=batch_size,
        name=name, tta=tta)
    if output_dir is not None:
        evaluation.write(output_dir)
    return evaluation.report


def evaluate_classifier(
    model: keras.Model, dataset: tf.data.Dataset, class_names: Sequence[str], *,
    tta: Sequence[str] | str | None = None,
) -> dict:
    """Predicts `dataset` and returns `classification_report` for it (with `tta`: on the mean
    over the symmetry group's views, and ``report["tta"]`` says which).

    Example:
    >>> import numpy as np, tensorflow as tf, keras
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, "softmax")])
    >>> data = tf.data.Dataset.from_tensor_slices((np.ones((4, 2)), [0, 1, 1, 0])).batch(2)
    >>> evaluate_classifier(model, data, ["a", "b"])["num_examples"]
    4
    """
    probabilities, labels = predict_dataset(model, dataset, tta=tta)
    report = classification_report(labels, probabilities, class_names)
    if tta is not None:
        report["tta"] = _tta_entry(tta)
    return report
