"""Segmentation metrics (mean / per-class IoU, pixel accuracy) and mask overlays as PNG.

The Keras metrics are the built-in `keras.metrics.MeanIoU` / `keras.metrics.IoU` configured for
probability outputs, so compiled models save and load without custom objects. The numpy
functions compute the same numbers from a confusion matrix: a class that appears neither in the
masks nor in the predictions has no IoU and is left out of the mean (as Keras does).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import keras
import numpy as np

from keras_transfer.errors import BadInputError

# Distinct colours for class ids (tab10 then tab20's light shades); ids beyond cycle.
PALETTE = np.array([
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
    (174, 199, 232), (255, 187, 120), (152, 223, 138), (255, 152, 150), (197, 176, 213),
    (196, 156, 148), (247, 182, 210), (199, 199, 199), (219, 219, 141), (158, 218, 229),
], dtype=np.uint8)


def mean_iou_metric(
    num_classes: int, *, ignore_class: int | None = None, name: str = "mean_iou"
) -> keras.metrics.MeanIoU:
    """Mean IoU over classes, for ``model.compile``: masks ``(B, H, W)`` vs probabilities
    ``(B, H, W, C)``.

    Example:
    >>> metric = mean_iou_metric(2)
    >>> _ = metric.update_state(np.array([[0, 1]]), np.array([[[0.9, 0.1], [0.2, 0.8]]]))
    >>> round(float(metric.result()), 4)  # Keras adds an epsilon to the IoU denominator
    1.0
    """
    return keras.metrics.MeanIoU(
        num_classes=num_classes, sparse_y_pred=False, ignore_class=ignore_class, name=name
    )


def _metric_name(label: str) -> str:
    return "iou_" + (re.sub(r"[^0-9A-Za-z_]+", "_", str(label)).strip("_") or "class")


def per_class_iou_metrics(
    num_classes: int,
    class_names: Sequence[str] | None = None,
    *,
    ignore_class: int | None = None,
) -> list[keras.metrics.IoU]:
    """One ``iou_<class>`` Keras metric per class, for ``model.compile(metrics=...)``.

    Example:
    >>> [m.name for m in per_class_iou_metrics(2, ["background", "cat"])]
    ['iou_background', 'iou_cat']
    """
    names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
    if len(names) != num_classes:
        raise BadInputError(f"{len(names)} class_names for num_classes={num_classes}.")
    return [
        keras.metrics.IoU(num_classes=num_classes, target_class_ids=[k], sparse_y_pred=False,
                          ignore_class=ignore_class, name=_metric_name(label))
        for k, label in enumerate(names)
    ]


def _class_ids(values: Any) -> np.ndarray:
    """Masks or probabilities → integer class ids (argmax over a class axis of size > 1)."""
    values = np.asarray(values)
    if values.dtype.kind == "f" and values.ndim >= 3 and values.shape[-1] > 1:
        return values.argmax(axis=-1)
    if values.ndim >= 3 and values.shape[-1] == 1:
        values = values[..., 0]
    return values.astype(np.int64)


def confusion_matrix(
    y_true: Any, y_pred: Any, num_classes: int, *, ignore_class: int | None = None
) -> np.ndarray:
    """Pixel confusion matrix (true class on the rows) of masks vs. masks or probabilities.

    Example:
    >>> confusion_matrix(np.array([[0, 1, 1]]), np.array([[0, 1, 0]]), 2).tolist()
    [[1, 0], [1, 1]]
    """
    true, pred = _class_ids(y_true), _class_ids(y_pred)
    if true.shape != pred.shape:
        raise BadInputError(f"masks {true.shape} and predictions {pred.shape} differ in shape.")
    true, pred = true.reshape(-1), pred.reshape(-1)
    keep = (true >= 0) & (true < num_classes)
    if ignore_class is not None:
        keep &= true != ignore_class
    index = true[keep] * num_classes + np.clip(pred[keep], 0, num_classes - 1)
    return np.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)


def scores_from_confusion(
    matrix: np.ndarray, class_names: Sequence[str] | None = None
) -> dict[str, Any]:
    """Mean IoU, per-class IoU (None for a class absent from masks and predictions), pixel accuracy.

    Example:
    >>> scores = scores_from_confusion(np.array([[3, 1], [0, 4]]), ["bg", "fg"])
    >>> round(scores["mean_iou"], 3), scores["per_class_iou"]
    (0.775, {'bg': 0.75, 'fg': 0.8})
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    names = list(class_names) if class_names is not None else [str(i) for i in range(len(matrix))]
    hits = np.diag(matrix)
    union = matrix.sum(axis=0) + matrix.sum(axis=1) - hits
    iou = {name: (float(h / u) if u > 0 else None) for name, h, u in zip(names, hits, union)}
    present = [v for v in iou.values() if v is not None]
    total = matrix.sum()
    return {
        "mean_iou": float(np.mean(present)) if present else 0.0,
        "per_class_iou": iou,
        "pixel_accuracy": float(hits.sum() / total) if total else 0.0,
        "num_pixels": int(total),
    }


def segmentation_scores(
    y_true: Any,
    y_pred: Any,
    num_classes: int,
    *,
    class_names: Sequence[str] | None = None,
    ignore_class: int | None = None,
) -> dict[str, Any]:
    """Mean IoU, per-class IoU and pixel accuracy of predictions (ids or probabilities) vs. masks.

    Example:
    >>> segmentation_scores(np.array([[0, 1]]), np.array([[0, 0]]), 2)["per_class_iou"]
    {'0': 0.5, '1': 0.0}
    """
    matrix = confusion_matrix(y_true, y_pred, num_classes, ignore_class=ignore_class)
    return scores_from_confusion(matrix, class_names)


def evaluate_segmenter(
    model: keras.Model,
    data: Iterable,
    *,
    class_names: Sequence[str] | None = None,
    ignore_class: int | None = None,
) -> dict[str, Any]:
    """Scores a segmenter on batches of ``(images, masks)`` (a tf.data split, or a list).

    Example:
    >>> # evaluate_segmenter(model, dataset.validation)["mean_iou"]  ->  0.71
    """
    num_classes = int(model.output_shape[-1])
    matrix = np.zeros((num_classes, num_classes), np.int64)
    for images, masks in data:
        probabilities = model.predict_on_batch(images)
        matrix += confusion_matrix(np.asarray(masks), keras.ops.convert_to_numpy(probabilities),
                                   num_classes, ignore_class=ignore_class)
    scores = scores_from_confusion(matrix, class_names)
    scores["confusion_matrix"] = matrix.tolist()
    return scores


def colorize(mask: np.ndarray) -> np.ndarray:
    """Class ids ``(H, W)`` → RGB uint8 ``(H, W, 3)`` using `PALETTE`.

    Example:
    >>> colorize(np.array([[0, 1]])).shape
    (1, 2, 3)
    """
    return PALETTE[np.asarray(mask, np.int64) % len(PALETTE)]


def overlay(image: np.ndarray, mask: np.ndarray, *, alpha: float = 0.5,
            background: int | None = 0) -> np.ndarray:
    """Blends class colours over an RGB image (pixels in [0, 255]); `background` stays uncoloured.

    Example:
    >>> overlay(np.zeros((2, 2, 3)), np.array([[0, 1], [1, 1]]))[0, 0].tolist()
    [0, 0, 0]
    """
    image = np.clip(np.asarray(image, np.float32), 0, 255)
    mask = np.asarray(mask)
    blended = (1 - alpha) * image + alpha * colorize(mask).astype(np.float32)
    if background is not None:
        blended = np.where((mask == background)[..., None], image, blended)
    return np.round(blended).astype(np.uint8)


def save_overlays(
    path: str | Path,
    images: np.ndarray,
    predicted: np.ndarray | Mapping[str, np.ndarray],
    *,
    masks: np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    alpha: float = 0.65,
    max_images: int = 6,
    title: str | None = None,
) -> Path:
    """A PNG grid: each image, its true mask (when given) and the predicted mask, overlaid.

    `predicted` holds class ids ``(N, H, W)`` or probabilities ``(N, H, W, C)``, or maps column
    titles to such arrays (to compare models side by side). Written atomically.

    Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "overlay.png"
    >>> save_overlays(p, np.zeros((1, 8, 8, 3)), np.ones((1, 8, 8), int)).exists()
    True
    """
    from keras_transfer.evaluation.plots import _figure, _save

    plt = _figure()
    images = np.asarray(images)[:max_images]
    if not isinstance(predicted, Mapping):
        predicted = {"predicted": predicted}
    columns = [("image", None)]
    if masks is not None:
        columns.append(("true", _class_ids(masks)[:max_images]))
    columns += [(name, _class_ids(values)[:max_images]) for name, values in predicted.items()]
    fig, axes = plt.subplots(len(images), len(columns), squeeze=False,
                             figsize=(2.4 * len(columns), 2.4 * len(images) + 0.6))
    for row, image in enumerate(images):
        for col, (name, values) in enumerate(columns):
            ax = axes[row][col]
            shown = image if values is None else overlay(image, values[row], alpha=alpha)
            ax.imshow(np.clip(shown, 0, 255).astype(np.uint8))
            ax.set_xticks([]), ax.set_yticks([])
            if row == 0:
                ax.set_title(name, fontsize=9)
    present = np.unique(np.concatenate([v.reshape(-1) for _, v in columns if v is not None]))
    names = list(class_names) if class_names is not None else None
    handles = [plt.Rectangle((0, 0), 1, 1, color=colorize(np.array(k)) / 255.0,
                             label=names[k] if names and k < len(names) else str(k))
               for k in present if k != 0]  # class 0 (background) is left uncoloured
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=min(6, len(handles)), fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.04 if handles else 0, 1, 0.96 if title else 1))
    return _save(fig, path)
