"""From the model's input pixels back to the user's image: masks and boxes at the input's size.

A segmenter or detector sees each image resized to its input size ("stretch", a "pad"
letterbox or a centre "crop", as `data.decode.resize_pil` does it). What `kt.predict` hands back
is in the pixels of the image the user passed: per axis, ``model = original * scale + shift``
(`Resize`), inverted for boxes and sampled at pixel centres for masks.

Example:
>>> geometry = Resize.of((100, 200), (50, 50), "pad")   # a 2:1 image letterboxed to 50×50
>>> geometry.scale, geometry.shift
((0.25, 0.25), (12.0, 0.0))
>>> geometry.boxes_to_original(np.array([[0.0, 12.0, 50.0, 37.0]])).tolist()
[[0.0, 0.0, 200.0, 100.0]]
"""

from __future__ import annotations

import dataclasses
import io
import os
from typing import Any, Sequence

import numpy as np

from keras_transfer.data.decode import RESIZE_MODES

_BYTES = (bytes, bytearray, memoryview)
# EXIF orientations that turn the image a quarter (width and height swap when made upright).
_QUARTER_TURNS = (5, 6, 7, 8)


@dataclasses.dataclass(frozen=True)
class Resize:
    """How one image of `original` (height, width) became the model's `size`: per axis
    (y, x), ``model = original * scale + shift``, as `data.decode.resize_pil` resizes."""

    original: tuple[int, int]
    size: tuple[int, int]
    scale: tuple[float, float]
    shift: tuple[float, float]

    @classmethod
    def of(cls, original: Sequence[int], size: Sequence[int], resize_mode: str = "stretch"
           ) -> "Resize":
        """The geometry of `resize_pil(image of original, size, resize_mode)`.

        Example:
        >>> Resize.of((100, 200), (50, 50), "crop").shift
        (0.0, -25.0)
        """
        if resize_mode not in RESIZE_MODES:
            raise ValueError(f"resize_mode must be one of {RESIZE_MODES}, got {resize_mode!r}")
        (h0, w0), (h, w) = (int(original[0]), int(original[1])), (int(size[0]), int(size[1]))
        if resize_mode == "stretch" or h0 * w == w0 * h:
            return cls((h0, w0), (h, w), (h / h0, w / w0), (0.0, 0.0))
        if resize_mode == "pad":  # PIL's ImageOps.pad: contain, then centre on black
            if w0 / h0 > w / h:
                resized = (round(h0 / w0 * w), w)
            else:
                resized = (h, round(w0 / h0 * h))
            shift = tuple(float(round((full - part) * 0.5))
                          for full, part in zip((h, w), resized))
            return cls((h0, w0), (h, w), (resized[0] / h0, resized[1] / w0), shift)
        # "crop", PIL's ImageOps.fit: the centred window of the model's aspect, then resize
        if w0 / h0 >= w / h:
            window = (h0, w / h * h0)
        else:
            window = (w0 / (w / h), w0)
        scale = (h / window[0], w / window[1])
        shift = tuple((part - full) * 0.5 * s for full, part, s in zip((h0, w0), window, scale))
        return cls((h0, w0), (h, w), scale, shift)

    def boxes_to_original(self, boxes: np.ndarray) -> np.ndarray:
        """``xyxy`` boxes in model pixels → the original image's pixels, clipped to it.

        Example:
        >>> Resize.of((20, 40), (10, 10)).boxes_to_original(np.array([[1.0, 1.0, 5.0, 5.0]]))
        array([[ 4.,  2., 20., 10.]])
        """
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        (sy, sx), (ty, tx) = self.scale, self.shift
        out = (boxes - [tx, ty, tx, ty]) / [sx, sy, sx, sy]
        h0, w0 = self.original
        return np.clip(out, 0, [w0, h0, w0, h0])

    def mask_to_original(self, mask: np.ndarray, size: Sequence[int] | None = None
                         ) -> np.ndarray:
        """A ``(h, w)`` class mask in model pixels → the original's (or `size`'s, the same
        image at another resolution) pixels, each sampled at its centre (nearest class).

        Outside a "crop" window, the model saw nothing: those pixels take the nearest edge's
        class.

        Example:
        >>> Resize.of((4, 4), (2, 2)).mask_to_original(np.array([[0, 1], [2, 3]]))
        array([[0, 0, 1, 1],
               [0, 0, 1, 1],
               [2, 2, 3, 3],
               [2, 2, 3, 3]])
        """
        h0, w0 = self.original
        out_h, out_w = (h0, w0) if size is None else (int(size[0]), int(size[1]))
        rows = self._sample(out_h, h0, 0, mask.shape[0])
        columns = self._sample(out_w, w0, 1, mask.shape[1])
        return np.asarray(mask)[rows[:, None], columns[None, :]]

    def _sample(self, count: int, original: int, axis: int, limit: int) -> np.ndarray:
        centres = (np.arange(count) + 0.5) * (original / count)  # in original pixels
        model = centres * self.scale[axis] + self.shift[axis]
        return np.clip(np.floor(model).astype(np.int64), 0, limit - 1)


def source_size(item: Any) -> tuple[int, int]:
    """The (height, width) of an input as the user sees it: a file or encoded bytes read from
    its header, upright after its EXIF orientation (as decoding turns it); an array's shape.

    Example:
    >>> source_size(np.zeros((3, 5, 3)))
    (3, 5)
    """
    if isinstance(item, (str, os.PathLike, *_BYTES)):
        from PIL import Image

        source = io.BytesIO(bytes(item)) if isinstance(item, _BYTES) else item
        with Image.open(source) as image:  # the header only
            width, height = image.size
            try:
                orientation = image.getexif().get(274, 1)
            except Exception:  # noqa: BLE001 - a broken EXIF block is ignored when decoding too
                orientation = 1
        return (width, height) if orientation in _QUARTER_TURNS else (height, width)
    shape = np.shape(item)
    return int(shape[-3]), int(shape[-2])


def source_sizes(inputs: Any) -> list[tuple[int, int]]:
    """`source_size` of every input in the forms `export.images.to_image_batch` accepts.

    Example:
    >>> source_sizes(np.zeros((2, 3, 5, 3)))
    [(3, 5), (3, 5)]
    """
    if isinstance(inputs, (str, os.PathLike, *_BYTES)):
        return [source_size(inputs)]
    if isinstance(inputs, (list, tuple)):
        sizes: list[tuple[int, int]] = []
        for item in inputs:
            is_batch = not isinstance(item, (str, os.PathLike, *_BYTES)) and np.ndim(item) == 4
            sizes += source_sizes(item) if is_batch else [source_size(item)]
        return sizes
    array_shape = np.shape(inputs)
    count = array_shape[0] if len(array_shape) == 4 else 1
    return [source_size(np.empty(array_shape[-3:], dtype=np.uint8))] * count


def source_images(inputs: Any) -> list[np.ndarray]:
    """Each input decoded upright at its own size (uint8 RGB), for drawing on.

    Example:
    >>> source_images(np.zeros((1, 3, 5, 3), "uint8"))[0].shape
    (3, 5, 3)
    """
    from keras_transfer.data.decode import load_image, load_image_bytes

    if isinstance(inputs, (str, os.PathLike, *_BYTES)):
        inputs = [inputs]
    if isinstance(inputs, (list, tuple)):
        images: list[np.ndarray] = []
        for i, item in enumerate(inputs):
            if isinstance(item, _BYTES):
                images.append(load_image_bytes(bytes(item), name=f"predict images[{i}] (bytes)"))
            elif isinstance(item, (str, os.PathLike)):
                images.append(load_image(item))
            else:
                images += source_images(np.asarray(item))
        return images
    array = np.asarray(inputs)
    array = array[None] if array.ndim == 3 else array
    return [np.clip(np.round(image), 0, 255).astype(np.uint8) for image in array]
