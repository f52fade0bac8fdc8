"""Raw head outputs → boxes: per-kind decoding (numpy) and class-wise NMS, one path for all.

The same `BoxDecoder` decodes a Keras detector's outputs and an exported TFLite / SavedModel's
outputs (its parameters are plain JSON, written beside the export), so on-device results can
be checked against Keras box for box.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import keras
import numpy as np

from keras_transfer.detection.boxes import box_iou, clip_boxes


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
        if self._anchors is None:
            self._anchors = _ANCHORS[self.kind](self)
        return self._anchors

    def __call__(self, outputs: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        outputs = {key: np.asarray(value, np.float32) for key, value in outputs.items()}
        boxes, scores = _DECODE[self.kind](self, outputs)
        return clip_boxes(boxes, self.image_size), scores


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
    bins = outputs["boxes"].reshape(*outputs["boxes"].shape[:-1], 4, -1)
    bins = np.exp(bins - bins.max(-1, keepdims=True))
    dist = (bins / bins.sum(-1, keepdims=True) * np.arange(bins.shape[-1])).sum(-1)
    points = decoder.anchors()
    xy, stride = points[:, :2], points[:, 2:]
    boxes = np.concatenate([xy - dist[..., :2] * stride, xy + dist[..., 2:] * stride], -1)
    return boxes, outputs["classes"]  # the head ends in a sigmoid


def _retinanet_anchors(decoder: BoxDecoder) -> np.ndarray:
    import keras_hub

    p = decoder.params
    generator = keras_hub.layers.AnchorGenerator(
        "xyxy", min_level=3, max_level=p["max_level"], num_scales=3,
        aspect_ratios=[0.5, 1.0, 2.0], anchor_size=p["anchor_size"])
    anchors = generator(np.zeros((1, *decoder.image_size, 3), np.float32))
    return np.concatenate([keras.ops.convert_to_numpy(a) for a in anchors.values()])


def _decode_retinanet(decoder: BoxDecoder, outputs):
    # keras-hub encodes centre_xywh deltas with variance 1: (dx, dy) / anchor size, log sizes.
    anchors = decoder.anchors()
    a_wh = anchors[:, 2:] - anchors[:, :2]
    a_c = anchors[:, :2] + a_wh / 2
    d = outputs["bbox_regression"]
    centre = d[..., :2] * a_wh + a_c
    wh = np.exp(np.clip(d[..., 2:], -10, 10)) * a_wh
    scores = 1.0 / (1.0 + np.exp(-outputs["cls_logits"]))
    return np.concatenate([centre - wh / 2, centre + wh / 2], -1), scores


def _ssd_anchors(decoder: BoxDecoder) -> np.ndarray:
    from keras_transfer.detection.ssd import ssd_anchors

    p = decoder.params
    return ssd_anchors(decoder.image_size, p["num_levels"], min_scale=p["min_scale"],
                       max_scale=p["max_scale"], aspect_ratios=p["aspect_ratios"])


def _decode_ssd(decoder: BoxDecoder, outputs):
    from keras_transfer.detection.ssd import decode_ssd_deltas

    logits = outputs["class_logits"]
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    return decode_ssd_deltas(decoder.anchors(), outputs["box_deltas"]), probs[..., 1:]


def _decode_faster_rcnn(decoder: BoxDecoder, outputs):
    # Per-class boxes: each (proposal, class) pair is one candidate scored for its class only,
    # so the class-wise NMS below is Faster R-CNN's per-class NMS.
    from keras_transfer.detection.roi import decode_boxes_numpy

    logits = outputs["class_logits"]
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs = (probs / probs.sum(-1, keepdims=True))[..., 1:]  # (B, K, C)
    boxes = decode_boxes_numpy(outputs["proposals"][:, :, None, :], outputs["box_deltas"])
    b, k, c = probs.shape
    scores = probs[..., None] * np.eye(c, dtype=np.float32)  # (B, K, C, C)
    return boxes.reshape(b, k * c, 4), scores.reshape(b, k * c, c)


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
    kept box by more than `iou_threshold` are dropped. Returns ``{"boxes", "scores", "classes"}``
    sorted by score.

    Example:
    >>> boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], np.float32)
    >>> scores = np.array([[0.9], [0.8], [0.7]], np.float32)
    >>> non_max_suppression(boxes, scores)["scores"].astype(float).round(2).tolist()
    [0.9, 0.7]
    """
    classes = scores.argmax(-1)
    best = scores.max(-1)
    order = np.argsort(-best, kind="stable")
    order = order[best[order] >= score_threshold]
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
