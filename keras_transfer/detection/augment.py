"""Detection-safe geometry: letterbox resize, flips and scale/crop that move the boxes too.

Boxes are ``xyxy`` pixels. After a crop, boxes are clipped to the image and those keeping less
than `min_visible` of their area (or nothing) are dropped with their classes. Then
`detection_dataset` batches images with -1-padded boxes for `model.fit`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image

from keras_transfer.detection.boxes import box_area, clip_boxes, pad_boxes


def letterbox(
    image: np.ndarray, boxes: np.ndarray, size: tuple[int, int], *, fill: float = 114.0
) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """Resizes keeping the aspect ratio and pads to ``(height, width)``; moves the boxes.

    Returns the image (float32), the boxes and ``(scale, pad_x, pad_y)`` to map predictions
    back: ``original = (box - [pad_x, pad_y, pad_x, pad_y]) / scale``.

    Example:
    >>> image, boxes, (scale, px, py) = letterbox(
    ...     np.zeros((50, 100, 3)), np.array([[0, 0, 100, 50]]), (64, 64))
    >>> image.shape, boxes.tolist(), scale, px, py
    ((64, 64, 3), [[0.0, 16.0, 64.0, 48.0]], 0.64, 0.0, 16.0)
    """
    h, w = image.shape[:2]
    th, tw = size
    scale = min(th / h, tw / w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    resized = np.asarray(Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).resize(
        (nw, nh), Image.BILINEAR), np.float32)
    out = np.full((th, tw, 3), fill, np.float32)
    py, px = (th - nh) // 2, (tw - nw) // 2
    out[py:py + nh, px:px + nw] = resized
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4) * scale + np.array([px, py, px, py],
                                                                              np.float32)
    return out, boxes, (float(scale), float(px), float(py))


def flip_horizontal(image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirrors the image left-right and its boxes.

    Example:
    >>> flip_horizontal(np.zeros((4, 10, 3)), np.array([[1, 0, 3, 2]]))[1].tolist()
    [[7.0, 0.0, 9.0, 2.0]]
    """
    w = image.shape[1]
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    return image[:, ::-1].copy(), np.stack(
        [w - boxes[:, 2], boxes[:, 1], w - boxes[:, 0], boxes[:, 3]], -1)


def crop(
    image: np.ndarray, boxes: np.ndarray, classes: np.ndarray, window: Sequence[int], *,
    min_visible: float = 0.3,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Crops ``window = (x0, y0, x1, y1)``; boxes are shifted, clipped and dropped when less
    than `min_visible` of their area stays inside.

    Example:
    >>> _, b, c = crop(np.zeros((10, 10, 3)), np.array([[0, 0, 4, 4], [6, 6, 10, 10]]),
    ...                np.array([0, 1]), (0, 0, 5, 5))
    >>> b.tolist(), c.tolist()
    ([[0.0, 0.0, 4.0, 4.0]], [0])
    """
    x0, y0, x1, y1 = (int(v) for v in window)
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4) - np.array([x0, y0, x0, y0], np.float32)
    before = box_area(boxes)
    clipped = clip_boxes(boxes, (y1 - y0, x1 - x0))
    keep = (box_area(clipped) > 0) & (box_area(clipped) >= min_visible * before)
    return image[y0:y1, x0:x1], clipped[keep], np.asarray(classes)[keep]


def random_scale_crop(
    image: np.ndarray, boxes: np.ndarray, classes: np.ndarray, rng: np.random.Generator, *,
    scale: tuple[float, float] = (0.6, 1.0),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Crops a random window of `scale` × each side (zoom in); boxes follow (see `crop`).

    Example:
    >>> rng = np.random.default_rng(0)
    >>> image, boxes, classes = random_scale_crop(np.zeros((20, 20, 3)), np.zeros((0, 4)),
    ...                                           np.zeros(0), rng)
    >>> image.shape[0] <= 20
    True
    """
    h, w = image.shape[:2]
    s = rng.uniform(*scale)
    ch, cw = max(1, round(h * s)), max(1, round(w * s))
    y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return crop(image, boxes, classes, (x0, y0, x0 + cw, y0 + ch))


def augment_sample(
    image: np.ndarray, boxes: np.ndarray, classes: np.ndarray, rng: np.random.Generator, *,
    flip: bool = True, scale: tuple[float, float] | None = (0.6, 1.0),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random flip and scale/crop of one sample (boxes moved, clipped and filtered).

    Example:
    >>> rng = np.random.default_rng(0)
    >>> out = augment_sample(np.zeros((8, 8, 3)), np.array([[0, 0, 8, 8]]), np.array([1]), rng)
    >>> out[1].shape[1], out[2].tolist()
    (4, [1])
    """
    if flip and rng.random() < 0.5:
        image, boxes = flip_horizontal(image, boxes)
    if scale is not None and rng.random() < 0.5:
        image, boxes, classes = random_scale_crop(image, boxes, classes, rng, scale=scale)
    return image, boxes, classes


def detection_dataset(
    images: Sequence[np.ndarray] | Sequence[str],
    boxes: Sequence[np.ndarray],
    classes: Sequence[np.ndarray],
    image_size: tuple[int, int],
    *,
    batch_size: int = 8,
    augment: bool = False,
    shuffle: bool = False,
    max_boxes: int = 32,
    seed: int = 0,
):
    """A `tf.data.Dataset` of ``(images, {"boxes", "classes"})`` batches for any detector.

    Images (arrays or file paths) are letterboxed to `image_size` after the optional
    augmentation; boxes are padded with -1 to `max_boxes`. Works with `DetectionData`:
    ``detection_dataset(data.images, data.boxes, data.classes, (128, 128))``.

    Example:
    >>> ds = detection_dataset([np.zeros((40, 60, 3))], [np.array([[0, 0, 30, 20]])],
    ...                        [np.array([0])], (32, 32), max_boxes=2)
    >>> x, y = next(iter(ds))
    >>> x.shape, y["boxes"].shape
    (TensorShape([1, 32, 32, 3]), TensorShape([1, 2, 4]))
    """
    import tensorflow as tf

    n = len(images)
    if not n == len(boxes) == len(classes):
        raise ValueError(f"{n} images, {len(boxes)} box arrays, {len(classes)} class arrays.")
    rng = np.random.default_rng(seed)

    def load(i):
        item = images[i]
        if isinstance(item, (str, bytes)) or hasattr(item, "__fspath__"):
            return np.asarray(Image.open(item).convert("RGB"), np.float32)
        return np.asarray(item, np.float32)

    def generate():
        order = rng.permutation(n) if shuffle else np.arange(n)
        for i in order:
            image, bx, cl = load(i), np.asarray(boxes[i], np.float32), np.asarray(classes[i])
            if augment:
                image, bx, cl = augment_sample(image, bx, cl, rng)
            image, bx, _ = letterbox(image, bx, image_size)
            b, c = pad_boxes([bx], [cl], max_boxes)
            yield image, {"boxes": b[0], "classes": c[0]}

    signature = (tf.TensorSpec((*image_size, 3), tf.float32),
                 {"boxes": tf.TensorSpec((max_boxes, 4), tf.float32),
                  "classes": tf.TensorSpec((max_boxes,), tf.float32)})
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    # A generator's length is unknown to tf.data; stating it lets Keras size epochs and progress
    # bars instead of warning that the input "ran out of data" after the first epoch.
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(n))
    return dataset.batch(batch_size).prefetch(2)
