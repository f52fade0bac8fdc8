"""COCO-style mean average precision in numpy, as a function and as a Keras callback.

Follows the COCO evaluation (pycocotools) for the "all areas, 100 detections" setting: per class
and IoU threshold, detections are taken by descending score and each is matched to the unmatched
ground-truth box of the same image with the highest IoU ≥ the threshold; precision is made
monotone (the envelope) and read at 101 recall points 0, 0.01, …, 1. Classes without ground
truth are left out of the mean. mAP@0.5:0.95 averages the thresholds 0.50, 0.55, …, 0.95.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import keras
import numpy as np

from keras_transfer.detection.boxes import box_iou

COCO_THRESHOLDS = tuple(np.round(np.linspace(0.5, 0.95, 10), 2))
_RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def average_precision(
    scores: np.ndarray, matched: np.ndarray, num_ground_truth: int
) -> float:
    """101-point interpolated AP from detection scores and their true/false-positive flags.

    Example:
    >>> average_precision(np.array([0.9, 0.8]), np.array([True, False]), 1)
    1.0
    >>> round(average_precision(np.array([0.9, 0.8]), np.array([False, True]), 1), 4)
    0.5
    """
    if num_ground_truth == 0:
        return float("nan")
    order = np.argsort(-np.asarray(scores), kind="mergesort")
    tp = np.asarray(matched, bool)[order]
    tp_cum, fp_cum = np.cumsum(tp), np.cumsum(~tp)
    recall = tp_cum / num_ground_truth
    precision = tp_cum / np.maximum(tp_cum + fp_cum, np.finfo(np.float64).eps)
    precision = np.maximum.accumulate(precision[::-1])[::-1] if len(precision) else precision
    index = np.searchsorted(recall, _RECALL_POINTS, side="left")
    sampled = np.array([precision[i] if i < len(precision) else 0.0 for i in index])
    return float(sampled.mean())


def _match(det_boxes, det_scores, gt_boxes, threshold) -> np.ndarray:
    """True-positive flags of one image's detections of one class (score order as given)."""
    flags = np.zeros(len(det_boxes), bool)
    if not len(gt_boxes) or not len(det_boxes):
        return flags
    iou = box_iou(det_boxes, gt_boxes)
    taken = np.zeros(len(gt_boxes), bool)
    for i in np.argsort(-det_scores, kind="mergesort"):
        candidates = np.where(taken, -1.0, iou[i])
        best = int(candidates.argmax())
        if candidates[best] >= threshold:
            taken[best] = True
            flags[i] = True
    return flags


def mean_average_precision(
    detections: Sequence[Mapping[str, np.ndarray]],
    ground_truth: Sequence[Mapping[str, np.ndarray]],
    *,
    num_classes: int | None = None,
    iou_thresholds: Sequence[float] = COCO_THRESHOLDS,
) -> dict[str, float]:
    """COCO mAP over a set of images.

    Args:
        detections: per image ``{"boxes": (k, 4) xyxy, "scores": (k,), "classes": (k,)}``.
        ground_truth: per image ``{"boxes": (m, 4) xyxy, "classes": (m,)}``.
        num_classes: classes to evaluate (default: every class id seen in the ground truth).
        iou_thresholds: the thresholds averaged for ``"map"``.

    Returns:
        ``{"map": mAP@0.5:0.95, "map50": mAP@0.5, "map75": mAP@0.75 (if evaluated),
        "per_class50": [AP@0.5 per class, nan without ground truth]}``.

    Example:
    >>> gt = [{"boxes": np.array([[0, 0, 10, 10]]), "classes": np.array([0])}]
    >>> det = [{"boxes": np.array([[0, 0, 10, 10]]), "scores": np.array([0.9]),
    ...         "classes": np.array([0])}]
    >>> mean_average_precision(det, gt)["map"]
    1.0
    """
    if len(detections) != len(ground_truth):
        raise ValueError(f"{len(detections)} detection entries for {len(ground_truth)} images.")
    if num_classes is None:
        seen = [np.asarray(g["classes"]).ravel() for g in ground_truth]
        num_classes = int(max((s.max() for s in seen if s.size), default=-1)) + 1
    thresholds = [float(t) for t in iou_thresholds]
    ap = np.full((len(thresholds), num_classes), np.nan)
    for cls in range(num_classes):
        per_image = []
        num_gt = 0
        for det, gt in zip(detections, ground_truth):
            d_mask = np.asarray(det["classes"]).ravel() == cls
            g_mask = np.asarray(gt["classes"]).ravel() == cls
            g_boxes = np.asarray(gt["boxes"], np.float32).reshape(-1, 4)[g_mask]
            num_gt += len(g_boxes)
            per_image.append((np.asarray(det["boxes"], np.float32).reshape(-1, 4)[d_mask],
                              np.asarray(det["scores"], np.float32).ravel()[d_mask], g_boxes))
        if num_gt == 0:
            continue
        scores = np.concatenate([s for _, s, _ in per_image]) if per_image else np.zeros(0)
        for t, threshold in enumerate(thresholds):
            flags = np.concatenate([_match(b, s, g, threshold) for b, s, g in per_image])
            ap[t, cls] = average_precision(scores, flags, num_gt)

    def mean(values):
        values = values[~np.isnan(values)]
        return float(values.mean()) if values.size else 0.0

    result = {"map": mean(ap.ravel())}  # every evaluated class has all thresholds
    for name, value in (("map50", 0.5), ("map75", 0.75)):
        if value in thresholds:
            result[name] = mean(ap[thresholds.index(value)])
    if 0.5 in thresholds:
        result["per_class50"] = [float(v) for v in ap[thresholds.index(0.5)]]
    return result


class MeanAveragePrecisionCallback(keras.callbacks.Callback):
    """Computes COCO mAP on validation images after every `every` epochs; adds ``val_map`` and
    ``val_map50`` to the logs (so `EarlyStopping` / `ModelCheckpoint` can monitor them).

    Example:
    >>> # callback = MeanAveragePrecisionCallback(val_images, val_boxes, val_classes)
    >>> # detector.fit(train, epochs=10, callbacks=[callback]); callback.history[-1]["map50"]
    """

    def __init__(
        self,
        images: np.ndarray,
        boxes: Sequence[np.ndarray],
        classes: Sequence[np.ndarray],
        *,
        every: int = 1,
        score_threshold: float = 0.05,
        batch_size: int = 16,
    ):
        super().__init__()
        self.images = np.asarray(images, np.float32)
        self.ground_truth = [{"boxes": b, "classes": c} for b, c in zip(boxes, classes)]
        self.every = every
        self.score_threshold = score_threshold
        self.batch_size = batch_size
        self.history: list[dict[str, float]] = []

    def evaluate(self) -> dict[str, float]:
        from keras_transfer.detection.decode import detect

        detections = detect(self.model, self.images, batch_size=self.batch_size,
                            score_threshold=self.score_threshold)
        return mean_average_precision(detections, self.ground_truth,
                                      num_classes=self.model.num_classes)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if (epoch + 1) % self.every:
            return
        result = self.evaluate()
        self.history.append({"epoch": epoch + 1, "map": result["map"], "map50": result["map50"]})
        if logs is not None:
            logs["val_map"], logs["val_map50"] = result["map"], result["map50"]
