"""SSD (SSDLite-style): anchors on P3–P5 plus extra stride-2 levels, depthwise-separable heads.

The head predicts, for every anchor, 4 box deltas (centre/size offsets scaled by the classic SSD
variances 0.1 / 0.2) and ``num_classes + 1`` logits (class 0 is background). Training matches
anchors to ground truth inside `compute_loss` (IoU ≥ 0.5, plus the best anchor of every box),
with smooth-L1 box loss and softmax cross-entropy with 3:1 hard-negative mining.
"""

from __future__ import annotations

import math
from typing import Sequence

import keras
import numpy as np
from keras import ops

from keras_transfer.detection.pyramid import LEVELS, PyramidBackbone

VARIANCES = (0.1, 0.1, 0.2, 0.2)


def ssd_anchors(
    image_size: tuple[int, int],
    num_levels: int,
    *,
    min_scale: float = 0.1,
    max_scale: float = 0.9,
    aspect_ratios: Sequence[float] = (1.0, 2.0, 0.5),
) -> np.ndarray:
    """SSD anchors, ``xyxy`` pixels, ordered level → row → column → anchor (as the head is).

    Level k (stride ``2**(3+k)``) has scale ``s_k`` linear in [min_scale, max_scale] (fractions
    of the image side), one box per aspect ratio plus a square of ``sqrt(s_k * s_{k+1})``.

    Example:
    >>> ssd_anchors((64, 64), 3).shape
    (336, 4)
    """
    h, w = image_size
    scales = np.linspace(min_scale, max_scale, num_levels + 1)
    out = []
    for k in range(num_levels):
        stride = 2 ** (LEVELS[0] + k)
        rows, cols = math.ceil(h / stride), math.ceil(w / stride)
        sizes = [(scales[k] * math.sqrt(r), scales[k] / math.sqrt(r)) for r in aspect_ratios]
        extra = math.sqrt(scales[k] * scales[k + 1])
        sizes.append((extra, extra))
        cy, cx = np.meshgrid((np.arange(rows) + 0.5) * h / rows,
                             (np.arange(cols) + 0.5) * w / cols, indexing="ij")
        centres = np.stack([cx, cy], -1).reshape(-1, 1, 2)
        half = np.array([(sw * w / 2, sh * h / 2) for sw, sh in sizes]).reshape(1, -1, 2)
        out.append(np.concatenate([centres - half, centres + half], -1).reshape(-1, 4))
    return np.concatenate(out).astype(np.float32)


def _separable(x, filters: int, stride: int, name: str):
    x = keras.layers.DepthwiseConv2D(3, stride, padding="same", use_bias=False,
                                     name=f"{name}_dw")(x)
    x = keras.layers.BatchNormalization(name=f"{name}_dw_bn")(x)
    x = keras.layers.ReLU(6.0, name=f"{name}_dw_relu")(x)
    x = keras.layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_pw")(x)
    x = keras.layers.BatchNormalization(name=f"{name}_pw_bn")(x)
    return keras.layers.ReLU(6.0, name=f"{name}_pw_relu")(x)


@keras.saving.register_keras_serializable(package="keras_transfer")
class SSDDetector(keras.Model):
    """Single-shot detector: `PyramidBackbone` → extra levels → per-level SSDLite heads.

    Outputs ``{"box_deltas": (B, N, 4), "class_logits": (B, N, num_classes + 1)}`` over the N
    anchors of `ssd_anchors`. Train on ``{"boxes": xyxy, "classes": ids}`` padded with -1.

    Example:
    >>> pyramid = PyramidBackbone.from_backbone("mobilenet_v2", weights=None,
    ...                                         input_shape=(64, 64, 3))
    >>> SSDDetector(pyramid, num_classes=2).output["class_logits"].shape
    (None, 336, 3)
    """

    task_name = "detection"  # what keras_transfer.tasks.task_of reads

    def __init__(
        self,
        backbone: PyramidBackbone,
        num_classes: int,
        *,
        extra_levels: int = 0,
        head_width: int = 96,
        min_scale: float = 0.1,
        max_scale: float = 0.9,
        aspect_ratios: Sequence[float] = (1.0, 2.0, 0.5),
        negative_ratio: float = 3.0,
        **kwargs,
    ):
        num_anchors = len(aspect_ratios) + 1
        images = keras.Input(backbone.image_shape, name="images")
        features = list(backbone(images).values())
        for i in range(extra_levels):
            x = keras.layers.Conv2D(head_width, 1, use_bias=False, name=f"extra{i}_reduce")(
                features[-1])
            features.append(_separable(x, head_width, 2, f"extra{i}"))
        boxes, logits = [], []
        for level, feature in enumerate(features, start=LEVELS[0]):
            x = _separable(feature, head_width, 1, f"head_p{level}")
            box = keras.layers.Conv2D(num_anchors * 4, 1, name=f"box_p{level}")(x)
            cls = keras.layers.Conv2D(num_anchors * (num_classes + 1), 1, name=f"cls_p{level}")(x)
            boxes.append(keras.layers.Reshape((-1, 4), name=f"box_p{level}_flat")(box))
            logits.append(keras.layers.Reshape((-1, num_classes + 1),
                                               name=f"cls_p{level}_flat")(cls))
        outputs = {
            "box_deltas": keras.layers.Concatenate(axis=1, name="box_deltas", dtype="float32")(
                boxes),
            "class_logits": keras.layers.Concatenate(
                axis=1, name="class_logits", dtype="float32")(logits),
        }
        super().__init__(inputs=images, outputs=outputs, **kwargs)
        self.backbone = backbone
        self.num_classes = num_classes
        self.extra_levels = extra_levels
        self.head_width = head_width
        self.min_scale, self.max_scale = min_scale, max_scale
        self.aspect_ratios = tuple(float(r) for r in aspect_ratios)
        self.negative_ratio = negative_ratio
        self.anchors = ssd_anchors(tuple(backbone.image_shape[:2]), len(features),
                                   min_scale=min_scale, max_scale=max_scale,
                                   aspect_ratios=aspect_ratios)

    def encode(self, boxes, classes):
        """Anchor targets: (deltas (B, N, 4), class ids (B, N) with 0 = background)."""
        anchors = ops.convert_to_tensor(self.anchors)
        boxes = ops.cast(boxes, "float32")
        valid = ops.cast(classes, "float32") >= 0  # (B, M)
        iou = _iou(anchors, boxes) * ops.cast(valid[:, None, :], "float32")  # (B, N, M)
        best_gt = ops.argmax(iou, axis=2)  # (B, N)
        best_iou = ops.max(iou, axis=2)
        # Every box gets its best anchor, even below the threshold (small or odd-shaped boxes).
        best_anchor = ops.argmax(iou, axis=1)  # (B, M)
        forced = ops.one_hot(best_anchor, anchors.shape[0], axis=1)  # (B, N, M)
        forced = forced * ops.cast(valid[:, None, :], "float32")
        is_forced = ops.max(forced, axis=2) > 0
        matched = ops.where(is_forced, ops.argmax(forced, axis=2), best_gt)
        positive = ops.logical_or(best_iou >= 0.5, is_forced)
        gt = ops.take_along_axis(boxes, matched[..., None], axis=1)  # (B, N, 4)
        gt_class = ops.take_along_axis(ops.cast(classes, "int32"), matched, axis=1)
        target_class = ops.where(positive, gt_class + 1, 0)
        return _encode_deltas(anchors, gt), target_class

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        deltas, target_class = self.encode(y["boxes"], y["classes"])
        positive = ops.cast(target_class > 0, "float32")
        num_pos = ops.sum(positive, axis=1)  # (B,)
        huber = ops.sum(_smooth_l1(y_pred["box_deltas"] - deltas), axis=-1)
        box_loss = ops.sum(huber * positive)
        ce = keras.losses.sparse_categorical_crossentropy(
            target_class, y_pred["class_logits"], from_logits=True)  # (B, N)
        # Hard-negative mining: per image, the `negative_ratio * positives` worst negatives.
        negative_ce = ops.where(positive > 0, -1.0, ce)
        rank = ops.argsort(ops.argsort(-negative_ce, axis=1), axis=1)
        keep = ops.cast(rank, "float32") < (self.negative_ratio * num_pos)[:, None]
        selected = ops.cast(keep, "float32") * (1.0 - positive)
        cls_loss = ops.sum(ce * positive) + ops.sum(ce * selected)
        loss = (box_loss + cls_loss) / ops.maximum(ops.sum(num_pos), 1.0)
        if self.losses:
            loss = loss + ops.sum(self.losses)
        return loss

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "trainable": self.trainable,
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "num_classes": self.num_classes,
            "extra_levels": self.extra_levels,
            "head_width": self.head_width,
            "min_scale": self.min_scale,
            "max_scale": self.max_scale,
            "aspect_ratios": list(self.aspect_ratios),
            "negative_ratio": self.negative_ratio,
        }

    @classmethod
    def from_config(cls, config: dict) -> "SSDDetector":
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)


def _iou(anchors, boxes):
    """IoU of anchors (N, 4) with boxes (B, M, 4) → (B, N, M)."""
    a = anchors[None, :, None, :]
    b = boxes[:, None, :, :]
    wh = ops.maximum(ops.minimum(a[..., 2:], b[..., 2:]) - ops.maximum(a[..., :2], b[..., :2]),
                     0.0)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = ops.maximum(b[..., 2] - b[..., 0], 0.0) * ops.maximum(b[..., 3] - b[..., 1], 0.0)
    return inter / ops.maximum(area_a + area_b - inter, 1e-6)


def _centre(boxes):
    wh = boxes[..., 2:] - boxes[..., :2]
    return boxes[..., :2] + wh / 2, wh


def _encode_deltas(anchors, boxes):
    a_c, a_wh = _centre(anchors)
    b_c, b_wh = _centre(boxes)
    var = ops.convert_to_tensor(VARIANCES)
    xy = (b_c - a_c) / a_wh / var[:2]
    wh = ops.log(ops.maximum(b_wh, 1e-3) / a_wh) / var[2:]
    return ops.concatenate([xy, wh], axis=-1)


def decode_ssd_deltas(anchors: np.ndarray, deltas: np.ndarray) -> np.ndarray:
    """Box deltas (..., N, 4) relative to ``xyxy`` anchors (N, 4) → ``xyxy`` boxes (numpy).

    Example:
    >>> decode_ssd_deltas(np.array([[0., 0., 10., 10.]]), np.zeros((1, 4)))
    array([[ 0.,  0., 10., 10.]], dtype=float32)
    """
    var = np.asarray(VARIANCES, np.float32)
    a_wh = anchors[:, 2:] - anchors[:, :2]
    a_c = anchors[:, :2] + a_wh / 2
    centre = deltas[..., :2] * var[:2] * a_wh + a_c
    wh = np.exp(np.clip(deltas[..., 2:] * var[2:], -10, 10)) * a_wh
    return np.concatenate([centre - wh / 2, centre + wh / 2], -1).astype(np.float32)


def _smooth_l1(x):
    x = ops.abs(x)
    return ops.where(x < 1.0, 0.5 * x * x, x - 0.5)
