"""Heatmaps drawn over their images (colormap blend) and written as PNG files atomically."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from keras_transfer.errors import BadInputError


def colorize(heatmap: np.ndarray, colormap: str = "jet") -> np.ndarray:
    """A [0, 1] heatmap ``(H, W)`` as RGB ``uint8`` ``(H, W, 3)`` through a matplotlib colormap.

    Example:
    >>> colorize(np.array([[0.0, 1.0]]))[0].tolist()  # jet: dark blue to dark red
    [[0, 0, 127], [127, 0, 0]]
    """
    import matplotlib

    try:
        cmap = matplotlib.colormaps[colormap]
    except KeyError:
        raise BadInputError(f"colormap={colormap!r} is not a matplotlib colormap "
                            "(e.g. 'jet', 'inferno', 'viridis').") from None
    heat = np.clip(np.nan_to_num(np.asarray(heatmap, np.float64)), 0.0, 1.0)
    return (cmap(heat)[..., :3] * 255).astype(np.uint8)


def _rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
        raise BadInputError(f"overlay: expected an image (H, W, 1|3|4), got shape {image.shape}.")
    image = np.clip(np.nan_to_num(image.astype(np.float64)), 0, 255)
    return np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image[..., :3]


def _resized(heatmap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    heatmap = np.asarray(heatmap, np.float32)
    if heatmap.shape == size:
        return heatmap
    from PIL import Image

    resized = Image.fromarray(heatmap, mode="F").resize((size[1], size[0]), Image.BILINEAR)
    return np.asarray(resized, np.float32)


def overlay(image: np.ndarray, heatmap: np.ndarray, *, alpha: float = 0.45,
            colormap: str = "jet") -> np.ndarray:
    """The image ``(H, W, C)`` in [0, 255] blended with the colormapped heatmap (resized to the
    image when their sizes differ): ``(1 - alpha) · image + alpha · colour``, as ``uint8``.

    Example:
    >>> out = overlay(np.full((2, 2, 3), 100.0), np.zeros((2, 2)), alpha=0.5)
    >>> out.shape, out.dtype, out[0, 0].tolist()  # grey with jet's dark blue
    ((2, 2, 3), dtype('uint8'), [50, 50, 114])
    """
    if not 0.0 <= alpha <= 1.0:
        raise BadInputError(f"overlay: alpha={alpha!r}, expected a number in [0, 1].")
    image = _rgb(image)
    colour = colorize(_resized(heatmap, image.shape[:2]), colormap).astype(np.float64)
    return np.round((1.0 - alpha) * image + alpha * colour).astype(np.uint8)


def png_bytes(pixels: np.ndarray) -> bytes:
    """RGB ``uint8`` pixels encoded as PNG.

    Example:
    >>> png_bytes(np.zeros((1, 1, 3), np.uint8))[:4]
    b'\\x89PNG'
    """
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def save_overlay(path: str | os.PathLike, image: np.ndarray, heatmap: np.ndarray, *,
                 alpha: float = 0.45, colormap: str = "jet") -> Path:
    """Writes `overlay` as a PNG file, atomically (a temporary file, then a rename).

    Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "cat_gradcam.png"
    >>> save_overlay(path, np.zeros((4, 4, 3)), np.eye(4)).stat().st_size > 0
    True
    """
    from keras_transfer.utils.files import atomic_write_bytes

    return atomic_write_bytes(path, png_bytes(overlay(image, heatmap, alpha=alpha,
                                                      colormap=colormap)))


def file_stem(text: str) -> str:
    """`text` made safe as a file name (letters, digits, ``-``, ``_``, ``.``; others → ``_``).

    Example:
    >>> file_stem("probably defective / 2")
    'probably_defective_2'
    """
    return re.sub(r"[^0-9A-Za-z._-]+", "_", str(text)).strip("_.") or "image"


def unique_stems(names: Sequence[str]) -> list[str]:
    """File stems for `names`, made unique by appending ``_2``, ``_3`` … to repeats.

    Example:
    >>> unique_stems(["a/cat.jpg", "b/cat.png", "dog"])
    ['cat', 'cat_2', 'dog']
    """
    stems, used = [], set()
    for name in names:
        base = file_stem(Path(str(name)).stem or str(name))
        stem, count = base, 1
        while stem in used:
            count += 1
            stem = f"{base}_{count}"
        used.add(stem)
        stems.append(stem)
    return stems
