"""Box formats and box maths in numpy (readers, augmentation, metrics and decoding share them).

Inside keras-transfer boxes are absolute pixel ``xyxy`` (x_min, y_min, x_max, y_max), float32,
with x to the right and y down; class ids are int32. Readers convert from their file's format.

======================  =========================================================
``xyxy``                x_min, y_min, x_max, y_max (pixels)
``yxyx``                y_min, x_min, y_max, x_max (pixels; TF / keras-hub style)
``xywh``                x_min, y_min, width, height (pixels; COCO JSON)
``cxcywh``              centre x, centre y, width, height (pixels)
``rel_cxcywh``          centre x, centre y, width, height as fractions (YOLO txt)
``rel_xyxy``            xyxy as fractions of the image width / height
======================  =========================================================
"""

from __future__ import annotations

import numpy as np

from keras_transfer.errors import BadInputError

BOX_FORMATS = ("xyxy", "yxyx", "xywh", "cxcywh", "rel_cxcywh", "rel_xyxy")


def _check(fmt: str) -> None:
    if fmt not in BOX_FORMATS:
        raise BadInputError(f"Unknown box format {fmt!r}; expected one of {BOX_FORMATS}.")


def convert_boxes(
    boxes: np.ndarray, source: str, target: str, image_size: tuple[int, int] | None = None
) -> np.ndarray:
    """Converts ``(..., 4)`` boxes between formats; relative formats need ``(height, width)``.

    Example:
    >>> convert_boxes(np.array([[10, 20, 30, 40]]), "xywh", "xyxy")
    array([[10., 20., 40., 60.]], dtype=float32)
    >>> convert_boxes(np.array([[0.5, 0.5, 0.5, 0.25]]), "rel_cxcywh", "xyxy", (100, 200))
    array([[ 50. ,  37.5, 150. ,  62.5]], dtype=float32)
    """
    _check(source)
    _check(target)
    boxes = np.asarray(boxes, dtype=np.float32)
    if boxes.shape[-1:] != (4,):
        raise BadInputError(f"Boxes must have shape (..., 4); got {boxes.shape}.")
    if (source.startswith("rel_") or target.startswith("rel_")) and image_size is None:
        raise BadInputError(f"Converting {source} → {target} needs image_size=(height, width).")
    a, b, c, d = np.moveaxis(boxes, -1, 0)
    if source == "xyxy":
        x0, y0, x1, y1 = a, b, c, d
    elif source == "yxyx":
        y0, x0, y1, x1 = a, b, c, d
    elif source == "xywh":
        x0, y0, x1, y1 = a, b, a + c, b + d
    else:  # centre formats and rel_xyxy
        if source == "rel_xyxy":
            h, w = image_size
            a, b, c, d = a * w, b * h, c * w, d * h
            x0, y0, x1, y1 = a, b, c, d
        else:
            if source == "rel_cxcywh":
                h, w = image_size
                a, b, c, d = a * w, b * h, c * w, d * h
            x0, y0, x1, y1 = a - c / 2, b - d / 2, a + c / 2, b + d / 2
    if target == "xyxy":
        out = (x0, y0, x1, y1)
    elif target == "yxyx":
        out = (y0, x0, y1, x1)
    elif target == "xywh":
        out = (x0, y0, x1 - x0, y1 - y0)
    elif target == "rel_xyxy":
        h, w = image_size
        out = (x0 / w, y0 / h, x1 / w, y1 / h)
    else:
        cx, cy, bw, bh = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
        if target == "rel_cxcywh":
            h, w = image_size
            cx, cy, bw, bh = cx / w, cy / h, bw / w, bh / h
        out = (cx, cy, bw, bh)
    return np.stack(out, axis=-1).astype(np.float32)


def box_area(boxes: np.ndarray) -> np.ndarray:
    """Areas of ``xyxy`` boxes (0 for empty or inverted boxes).

    Example:
    >>> box_area(np.array([[0, 0, 2, 3], [5, 5, 4, 9]]))
    array([6., 0.], dtype=float32)
    """
    boxes = np.asarray(boxes, np.float32)
    return (np.clip(boxes[..., 2] - boxes[..., 0], 0, None)
            * np.clip(boxes[..., 3] - boxes[..., 1], 0, None))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of ``xyxy`` boxes: ``(N, 4)`` × ``(M, 4)`` → ``(N, M)``.

    Example:
    >>> box_iou(np.array([[0, 0, 2, 2]]), np.array([[1, 0, 3, 2], [5, 5, 6, 6]]))
    array([[0.33333334, 0.        ]], dtype=float32)
    """
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0).astype(np.float32)


def clip_boxes(boxes: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Clips ``xyxy`` boxes to the image ``(height, width)``.

    Example:
    >>> clip_boxes(np.array([[-5, 2, 20, 8]]), (10, 10))
    array([[ 0.,  2., 10.,  8.]], dtype=float32)
    """
    h, w = image_size
    boxes = np.asarray(boxes, np.float32).copy()
    boxes[..., 0::2] = np.clip(boxes[..., 0::2], 0, w)
    boxes[..., 1::2] = np.clip(boxes[..., 1::2], 0, h)
    return boxes


def pad_boxes(
    boxes: list[np.ndarray], classes: list[np.ndarray], max_boxes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Packs per-image boxes / classes into dense ``(B, max_boxes, 4)`` / ``(B, max_boxes)`` arrays
    padded with -1 (what keras-cv and keras-hub detectors train on). Extra boxes are cut.

    Example:
    >>> b, c = pad_boxes([np.ones((1, 4))], [np.array([2])], 3)
    >>> c.tolist()
    [[2.0, -1.0, -1.0]]
    """
    out_boxes = -np.ones((len(boxes), max_boxes, 4), np.float32)
    out_classes = -np.ones((len(boxes), max_boxes), np.float32)
    for i, (bx, cl) in enumerate(zip(boxes, classes)):
        n = min(len(bx), max_boxes)
        out_boxes[i, :n] = np.asarray(bx, np.float32)[:n]
        out_classes[i, :n] = np.asarray(cl, np.float32)[:n]
    return out_boxes, out_classes
