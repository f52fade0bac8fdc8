"""Reading masks and image + mask pairs: class ids from index or colour PNGs, checked pairs.

Masks are PNGs holding a class index per pixel (grayscale or palette-indexed "P" PNGs, as in
Pascal VOC) or RGB colours mapped to classes by a ``palette``. A pair is checked as it is read
(missing mask, unreadable file, size mismatch, class index out of range) and resized: the image
bilinearly, the mask with nearest neighbour.
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from keras_transfer.data.decode import _file_problem, load_image
from keras_transfer.errors import BadInputError

# A palette: ``{(r, g, b): class}``, or a list of colours whose index is the class.
Palette = Mapping[Sequence[int], int] | Sequence[Sequence[int]]
_INDEX_MODES = ("1", "L", "P", "I", "I;16", "I;16B", "I;16L")


def palette_lookup(palette: Palette) -> tuple[np.ndarray, np.ndarray]:
    """Sorted packed RGB keys (``r << 16 | g << 8 | b``) and their class ids.

    Example:
    >>> keys, classes = palette_lookup({(0, 0, 1): 2, (0, 0, 0): 0})
    >>> keys.tolist(), classes.tolist()
    ([0, 1], [0, 2])
    """
    if isinstance(palette, Mapping):
        pairs = [(tuple(int(c) for c in colour), int(cls)) for colour, cls in palette.items()]
    else:
        pairs = [(tuple(int(c) for c in colour), cls) for cls, colour in enumerate(palette)]
    if any(len(colour) != 3 for colour, _ in pairs):
        raise BadInputError(f"palette colours must be (r, g, b) triples; got {palette!r}.")
    keys = np.array([(r << 16) | (g << 8) | b for (r, g, b), _ in pairs], np.int64)
    order = np.argsort(keys)
    return keys[order], np.array([cls for _, cls in pairs], np.int64)[order]


def read_mask(path: str | os.PathLike, palette: Palette | None = None) -> np.ndarray:
    """Decodes one mask file to class ids ``(H, W)`` (int64), raising `BadInputError` with why.

    Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.png"
    >>> Image.fromarray(np.array([[0, 2]], np.uint8)).save(p)
    >>> read_mask(p).tolist()
    [[0, 2]]
    """
    path = str(path)
    mode, pixels = _decode(path, rgb=palette is not None)
    if palette is not None:
        return _palette_classes(path, pixels, palette)
    if mode in _INDEX_MODES:
        return pixels.astype(np.int64)
    if pixels.ndim == 3 and (pixels[..., :3] == pixels[..., :1]).all():
        return pixels[..., 0].astype(np.int64)  # grey saved as RGB(A)
    if pixels.ndim == 3:
        raise BadInputError(f"{path}: a colour ({mode}) mask needs palette= mapping colours to "
                            "classes")
    raise BadInputError(f"{path}: mode {mode} is not a class-index mask (use 8/16-bit integers)")


def _decode(path: str, rgb: bool) -> tuple[str, np.ndarray]:
    """The file's PIL mode and pixels (converted to RGB when `rgb`), or `BadInputError`."""
    problem = _file_problem(path)
    if problem:
        raise BadInputError(f"{path}: {problem}")
    try:
        with Image.open(path) as image:
            image.load()
            return image.mode, np.asarray(
                image.convert("RGB") if rgb and image.mode != "RGB" else image)
    except UnidentifiedImageError:
        raise BadInputError(f"{path}: not an image PIL can read (unknown format or corrupt header)"
                            ) from None
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise BadInputError(f"{path}: cannot decode mask ({type(error).__name__}: {error})"
                            ) from None


def _palette_classes(path: str, pixels: np.ndarray, palette: Palette) -> np.ndarray:
    """Class ids of RGB `pixels` by `palette`; a colour not in it is a `BadInputError`."""
    keys, classes = palette_lookup(palette)
    packed = (pixels[..., 0].astype(np.int64) << 16) | (pixels[..., 1].astype(np.int64) << 8) \
        | pixels[..., 2].astype(np.int64)
    where = np.clip(np.searchsorted(keys, packed), 0, len(keys) - 1)
    unknown = keys[where] != packed
    if unknown.any():
        value = int(packed[unknown][0])
        colour = (value >> 16, (value >> 8) & 255, value & 255)
        raise BadInputError(f"{path}: colour {colour} ({int(unknown.sum())} pixels) is not in "
                            "the palette")
    return classes[where]


def read_pair(image_path: str, mask_path: str, size: tuple[int, int], palette: Palette | None,
               num_classes: int | None, ignore_class: int | None
               ) -> tuple[np.ndarray, np.ndarray] | tuple[str, str]:
    """Pixels of a checked pair, resized to `size` ``(height, width)``, or ``(bad path,
    reason)``.

    Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(folder / "x.png")
    >>> Image.fromarray(np.ones((4, 4), np.uint8)).save(folder / "m.png")
    >>> image, mask = read_pair(str(folder / "x.png"), str(folder / "m.png"), (2, 2), None, 2,
    ...                         None)
    >>> image.shape, mask.tolist()
    ((2, 2, 3), [[1, 1], [1, 1]])
    >>> read_pair(str(folder / "x.png"), str(folder / "m.png"), (2, 2), None, 1, None)[1]
    'class index 1 out of range (num_classes=1, 16 pixels)'
    """
    if not os.path.exists(mask_path):
        return image_path, f"no mask (expected {mask_path})"
    try:
        image = load_image(image_path)
    except BadInputError as error:
        return image_path, str(error)[len(image_path) + 2:]
    try:
        mask = read_mask(mask_path, palette)
    except BadInputError as error:
        return mask_path, str(error)[len(mask_path) + 2:]
    if image.shape[:2] != mask.shape:
        return mask_path, (f"size {mask.shape[1]}x{mask.shape[0]} differs from its image "
                           f"{image.shape[1]}x{image.shape[0]} ({image_path})")
    valid = mask != ignore_class if ignore_class is not None else np.ones(mask.shape, bool)
    limit = num_classes if num_classes is not None else 255
    bad = valid & ((mask < 0) | (mask >= limit))
    if bad.any():
        return mask_path, (f"class index {int(mask[bad][0])} out of range (num_classes="
                           f"{num_classes}, {int(bad.sum())} pixels)")
    height, width = size
    image = np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))
    mask = np.asarray(Image.fromarray(mask.astype(np.uint8)).resize((width, height),
                                                                      Image.NEAREST))
    return image, mask

