"""Raw head outputs → boxes: per-kind decoding and class-wise NMS, one path for all.

The same `BoxDecoder` decodes a Keras detector's outputs, an exported file's raw outputs on the
host (numpy in, numpy out) and, inside an exported graph, the head's tensors (`BoxDecoder.graph`):
the per-kind formulas are written once, in ``keras.ops``. Its parameters are plain JSON, written
beside the export, so on-device results can be checked against Keras box for box.
`graph_detections` puts the class-wise NMS in a graph too, with TFLite's built-in
``NON_MAX_SUPPRESSION_V4``: an exported detector returns boxes, scores and classes itself.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import keras
import numpy as np

from keras_transfer.detection.boxes import box_iou, clip_boxes

# TF Object Detection API names (a YOLOv8 head already has raw outputs named boxes/classes).
DETECTION_OUTPUTS = ("detection_boxes", "detection_scores", "detection_classes",
                     "num_detections")
NMS_DEFAULTS = {"iou_threshold": 0.5, "score_threshold": 0.25, "max_detections": 100}


@dataclasses.dataclass
class BoxDecoder:
    """Turns one kind's raw outputs into ``xyxy`` boxes ``(B, N, 4)`` and scores ``(B, N, C)``.

    Example:
    >>> decoder = BoxDecoder("yolov8", (64, 64), 2)
    >>> boxes, scores = decoder({"boxes": np.zeros((1, 84, 64)), "classes": np.zeros((1, 84, 2))})
    >>> boxes.shape, scores.shape
    ((1, 84, 4), (1, 84, 2))
    """

    kind: str
    image_size: tuple[int, int]
    num_classes: int
    params: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self.image_size = tuple(int(v) for v in self.image_size)
        self._anchors = None

    def to_json(self) -> dict:
        return {"kind": self.kind, "image_size": list(self.image_size),
                "num_classes": self.num_classes, "params": self.params}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "BoxDecoder":
        return cls(data["kind"], tuple(data["image_size"]), int(data["num_classes"]),
                   dict(data.get("params", {})))

    def anchors(self) -> np.ndarray:
        if self._anchors is None and self.kind in _ANCHORS:
            self._anchors = np.asarray(_ANCHORS[self.kind](self), np.float32)
        return self._anchors

    def graph(self, outputs: Mapping[str, Any]) -> tuple[Any, Any]:
        """`__call__` on tensors (``keras.ops``): usable inside an exported graph.

        Example:
        >>> decoder = BoxDecoder("yolov8", (64, 64), 2)
        >>> raw = {"boxes": keras.ops.zeros((1, 84, 64)), "classes": keras.ops.zeros((1, 84, 2))}
        >>> tuple(decoder.graph(raw)[0].shape)
        (1, 84, 4)
        """
        ops = keras.ops
        outputs = {key: ops.cast(value, "float32") for key, value in outputs.items()}
        boxes, scores = _DECODE[self.kind](self, outputs)
        height, width = self.image_size
        limit = ops.convert_to_tensor([width, height, width, height], "float32")
        return ops.clip(boxes, 0.0, limit), scores

    def __call__(self, outputs: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        boxes, scores = self.graph({key: np.asarray(value, np.float32)
                                    for key, value in outputs.items()})
        boxes = clip_boxes(keras.ops.convert_to_numpy(boxes), self.image_size)
        return boxes, keras.ops.convert_to_numpy(scores).astype(np.float32)


# --------------------------------------------------------------------------- per kind

def _yolo_points(decoder: BoxDecoder) -> np.ndarray:
    """Anchor points (x, y, stride) of keras-cv YOLOv8: cell centres at strides 8, 16, 32."""
    h, w = decoder.image_size
    points = []
    for stride in (8, 16, 32):
        ys, xs = np.meshgrid(np.arange(0, h, stride) + stride / 2,
                             np.arange(0, w, stride) + stride / 2, indexing="ij")
        points.append(np.stack([xs.ravel(), ys.ravel(), np.full(xs.size, stride)], -1))
    return np.concatenate(points).astype(np.float32)


def _decode_yolo(decoder: BoxDecoder, outputs):
    # 4 sides × 16 bins: the expected distance (in strides) from the anchor point to each side.
    ops = keras.ops
    anchors = decoder.anchors()
    points = ops.convert_to_tensor(anchors)
    raw = outputs["boxes"]
    bins = ops.softmax(ops.reshape(raw, (-1, anchors.shape[0], 4, raw.shape[-1] // 4)), axis=-1)
    dist = ops.sum(bins * ops.arange(raw.shape[-1] // 4, dtype="float32"), axis=-1)
    xy, stride = points[:, :2], points[:, 2:]
    boxes = ops.concatenate([xy - dist[..., :2] * stride, xy + dist[..., 2:] * stride], -1)
    return boxes, outputs["classes"]  # the head ends in a sigmoid


def _retinanet_anchors(decoder: BoxDecoder) -> np.ndarray:
    import keras_hub

    p = decoder.params
    generator = keras_hub.layers.AnchorGenerator(
        "xyxy", min_level=3, max_level=p["max_level"], num_scales=3,
        aspect_ratios=[0.5, 1.0, 2.0], anchor_size=p["anchor_size"])
    anchors = generator(np.zeros((1, *decoder.image_size, 3), np.float32))
    return np.concatenate([keras.ops.convert_to_numpy(a) for a in anchors.values()])


def _centre_decode(reference, deltas, scale, low: float | None, high: float):
    """``xyxy`` boxes from centre/size deltas relative to ``xyxy`` reference boxes: centre +=
    (dx, dy) / scale × size, size ×= exp((dw, dh) / scale) with the log clipped to [low, high]."""
    ops = keras.ops
    reference = ops.convert_to_tensor(reference, "float32")  # numpy anchors: tensors first
    wh = reference[..., 2:] - reference[..., :2]
    centre = reference[..., :2] + wh / 2 + deltas[..., :2] / scale[:2] * wh
    log_size = deltas[..., 2:] / scale[2:]
    log_size = ops.minimum(log_size, high) if low is None else ops.clip(log_size, low, high)
    size = ops.exp(log_size) * wh
    return ops.concatenate([centre - size / 2, centre + size / 2], -1)


def _decode_retinanet(decoder: BoxDecoder, outputs):
    # keras-hub encodes centre_xywh deltas with variance 1: (dx, dy) / anchor size, log sizes.
    scale = np.ones(4, np.float32)
    boxes = _centre_decode(decoder.anchors(), outputs["bbox_regression"], scale, -10.0, 10.0)
    return boxes, keras.ops.sigmoid(outputs["cls_logits"])


def _ssd_anchors(decoder: BoxDecoder) -> np.ndarray:
    from keras_transfer.detection.ssd import ssd_anchors

    p = decoder.params
    return ssd_anchors(decoder.image_size, p["num_levels"], min_scale=p["min_scale"],
                       max_scale=p["max_scale"], aspect_ratios=p["aspect_ratios"])


def _decode_ssd(decoder: BoxDecoder, outputs):
    from keras_transfer.detection.ssd import VARIANCES

    # SSD multiplies the deltas by the variances: divide by their inverse (clip at 10 after).
    scale = 1.0 / np.asarray(VARIANCES, np.float32)
    boxes = _centre_decode(decoder.anchors(), outputs["box_deltas"], scale, -10.0, 10.0)
    probs = keras.ops.softmax(outputs["class_logits"], axis=-1)
    return boxes, probs[..., 1:]


def _decode_faster_rcnn(decoder: BoxDecoder, outputs):
    # Per-class boxes: each (proposal, class) pair is one candidate scored for its class only,
    # so the class-wise NMS below is Faster R-CNN's per-class NMS.
    from keras_transfer.detection.roi import HEAD_WEIGHTS, MAX_LOG_SCALE

    ops = keras.ops
    probs = ops.softmax(outputs["class_logits"], axis=-1)[..., 1:]  # (B, K, C)
    scale = np.asarray(HEAD_WEIGHTS, np.float32)
    boxes = _centre_decode(outputs["proposals"][:, :, None, :], outputs["box_deltas"], scale,
                           None, MAX_LOG_SCALE)
    k, c = probs.shape[1], probs.shape[2]
    scores = probs[..., None] * np.eye(c, dtype=np.float32)  # (B, K, C, C)
    return ops.reshape(boxes, (-1, k * c, 4)), ops.reshape(scores, (-1, k * c, c))


_ANCHORS = {"yolov8": _yolo_points, "retinanet": _retinanet_anchors, "ssd": _ssd_anchors}
_DECODE = {"yolov8": _decode_yolo, "retinanet": _decode_retinanet, "ssd": _decode_ssd,
           "faster_rcnn": _decode_faster_rcnn}


def box_decoder(model: keras.Model) -> BoxDecoder:
    """The `BoxDecoder` of a detector built by `build_detector` (or loaded from a file).

    Example:
    >>> # box_decoder(detector).to_json()  ->  {'kind': 'ssd', 'image_size': [64, 64], ...}
    """
    from keras_transfer.detection.builders import detector_kind

    kind = detector_kind(model)
    size = tuple(model.input_shape[1:3])
    if kind in ("yolov8", "faster_rcnn"):  # faster_rcnn: its proposals are an output
        return BoxDecoder(kind, size, model.num_classes)
    if kind == "retinanet":
        generator = model.anchor_generator
        return BoxDecoder(kind, size, model.num_classes,
                          {"max_level": generator.max_level,
                           "anchor_size": generator.anchor_size})
    return BoxDecoder(kind, size, model.num_classes,
                      {"num_levels": 3 + model.extra_levels, "min_scale": model.min_scale,
                       "max_scale": model.max_scale, "aspect_ratios": list(model.aspect_ratios)})


# --------------------------------------------------------------------------- NMS


def non_max_suppression(
    boxes: np.ndarray,
    scores: np.ndarray,
    *,
    iou_threshold: float = 0.5,
    score_threshold: float = 0.25,
    max_detections: int = 100,
) -> dict[str, np.ndarray]:
    """Class-wise greedy NMS for one image: ``(N, 4)`` boxes, ``(N, C)`` scores.

    Each anchor proposes its best class; boxes of the same class overlapping a higher-scoring
    kept box by more than `iou_threshold` are dropped. A box without area (clipped flat at the
    image border, or an untrained head's) is no detection. Returns ``{"boxes", "scores",
    "classes"}`` sorted by score.

    Example:
    >>> boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], np.float32)
    >>> scores = np.array([[0.9], [0.8], [0.7]], np.float32)
    >>> non_max_suppression(boxes, scores)["scores"].astype(float).round(2).tolist()
    [0.9, 0.7]
    """
    classes = scores.argmax(-1)
    best = scores.max(-1)
    order = np.argsort(-best, kind="stable")
    has_area = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    order = order[(best[order] >= score_threshold) & has_area[order]]
    keep: list[int] = []
    for cls in np.unique(classes[order]):
        candidates = order[classes[order] == cls]
        while candidates.size:
            top, candidates = candidates[0], candidates[1:]
            keep.append(int(top))
            if candidates.size:
                candidates = candidates[box_iou(boxes[top][None], boxes[candidates])[0]
                                        <= iou_threshold]
    keep = sorted(keep, key=lambda i: -best[i])[:max_detections]
    return {"boxes": boxes[keep].reshape(-1, 4).astype(np.float32),
            "scores": best[keep].astype(np.float32), "classes": classes[keep].astype(np.int32)}


def decode_detections(
    decoder: BoxDecoder,
    outputs: Mapping[str, np.ndarray],
    **nms_options,
) -> list[dict[str, np.ndarray]]:
    """Raw outputs of a batch → per-image ``{"boxes", "scores", "classes"}`` after NMS.

    Example:
    >>> # decode_detections(BoxDecoder.from_json(meta["decoder"]), tflite_outputs)
    """
    boxes, scores = decoder(outputs)
    return [non_max_suppression(b, s, **nms_options) for b, s in zip(boxes, scores)]


def detect(
    model: keras.Model,
    images: np.ndarray,
    *,
    batch_size: int = 16,
    iou_threshold: float = 0.5,
    score_threshold: float = 0.25,
    max_detections: int = 100,
) -> list[dict[str, np.ndarray]]:
    """Runs a detector on raw images ``(N, H, W, 3)`` and returns per-image detections.

    Example:
    >>> # detect(detector, images)[0]  ->  {'boxes': (k, 4) xyxy, 'scores': (k,), 'classes': (k,)}
    """
    decoder = box_decoder(model)
    images = np.asarray(images, np.float32)
    results: list[dict[str, np.ndarray]] = []
    for start in range(0, len(images), batch_size):
        raw = model(images[start:start + batch_size], training=False)
        raw = {key: keras.ops.convert_to_numpy(value) for key, value in raw.items()}
        results += decode_detections(decoder, raw, iou_threshold=iou_threshold,
                                     score_threshold=score_threshold,
                                     max_detections=max_detections)
    return results


def _graph_nms_one(boxes, scores, size: tuple[int, int], iou_threshold: float,
                   score_threshold: float, max_detections: int):
    """Class-wise NMS of one image in TF ops: one NON_MAX_SUPPRESSION_V4 on boxes moved apart
    by class (boxes of two classes never overlap there), so each class is suppressed alone.
    (TFLite's kernel suppresses at IoU >= the threshold, the host and TensorFlow above it: the
    two differ only for an IoU exactly at the threshold.)"""
    import tensorflow as tf

    classes = tf.argmax(scores, -1, output_type=tf.int32)
    # A box without area is no detection (as on the host); TFLite's NMS kernel would also
    # select it again and again (its IoU with itself is 0, so it never suppresses itself).
    has_area = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    best = tf.where(has_area, tf.reduce_max(scores, -1), -1.0)
    shifted = boxes + tf.cast(classes, tf.float32)[:, None] * float(max(size) + 1)
    # The op keeps scores > its threshold; the host NMS keeps scores >= it.
    below = float(np.nextafter(np.float32(score_threshold), np.float32(-np.inf)))
    index, valid = tf.raw_ops.NonMaxSuppressionV4(
        boxes=shifted, scores=best, max_output_size=max_detections,
        iou_threshold=iou_threshold, score_threshold=below, pad_to_max_output_size=True)
    keep = tf.range(max_detections) < valid
    return (tf.where(keep[:, None], tf.gather(boxes, index), 0.0),
            tf.where(keep, tf.gather(best, index), 0.0),
            tf.where(keep, tf.gather(classes, index), -1), valid)


def graph_detections(decoder: BoxDecoder, outputs: Mapping[str, Any], *,
                     iou_threshold: float = 0.5, score_threshold: float = 0.25,
                     max_detections: int = 100) -> dict[str, Any]:
    """Decoding and class-wise NMS inside a TensorFlow graph (builtin TFLite ops only).

    Returns ``detection_boxes`` ``(B, max_detections, 4)`` ``xyxy`` pixels,
    ``detection_scores`` ``(B, max_detections)``, ``detection_classes`` (int32, -1 past the
    end) and ``num_detections`` ``(B,)``: the rows before ``num_detections`` are what
    `decode_detections` returns for the same image, in the same (score) order. A batch of one
    (TFLite) runs NMS once; a larger or unknown batch maps it over the images.

    Example:
    >>> decoder = BoxDecoder("yolov8", (64, 64), 2)
    >>> raw = {"boxes": np.zeros((1, 84, 64), np.float32),
    ...        "classes": np.full((1, 84, 2), 0.9, np.float32)}
    >>> int(graph_detections(decoder, raw)["num_detections"][0])
    1
    """
    import tensorflow as tf

    boxes, scores = decoder.graph(outputs)
    options = (decoder.image_size, float(iou_threshold), float(score_threshold),
               int(max_detections))
    if boxes.shape[0] == 1:
        results = [value[None] for value in _graph_nms_one(boxes[0], scores[0], *options)]
    else:
        signature = (tf.TensorSpec((max_detections, 4), tf.float32),
                     tf.TensorSpec((max_detections,), tf.float32),
                     tf.TensorSpec((max_detections,), tf.int32), tf.TensorSpec((), tf.int32))
        results = tf.map_fn(lambda pair: _graph_nms_one(pair[0], pair[1], *options),
                            (boxes, scores), fn_output_signature=signature)
    return dict(zip(DETECTION_OUTPUTS, results))


def detections_from_outputs(outputs: Mapping[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Per-image ``{"boxes", "scores", "classes"}`` from an exported graph's detection outputs
    (`graph_detections`: the padding rows dropped).

    Example:
    >>> out = {"detection_boxes": np.zeros((1, 3, 4)), "detection_scores": np.array([[.9, 0, 0]]),
    ...        "detection_classes": np.array([[1, -1, -1]]), "num_detections": np.array([1])}
    >>> detections_from_outputs(out)[0]["classes"].tolist()
    [1]
    """
    results = []
    for index, count in enumerate(np.asarray(outputs["num_detections"]).reshape(-1)):
        count = int(count)
        results.append({
            "boxes": np.asarray(outputs["detection_boxes"][index][:count], np.float32),
            "scores": np.asarray(outputs["detection_scores"][index][:count], np.float32),
            "classes": np.asarray(outputs["detection_classes"][index][:count], np.int32)})
    return results
