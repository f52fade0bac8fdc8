"""Two-stage detection pieces in `keras.ops`: anchors, box coding, proposals, RoI Align, sampling.

keras.ops has neither NMS nor ``crop_and_resize``, so both are written here with fixed shapes
(they trace, and convert to built-in TFLite ops): NMS is exact greedy suppression over the
top-k boxes, solved as a fixed point in a ``while_loop`` (a TFLite ``WHILE``) of a few steps,
RoI Align is bilinear sampling with gathers from all pyramid levels flattened into one table.
"""

from __future__ import annotations

import math
from typing import Sequence

import keras
import numpy as np
from keras import ops

from keras_transfer.detection.pyramid import LEVELS

RPN_WEIGHTS = (1.0, 1.0, 1.0, 1.0)
HEAD_WEIGHTS = (10.0, 10.0, 5.0, 5.0)  # the classic R-CNN scaling of (dx, dy, dw, dh)
MAX_LOG_SCALE = math.log(1000.0 / 16)  # clamp on dw, dh (as Detectron2) so exp cannot blow up
CANONICAL_SIZE, CANONICAL_LEVEL = 224.0, 4  # FPN paper: a 224 px box pools from P4
SAMPLES_PER_BIN = 2  # bilinear samples per RoI bin side (2 × 2 per bin, averaged)


def rpn_anchors(
    image_size: tuple[int, int],
    *,
    anchor_size: float = 2.0,
    aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
    anchor_scales: Sequence[float] = (1.0, 2**0.5),
) -> np.ndarray:
    """RPN anchors, ``xyxy`` pixels, ordered level → row → column → anchor (as the RPN head).

    Level k (stride ``2**k``, k = 3, 4, 5) has anchors of side ``anchor_size * 2**k * scale``
    for each scale, in each aspect ratio (width / height).

    Example:
    >>> rpn_anchors((64, 64)).shape  # (64 + 16 + 4) cells × 6 anchors
    (504, 4)
    """
    h, w = image_size
    out = []
    for level in LEVELS:
        stride = 2**level
        sizes = [(anchor_size * stride * s * math.sqrt(r), anchor_size * stride * s / math.sqrt(r))
                 for s in anchor_scales for r in aspect_ratios]
        cy, cx = np.meshgrid((np.arange(h // stride) + 0.5) * stride,
                             (np.arange(w // stride) + 0.5) * stride, indexing="ij")
        centres = np.stack([cx, cy], -1).reshape(-1, 1, 2)
        half = np.array(sizes).reshape(1, -1, 2) / 2
        out.append(np.concatenate([centres - half, centres + half], -1).reshape(-1, 4))
    return np.concatenate(out).astype(np.float32)


# --------------------------------------------------------------------------- box coding


def encode_boxes(reference, boxes, weights: Sequence[float]):
    """``xyxy`` boxes → ``(dx, dy, dw, dh)`` deltas relative to `reference` boxes (ops)."""
    r_wh = ops.maximum(reference[..., 2:] - reference[..., :2], 1e-3)
    b_wh = ops.maximum(boxes[..., 2:] - boxes[..., :2], 1e-3)
    r_c = reference[..., :2] + r_wh / 2
    b_c = boxes[..., :2] + b_wh / 2
    w = ops.convert_to_tensor(weights, "float32")
    return ops.concatenate([(b_c - r_c) / r_wh * w[:2], ops.log(b_wh / r_wh) * w[2:]], axis=-1)


def decode_boxes(reference, deltas, weights: Sequence[float]):
    """Inverse of `encode_boxes` (ops): deltas relative to `reference` → ``xyxy`` boxes."""
    w = ops.convert_to_tensor(weights, "float32")
    r_wh = reference[..., 2:] - reference[..., :2]
    centre = reference[..., :2] + r_wh / 2 + deltas[..., :2] / w[:2] * r_wh
    wh = ops.exp(ops.minimum(deltas[..., 2:] / w[2:], MAX_LOG_SCALE)) * r_wh
    return ops.concatenate([centre - wh / 2, centre + wh / 2], axis=-1)


def decode_boxes_numpy(reference: np.ndarray, deltas: np.ndarray,
                       weights: Sequence[float] = HEAD_WEIGHTS) -> np.ndarray:
    """`decode_boxes` in numpy, for host-side decoding of exported outputs.

    Example:
    >>> decode_boxes_numpy(np.array([[0., 0., 10., 10.]]), np.zeros((1, 4)))
    array([[ 0.,  0., 10., 10.]], dtype=float32)
    """
    w = np.asarray(weights, np.float32)
    r_wh = reference[..., 2:] - reference[..., :2]
    centre = reference[..., :2] + r_wh / 2 + deltas[..., :2] / w[:2] * r_wh
    wh = np.exp(np.minimum(deltas[..., 2:] / w[2:], MAX_LOG_SCALE)) * r_wh
    return np.concatenate([centre - wh / 2, centre + wh / 2], -1).astype(np.float32)


def pairwise_iou(a, b):
    """IoU of ``xyxy`` boxes ``(B, N, 4)`` × ``(B, M, 4)`` → ``(B, N, M)`` (ops)."""
    a, b = a[:, :, None, :], b[:, None, :, :]
    wh = ops.maximum(ops.minimum(a[..., 2:], b[..., 2:]) - ops.maximum(a[..., :2], b[..., :2]),
                     0.0)
    inter = wh[..., 0] * wh[..., 1]

    def area(x):
        return ops.maximum(x[..., 2] - x[..., 0], 0.0) * ops.maximum(x[..., 3] - x[..., 1], 0.0)

    return inter / ops.maximum(area(a) + area(b) - inter, 1e-6)


def smooth_l1(x, beta: float = 1.0 / 9):
    """Elementwise smooth-L1 (Huber / beta), the R-CNN box loss."""
    x = ops.abs(x)
    return ops.where(x < beta, 0.5 * x * x / beta, x - 0.5 * beta)


# --------------------------------------------------------------------------- proposals


def greedy_nms(boxes, iou_threshold: float, num_keep: int):
    """Greedy NMS of boxes sorted by score: ``(B, T, 4)`` → ``(B, num_keep, 4)``.

    Exact greedy NMS without a per-box loop: box j is kept iff no earlier *kept* box overlaps it
    by more than `iou_threshold`. That rule is solved by iterating it from "all kept" until
    nothing changes (box j is settled once every earlier box is, so it stops within the longest
    suppression chain, a few steps in practice). The kept boxes come first in score order,
    then the suppressed ones, so there are always `num_keep` boxes.
    """
    t = boxes.shape[1]
    later = ops.cast(ops.arange(t)[None, :] > ops.arange(t)[:, None], "float32")
    suppresses = ops.cast(pairwise_iou(boxes, boxes) > iou_threshold, "float32") * later

    def step(keep, previous):
        hit = ops.matmul(keep[:, None, :], suppresses)[:, 0]  # kept boxes overlapping each box
        return ops.cast(hit == 0, "float32"), keep

    def changed(keep, previous):
        return ops.any(keep != previous)

    ones = ops.ones_like(boxes[..., 0])
    keep, _ = ops.while_loop(changed, step, (ones, 1.0 - ones), maximum_iterations=t)
    order = ops.cast(t - ops.arange(t), "float32")  # integer keys, no ties
    _, index = ops.top_k(keep * t + order, num_keep)
    return ops.take_along_axis(boxes, index[..., None], axis=1)


@keras.saving.register_keras_serializable(package="keras_transfer")
class RegionProposals(keras.layers.Layer):
    """RPN outputs → ``(B, num_proposals, 4)`` ``xyxy`` proposals (no weights).

    The `pre_nms_topk` highest-objectness anchors (over all levels) are decoded, clipped to the
    image and reduced by greedy NMS; the kept boxes come first in score order, then, if fewer
    than `num_proposals` survive, the suppressed ones (the box head scores them anyway).
    """

    def __init__(self, image_size: Sequence[int], num_proposals: int = 100,
                 pre_nms_topk: int = 500, iou_threshold: float = 0.7, *,
                 anchor_size: float = 2.0, aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
                 anchor_scales: Sequence[float] = (1.0, 2**0.5), **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.image_size = tuple(int(v) for v in image_size)
        self.anchor_size = float(anchor_size)
        self.aspect_ratios = tuple(float(r) for r in aspect_ratios)
        self.anchor_scales = tuple(float(s) for s in anchor_scales)
        self.anchors = rpn_anchors(self.image_size, anchor_size=self.anchor_size,
                                   aspect_ratios=self.aspect_ratios,
                                   anchor_scales=self.anchor_scales)
        self.num_proposals = int(num_proposals)
        self.pre_nms_topk = min(int(pre_nms_topk), len(self.anchors))
        self.iou_threshold = float(iou_threshold)

    def call(self, logits, deltas):
        _, index = ops.top_k(logits, self.pre_nms_topk)
        anchors = ops.take(ops.convert_to_tensor(self.anchors), index, axis=0)
        deltas = ops.take_along_axis(deltas, index[..., None], axis=1)
        boxes = decode_boxes(anchors, deltas, RPN_WEIGHTS)
        h, w = self.image_size
        boxes = ops.clip(boxes, 0.0, ops.convert_to_tensor([w, h, w, h], "float32"))
        return greedy_nms(boxes, self.iou_threshold, self.num_proposals)

    def compute_output_shape(self, logits_shape, deltas_shape):
        return (logits_shape[0], self.num_proposals, 4)

    def get_config(self) -> dict:
        return {**super().get_config(), "image_size": list(self.image_size),
                "num_proposals": self.num_proposals, "pre_nms_topk": self.pre_nms_topk,
                "iou_threshold": self.iou_threshold, "anchor_size": self.anchor_size,
                "aspect_ratios": list(self.aspect_ratios),
                "anchor_scales": list(self.anchor_scales)}


# --------------------------------------------------------------------------- RoI Align


@keras.saving.register_keras_serializable(package="keras_transfer")
class RoIAlign(keras.layers.Layer):
    """``[P3, P4, P5]`` features and ``(B, K, 4)`` pixel boxes → ``(B, K, S, S, C)`` crops.

    Each box pools from one level, FPN-style: ``floor(4 + log2(sqrt(area) / 224))`` clipped to
    3…5. Bins sample 2 × 2 bilinear points (pixel-centre aligned, as Detectron2's
    ``aligned=True``) and average them. All levels are flattened into one table so every box
    needs only four gathers, whichever level it reads.
    """

    def __init__(self, image_size: Sequence[int], output_size: int = 7, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.image_size = tuple(int(v) for v in image_size)
        self.output_size = int(output_size)
        h, w = self.image_size
        shapes = [(h // 2**level, w // 2**level) for level in LEVELS]
        self._heights = [float(s[0]) for s in shapes]
        self._widths = [float(s[1]) for s in shapes]
        self._offsets = [float(v) for v in np.cumsum([0] + [a * b for a, b in shapes])[:-1]]
        self._cells = int(sum(a * b for a, b in shapes))

    def call(self, features, boxes):
        channels = features[0].shape[-1]
        table = ops.concatenate(
            [ops.reshape(f, (ops.shape(f)[0], -1, channels)) for f in features], axis=1)
        table = ops.reshape(table, (-1, channels))  # (B * cells, C)
        num_boxes = boxes.shape[1]
        area = ops.maximum((boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1]), 1.0)
        level = ops.floor(CANONICAL_LEVEL + ops.log(ops.sqrt(area) / CANONICAL_SIZE) / math.log(2))
        level = ops.cast(ops.clip(level, LEVELS[0], LEVELS[-1]) - LEVELS[0], "int32")  # (B, K)

        def per_level(values):
            return ops.take(ops.convert_to_tensor(values, "float32"), level)

        stride = ops.power(2.0, ops.cast(level, "float32") + LEVELS[0])
        height, width = per_level(self._heights), per_level(self._widths)
        grid = self.output_size * SAMPLES_PER_BIN
        steps = (ops.arange(grid, dtype="float32") + 0.5) / grid  # sample positions in a box

        def coords(lo, hi, size):  # (B, K) box sides → (B, K, grid) feature coordinates
            pos = (lo / stride)[..., None] + steps * ((hi - lo) / stride)[..., None] - 0.5
            pos = ops.clip(pos, 0.0, (size - 1.0)[..., None])
            low = ops.floor(pos)
            return low, ops.minimum(low + 1.0, (size - 1.0)[..., None]), pos - low

        y0, y1, wy = coords(boxes[..., 1], boxes[..., 3], height)
        x0, x1, wx = coords(boxes[..., 0], boxes[..., 2], width)
        batch = ops.arange(ops.shape(boxes)[0], dtype="float32")[:, None] * self._cells
        base = (batch + per_level(self._offsets))[..., None, None]  # (B, K, 1, 1)
        row_width = width[..., None, None]

        # Rank-4 tensors (B·K, G, G, C) from here on: TFLite's XNNPack rejects a 7-D mean.
        def gather(ys, xs):  # (B, K, G) rows × (B, K, G) columns → (B·K, G, G, C)
            index = base + ys[..., :, None] * row_width + xs[..., None, :]
            values = ops.take(table, ops.reshape(ops.cast(index, "int32"), (-1,)), axis=0)
            return ops.reshape(values, (-1, grid, grid, channels))

        wy = ops.reshape(wy, (-1, grid, 1, 1))
        wx = ops.reshape(wx, (-1, 1, grid, 1))
        sampled = ((1 - wy) * ((1 - wx) * gather(y0, x0) + wx * gather(y0, x1))
                   + wy * ((1 - wx) * gather(y1, x0) + wx * gather(y1, x1)))
        pooled = ops.average_pool(sampled, SAMPLES_PER_BIN, SAMPLES_PER_BIN, padding="valid")
        s = self.output_size
        return ops.reshape(pooled, (-1, num_boxes, s, s, channels))

    def compute_output_shape(self, features_shape, boxes_shape):
        s = self.output_size
        return (boxes_shape[0], boxes_shape[1], s, s, features_shape[0][-1])

    def get_config(self) -> dict:
        return {**super().get_config(), "image_size": list(self.image_size),
                "output_size": self.output_size}


# --------------------------------------------------------------------------- sampling


def _rank(key):
    """Rank of each entry along the last axis, 0 for the largest."""
    return ops.argsort(ops.argsort(-key, axis=-1), axis=-1)


def sample(positive, negative, num_samples: int, positive_fraction: float, seed):
    """Random fixed-size sampling per image: at most ``num_samples * positive_fraction``
    positives, negatives filling up to `num_samples`. Returns float masks (positives, negatives).
    """
    noise = keras.random.uniform(ops.shape(positive), seed=seed)
    most = int(num_samples * positive_fraction)
    take_pos = ops.logical_and(positive, _rank(ops.where(positive, noise, -1.0)) < most)
    room = num_samples - ops.sum(ops.cast(take_pos, "int32"), axis=-1, keepdims=True)
    take_neg = ops.logical_and(negative, _rank(ops.where(negative, noise, -1.0)) < room)
    return ops.cast(take_pos, "float32"), ops.cast(take_neg, "float32")
