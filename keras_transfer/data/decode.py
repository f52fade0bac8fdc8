"""Decoding image files with PIL: up-front validation, channel fixing and resizing.

Every file is fully decoded in Python before it reaches tf.data, so a corrupt, empty or
mislabelled file is skipped (or, with ``strict=True``, raised) with its path — never a
traceback from inside a tf.data graph.

This is the one decoder of the toolkit: training and evaluation (`load_image`,
`decode_images`) and `predict` on files or encoded bytes (`load_image_bytes`, through
``keras_transfer.export.images``) all read pixels here — any format PIL reads, EXIF orientation
applied, `to_rgb`, then `resize_pil` — so the same file gives the same pixels everywhere.

Memory is bounded by a pixel-count cap (`max_pixels`: 40 megapixels, or the environment variable
``KERAS_TRANSFER_MAX_PIXELS``) checked on the header before any pixel is decoded: a larger JPEG
is decoded at 1/2, 1/4 or 1/8 scale (DCT scaling, ``Image.draft``), any other larger file is
refused with its size, the cap and how to raise it.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import threading
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
MAX_PIXELS = 40_000_000  # ~120 MB as RGB; a 13000x13000 PNG (160 KB on disk) would take ~2 GB
MAX_PIXELS_ENV = "KERAS_TRANSFER_MAX_PIXELS"
_DRAFT_FORMATS = ("JPEG", "MPO")  # decoders that can scale by 1/2, 1/4, 1/8 while decoding
# warnings.catch_warnings swaps process-wide state: decoding threads take turns inside it.
_WARNINGS_LOCK = threading.Lock()


def max_pixels() -> int:
    """The largest pixel count (width x height) decoded at full size: `MAX_PIXELS`, or the
    environment variable ``KERAS_TRANSFER_MAX_PIXELS``.

    Example:
    >>> max_pixels() > 0
    True
    """
    value = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not value:
        return MAX_PIXELS
    try:
        cap = int(float(value))  # "1e8" is fine too
    except ValueError:
        cap = 0
    if cap <= 0:
        raise BadInputError(
            f"{MAX_PIXELS_ENV}={value!r}: expected a positive number of pixels, e.g. 100000000."
        )
    return cap


def too_large_message(pixels: int, cap: int, size: tuple[int, int] | None = None) -> str:
    """The reason given for an image above the pixel cap: its size, the cap, how to raise it.

    Example:
    >>> too_large_message(169_000_000, 40_000_000, (13000, 13000))[:44]
    'image too large: 13000x13000 = 169.0 megapix'
    """
    shape = f"{size[0]}x{size[1]} = " if size else ""
    head = f"image too large: {shape}{pixels / 1e6:.1f} megapixels, above"
    pil_limit = 2 * Image.MAX_IMAGE_PIXELS if Image.MAX_IMAGE_PIXELS else None
    pil_raise = f"PIL.Image.MAX_IMAGE_PIXELS = {pixels} (PIL's own limit, {pil_limit} pixels)"
    if pil_limit and pil_limit < pixels <= cap:  # PIL refused it at open
        return f"{head} PIL's decompression-bomb limit; downscale the file, or set {pil_raise}"
    message = (
        f"{head} the cap of {cap / 1e6:g} megapixels that bounds decoding memory; downscale the "
        f"file, or raise the cap with the environment variable {MAX_PIXELS_ENV}={pixels}"
    )
    return message + (f" and set {pil_raise}" if pil_limit and pixels > pil_limit else "")


@contextlib.contextmanager
def _quiet_pil():
    """PIL's warnings (decompression bomb, corrupt EXIF) off: our own checks report the cause."""
    with _WARNINGS_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _fit_pixel_cap(image: Image.Image, cap: int) -> int:
    """Before decoding: a JPEG above ``cap`` decodes reduced (``draft``); others raise.
    Returns the reduction: 1 (none), 2, 4 or 8 (each side divided by it)."""
    width, height = image.size
    if width * height <= cap:
        return 1
    if image.format in _DRAFT_FORMATS:
        fits = [s for s in (2, 4, 8) if -(-width // s) * -(-height // s) <= cap]
        if fits and min(width, height) >= fits[0]:
            image.draft("RGB", (width // fits[0], height // fits[0]))  # decodes 1/scale²
            if image.size[0] * image.size[1] <= cap:
                return fits[0]
    raise BadInputError(too_large_message(width * height, cap, (width, height)))


def _bomb_pixels(error: Exception) -> int | None:
    found = re.search(r"\((\d+) pixels\)", str(error))
    return int(found.group(1)) if found else None


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
    return _decode(path, path, image_size, resize_mode)[0]


def load_image_bytes(
    data: bytes,
    image_size: tuple[int, int] | None = None,
    resize_mode: str = "stretch",
    *,
    name: str = "<bytes>",
) -> np.ndarray:
    """`load_image` for an encoded file already in memory; errors name it ``name``.

    Example:
    >>> buffer = io.BytesIO(); Image.new("RGB", (8, 6), (255, 0, 0)).save(buffer, "TIFF")
    >>> load_image_bytes(buffer.getvalue(), (4, 4))[0, 0].tolist()
    [255, 0, 0]
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BadInputError(f"{name}: expected encoded image bytes, got {type(data).__name__}.")
    if not len(data):
        raise BadInputError(f"{name}: empty file (0 bytes)")
    return _decode(bytes(data), name, image_size, resize_mode)[0]


def _open(source: str | bytes) -> Image.Image:
    with _quiet_pil():  # a lazy open: reads the header only
        return Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)


def _decode(
    source: str | bytes, name: str, image_size: tuple[int, int] | None, resize_mode: str
) -> tuple[np.ndarray, int]:
    """The decoder behind `load_image` and `load_image_bytes`: the pixels and the JPEG draft
    reduction (1: none); every failure is a BadInputError."""
    cap = max_pixels()
    try:
        with _open(source) as image:
            image.verify()  # cheap structural check (PNG checksums, headers)
        with _open(source) as image:
            reduction = _fit_pixel_cap(image, cap)  # from the header, before decoding
            image.load()  # the real decode: catches truncated and corrupt pixel data
            image = _upright(image)
            image = to_rgb(image)
            if image_size is not None:
                image = resize_pil(image, tuple(image_size), resize_mode)
            return np.asarray(image, dtype=np.uint8), reduction
    except BadInputError as error:
        raise BadInputError(f"{name}: {error}") from None
    except UnidentifiedImageError:
        raise BadInputError(
            f"{name}: not an image PIL can read (unknown format or corrupt header)"
        ) from None
    except Image.DecompressionBombError as error:
        pixels = _bomb_pixels(error)
        reason = too_large_message(pixels, cap) if pixels else f"image too large ({error})"
        raise BadInputError(f"{name}: {reason}") from None
    except Exception as error:  # noqa: BLE001 - any failure of PIL on these bytes is a bad file
        raise BadInputError(
            f"{name}: cannot decode image ({type(error).__name__}: {error})"
        ) from error


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
        with _quiet_pil():
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
    reduced: list[tuple[str, int]] = []  # list.append is atomic: safe from the threads

    def attempt(path: str) -> np.ndarray | str:
        try:
            problem = _file_problem(path)
            if problem:
                raise BadInputError(f"{path}: {problem}")
            pixels, reduction = _decode(path, path, image_size, resize_mode)
        except BadInputError as error:
            return str(error)[len(path) + 2 :]  # the reason without the "path: " prefix
        if reduction > 1:
            reduced.append((path, reduction))
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
    if reduced:
        path, reduction = min(reduced)
        report.notes.append(
            f"{len(reduced)} JPEG(s) above the {max_pixels():,}-pixel cap decoded at reduced "
            f"resolution (JPEG draft, each side / 2-8; e.g. {path}: / {reduction}); raise the "
            f"cap with {MAX_PIXELS_ENV} to decode them whole")
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
