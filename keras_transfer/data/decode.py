"""Decoding image files with PIL: up-front validation, channel fixing and resizing.

Every file is fully decoded in Python before it reaches tf.data, so a corrupt, empty or
mislabelled file is skipped (or, with ``strict=True``, raised) with its path — never a
traceback from inside a tf.data graph.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from keras_transfer.data.report import LoadReport
from keras_transfer.errors import BadInputError

IMAGE_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".png",
    ".bmp",
    ".gif",
    ".tif",
    ".tiff",
    ".webp",
    ".ppm",
    ".pgm",
    ".pbm",
)
RESIZE_MODES = ("stretch", "pad", "crop")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


def check_resize_mode(resize_mode: str) -> None:
    """Raises `BadInputError` for an unknown resize mode.

    Example:
    >>> check_resize_mode("pad")
    """
    if resize_mode not in RESIZE_MODES:
        raise BadInputError(f"resize_mode must be one of {RESIZE_MODES}; got {resize_mode!r}.")


def to_rgb(image: Image.Image) -> Image.Image:
    """Converts any PIL mode to 8-bit RGB: grayscale, palette, CMYK, 16-bit and float are kept.

    Alpha is dropped (as ``keras.utils.load_img`` does); 16-bit values are scaled to 8 bits.

    Example:
    >>> to_rgb(Image.new("I;16", (4, 4), 65535)).getpixel((0, 0))
    (255, 255, 255)
    """
    if image.mode == "RGB":
        return image
    if image.mode == "P":
        has_alpha = "transparency" in image.info
        return to_rgb(image.convert("RGBA" if has_alpha else "RGB"))
    if image.mode.startswith("I") or image.mode == "F":
        return Image.fromarray(scale_to_uint8(np.asarray(image)), "L").convert("RGB")
    if image.mode in _ALPHA_MODES:
        return image.convert("RGBA").convert("RGB")
    return image.convert("RGB")


def scale_to_uint8(values: np.ndarray) -> np.ndarray:
    """Scales high-bit-depth or float pixels to uint8 0..255 (16-bit: / 257; floats <= 1: * 255).

    Example:
    >>> scale_to_uint8(np.array([0, 32896, 65535], np.uint16)).tolist()
    [0, 128, 255]
    """
    is_float = values.dtype.kind == "f"
    values = np.nan_to_num(values.astype(np.float64))
    if is_float and values.size and values.max() <= 1.0:
        values = values * 255.0  # float images in [0, 1]
    elif values.size and values.max() > 255:
        values = values / 257.0  # 16-bit range 0..65535 maps exactly onto 0..255
    return np.clip(np.round(values), 0, 255).astype(np.uint8)


def resize_pil(
    image: Image.Image, size: tuple[int, int], resize_mode: str = "stretch"
) -> Image.Image:
    """Resizes to ``size`` = (height, width): stretch, letterbox ("pad", black bars) or "crop".

    Example:
    >>> resize_pil(Image.new("RGB", (100, 50)), (32, 32), "pad").size
    (32, 32)
    """
    height, width = size
    if image.size == (width, height):
        return image
    if resize_mode == "pad":
        return ImageOps.pad(image, (width, height), method=Image.BILINEAR, color=(0, 0, 0))
    if resize_mode == "crop":
        return ImageOps.fit(image, (width, height), method=Image.BILINEAR)
    return image.resize((width, height), Image.BILINEAR)


def load_image(
    path: str | os.PathLike,
    image_size: tuple[int, int] | None = None,
    resize_mode: str = "stretch",
) -> np.ndarray:
    """Fully decodes one image file to uint8 (H, W, 3), raising `BadInputError` with the reason.

    Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "gray.png"
    >>> Image.new("L", (8, 6), 128).save(p)
    >>> load_image(p, (4, 4)).shape
    (4, 4, 3)
    """
    path = str(path)
    problem = _file_problem(path)
    if problem:
        raise BadInputError(f"{path}: {problem}")
    try:
        with Image.open(path) as image:
            image.verify()  # cheap structural check (PNG checksums, headers)
        with Image.open(path) as image:
            image.load()  # the real decode: catches truncated and corrupt pixel data
            image = _upright(image)
            image = to_rgb(image)
            if image_size is not None:
                image = resize_pil(image, tuple(image_size), resize_mode)
            pixels = np.asarray(image, dtype=np.uint8)
    except UnidentifiedImageError:
        raise BadInputError(
            f"{path}: not an image PIL can read (unknown format or corrupt header)"
        ) from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, EOFError) as error:
        raise BadInputError(
            f"{path}: cannot decode image ({type(error).__name__}: {error})"
        ) from error
    return pixels


def _file_problem(path: str) -> str | None:
    if os.path.islink(path) and not os.path.exists(path):
        return "broken symbolic link"
    if os.path.isdir(path):
        return "is a directory, not an image file"
    if not os.path.exists(path):
        return "file not found"
    if not os.access(path, os.R_OK):
        return "permission denied"
    if os.path.getsize(path) == 0:
        return "empty file (0 bytes)"
    return None


def _upright(image: Image.Image) -> Image.Image:
    """Applies the EXIF orientation (phone photos); a broken EXIF block is ignored, not fatal."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - EXIF is optional metadata; the pixels are what matter
        return image


def decode_images(
    paths: Sequence[str],
    report: LoadReport,
    *,
    image_size: tuple[int, int],
    resize_mode: str = "stretch",
    keep_pixels: bool = True,
    workers: int | None = None,
) -> tuple[list[int], np.ndarray | None]:
    """Decodes every path up front; bad ones are skipped in ``report`` (or raise if strict).

    Returns the positions of the good paths and, with ``keep_pixels``, their pixels stacked as
    uint8 (N, H, W, 3). In strict mode the first bad path (in input order) raises.

    Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> Image.new("RGB", (5, 5)).save(folder / "ok.png")
    >>> _ = (folder / "bad.png").write_bytes(b"")
    >>> report = LoadReport("demo")
    >>> good, pixels = decode_images([str(folder / "ok.png"), str(folder / "bad.png")],
    ...     report, image_size=(4, 4))
    >>> good, pixels.shape, report.skipped[0][1]
    ([0], (1, 4, 4, 3), 'empty file (0 bytes)')
    """
    check_resize_mode(resize_mode)

    def attempt(path: str) -> np.ndarray | str:
        try:
            pixels = load_image(path, image_size, resize_mode)
        except BadInputError as error:
            return str(error)[len(path) + 2 :]  # the reason without the "path: " prefix
        return pixels if keep_pixels else np.zeros(0, np.uint8)

    workers = workers or min(8, (os.cpu_count() or 1) + 2)  # PIL releases the GIL while decoding
    good, arrays = [], []
    executor = ThreadPoolExecutor(max_workers=workers)
    try:
        for position, (path, result) in enumerate(zip(paths, executor.map(attempt, paths))):
            if isinstance(result, str):
                report.skip(path, result)
            else:
                good.append(position)
                arrays.append(result)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
    if not keep_pixels:
        return good, None
    height, width = image_size
    pixels = np.stack(arrays) if arrays else np.zeros((0, height, width, 3), np.uint8)
    return good, pixels


def list_image_files(folder: Path, extensions: Sequence[str]) -> tuple[list[Path], list[Path]]:
    """``(image-like entries, other files)`` under ``folder``, recursive and sorted.

    Broken links and directories named like images count as image-like, so validation reports
    them; hidden entries (".DS_Store", ".ipynb_checkpoints") are ignored altogether.

    Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "a.PNG").write_bytes(b"x")
    >>> _ = (folder / "notes.txt").write_text("x")
    >>> [[p.name for p in group] for group in list_image_files(folder, IMAGE_EXTENSIONS)]
    [['a.PNG'], ['notes.txt']]
    """
    extensions = tuple(e.lower() for e in extensions)
    found, others = [], []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in list(dirs):
            if name.lower().endswith(extensions):  # "x.jpg/" is a directory, not an image
                found.append(Path(root) / name)
                dirs.remove(name)
        for name in files:
            if not name.startswith("."):
                is_image = name.lower().endswith(extensions)
                (found if is_image else others).append(Path(root) / name)
    return sorted(found), sorted(others)
