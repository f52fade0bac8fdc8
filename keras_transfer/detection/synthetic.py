"""A synthetic detection set made on the fly: coloured shapes on textured backgrounds.

The class of an object is its shape (square, disc, triangle, cross, …), its colour is random, so a
detector must learn shape, not colour. Boxes are exact. Used by the tests and bench/detection.py.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("square", "disc", "triangle", "cross", "ring")


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smooth colour noise plus faint stripes (texture a detector has to ignore)."""
    coarse = rng.uniform(40, 215, (4, 4, 3))
    image = np.asarray(Image.fromarray(coarse.astype(np.uint8)).resize((size, size),
                                                                      Image.BILINEAR), np.float32)
    yy, xx = np.mgrid[0:size, 0:size]
    angle, period = rng.uniform(0, np.pi), rng.uniform(4, 12)
    stripes = 18 * np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
    image = image + stripes[..., None] + rng.normal(0, 8, image.shape)
    return np.clip(image, 0, 255)


def _draw(draw: ImageDraw.ImageDraw, shape: str, box: tuple, colour: tuple) -> None:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    if shape == "square":
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], fill=colour)
    elif shape == "disc":
        draw.ellipse([x0, y0, x1 - 1, y1 - 1], fill=colour)
    elif shape == "triangle":
        draw.polygon([(x0 + w / 2, y0), (x1 - 1, y1 - 1), (x0, y1 - 1)], fill=colour)
    elif shape == "cross":
        draw.rectangle([x0 + w / 3, y0, x0 + 2 * w / 3 - 1, y1 - 1], fill=colour)
        draw.rectangle([x0, y0 + h / 3, x1 - 1, y0 + 2 * h / 3 - 1], fill=colour)
    else:  # ring
        draw.ellipse([x0, y0, x1 - 1, y1 - 1], outline=colour, width=max(2, int(w / 5)))


def synthetic_detection(
    num_images: int,
    image_size: int = 64,
    num_classes: int = 3,
    *,
    max_objects: int = 3,
    min_size: float = 0.2,
    max_size: float = 0.45,
    seed: int = 0,
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Images ``(N, S, S, 3)`` float32 in [0, 255], per-image ``xyxy`` boxes and class ids.

    Each image has 1 … `max_objects` objects (sides `min_size` … `max_size` of the image,
    overlaps of more than 30 % IoU avoided). Classes are shapes: ``SHAPES[:num_classes]``.

    Example:
    >>> images, boxes, classes = synthetic_detection(2, 64, num_classes=2, seed=1)
    >>> images.shape, boxes[0].shape[1], int(classes[0].max()) < 2
    ((2, 64, 64, 3), 4, True)
    """
    if not 1 <= num_classes <= len(SHAPES):
        raise ValueError(f"num_classes must be in 1..{len(SHAPES)}; got {num_classes}.")
    from keras_transfer.detection.boxes import box_iou

    rng = np.random.default_rng(seed)
    images = np.empty((num_images, image_size, image_size, 3), np.float32)
    all_boxes, all_classes = [], []
    for i in range(num_images):
        canvas = Image.fromarray(_background(rng, image_size).astype(np.uint8))
        draw = ImageDraw.Draw(canvas)
        boxes, classes = [], []
        for _ in range(int(rng.integers(1, max_objects + 1))):
            for _attempt in range(10):
                side = rng.uniform(min_size, max_size, 2) * image_size
                x0, y0 = rng.uniform(0, image_size - side)
                box = np.array([x0, y0, x0 + side[0], y0 + side[1]]).round()
                if not boxes or box_iou(box[None], np.array(boxes)).max() < 0.3:
                    break
            else:
                continue
            cls = int(rng.integers(num_classes))
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            _draw(draw, SHAPES[cls], tuple(box), colour)
            boxes.append(box)
            classes.append(cls)
        images[i] = np.asarray(canvas, np.float32)
        all_boxes.append(np.array(boxes, np.float32).reshape(-1, 4))
        all_classes.append(np.array(classes, np.int32))
    return images, all_boxes, all_classes
