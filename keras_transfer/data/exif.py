"""EXIF orientation inside a TensorFlow graph, for the SavedModel's ``serve_bytes`` signature.

Training turns phone photos upright with PIL (``ImageOps.exif_transpose``); ``tf.io.decode_image``
ignores EXIF. `exif_orientation` finds the Orientation tag (0x0112) of the first IFD with plain
tensor ops — in a JPEG APP1 ``Exif\\0\\0`` segment, a PNG ``eXIf`` chunk or a WebP ``EXIF`` chunk,
in both byte orders (``II`` and ``MM``) — and `apply_orientation` applies it as PIL does, with
``rot90``/flips. Missing, truncated or odd EXIF reads as orientation 1 (as stored), never an error.
The search looks at the first and last 256 KiB of the file (EXIF sits at the start of JPEG and
PNG files, at the end of WebP ones).
"""

from __future__ import annotations

import tensorflow as tf

ORIENTATION_TAG = 0x0112
_WINDOW = 256 * 1024  # bytes searched at each end of the file
_MAX_ENTRIES = 512  # IFD entries read (real files have a few dozen)
_TIFF_II = (0x49, 0x49, 0x2A, 0x00)
_TIFF_MM = (0x4D, 0x4D, 0x00, 0x2A)
# What precedes the TIFF header: JPEG APP1 (and some WebP), PNG eXIf, WebP EXIF + chunk size.
_PREFIXES = ((b"Exif\0\0", 0), (b"eXIf", 0), (b"EXIF", 4))


def _ends(data: tf.Tensor) -> tf.Tensor:
    """The whole file when small, else its first and last `_WINDOW` bytes, as uint8."""
    length = tf.strings.length(data)
    head = tf.strings.substr(data, 0, _WINDOW)
    tail = tf.strings.substr(data, tf.maximum(length - _WINDOW, 0), _WINDOW)
    return tf.io.decode_raw(tf.where(length <= 2 * _WINDOW, data, head + tail), tf.uint8)


def _matches(raw: tf.Tensor, pattern: bytes | tuple[int, ...], shift: int) -> tf.Tensor:
    """Where ``raw[i + shift : i + shift + len(pattern)] == pattern``, for every ``i``."""
    size = tf.shape(raw)[0]
    padded = tf.pad(raw, [[16, 16]])
    found = tf.ones([size], tf.bool)
    for k, value in enumerate(pattern):
        window = padded[16 + shift + k : 16 + shift + k + size]
        found = tf.logical_and(found, tf.equal(window, tf.constant(value, tf.uint8)))
    return found


def _tiff_start(raw: tf.Tensor) -> tf.Tensor:
    """Offset of the first EXIF TIFF header in ``raw`` (int64), or -1."""
    header = tf.logical_or(_matches(raw, _TIFF_II, 0), _matches(raw, _TIFF_MM, 0))
    after_prefix = tf.zeros_like(header)
    for prefix, gap in _PREFIXES:
        after_prefix = tf.logical_or(after_prefix, _matches(raw, prefix, -len(prefix) - gap))
    found = tf.where(tf.logical_and(header, after_prefix))[:, 0]
    return tf.cond(tf.size(found) > 0, lambda: found[0], lambda: tf.constant(-1, tf.int64))


def exif_orientation(data: tf.Tensor) -> tf.Tensor:
    """The EXIF orientation (int32, 1..8) of one encoded image (a scalar string tensor); 1 when
    there is none or it cannot be read.

    Example:
    >>> import io, PIL.Image
    >>> exif = PIL.Image.Exif(); exif[0x0112] = 6
    >>> buffer = io.BytesIO(); PIL.Image.new("RGB", (8, 4)).save(buffer, "JPEG", exif=exif)
    >>> int(exif_orientation(tf.constant(buffer.getvalue())))
    6
    """
    raw = _ends(data)
    size = tf.cast(tf.shape(raw)[0], tf.int64)
    padded = tf.cast(tf.pad(raw, [[0, 8]]), tf.int64)
    start = _tiff_start(raw)
    little = tf.equal(tf.gather(padded, tf.maximum(start, 0)), 0x49)

    def read(offset: tf.Tensor, width: int) -> tf.Tensor:
        """Unsigned ``width``-byte integers at ``start + offset`` (0 past the end)."""
        position = tf.clip_by_value(start + offset, 0, size)
        values = [tf.gather(padded, position + k) for k in range(width)]
        ordered = values[::-1] if width > 1 else values
        little_value = sum(v * 256**k for k, v in enumerate(values))
        big_value = sum(v * 256**k for k, v in enumerate(ordered))
        return tf.where(little, little_value, big_value)

    ifd = read(tf.constant(4, tf.int64), 4)
    count = tf.minimum(read(ifd, 2), _MAX_ENTRIES)
    entries = ifd + 2 + 12 * tf.range(count)
    tag, kind, number = read(entries, 2), read(entries + 2, 2), read(entries + 4, 4)
    value = tf.where(tf.equal(kind, 3), read(entries + 8, 2), read(entries + 8, 4))
    inside = start + entries + 12 <= size
    wanted = tf.logical_and(tf.equal(tag, ORIENTATION_TAG), tf.equal(number, 1))
    wanted = tf.logical_and(wanted, tf.logical_or(tf.equal(kind, 3), tf.equal(kind, 4)))
    values = tf.boolean_mask(value, tf.logical_and(wanted, inside))
    orientation = tf.cond(
        tf.logical_and(start >= 0, tf.size(values) > 0),
        lambda: values[0],
        lambda: tf.constant(1, tf.int64),
    )
    in_range = tf.logical_and(orientation >= 1, orientation <= 8)
    return tf.cast(tf.where(in_range, orientation, 1), tf.int32)


def apply_orientation(image: tf.Tensor, orientation: tf.Tensor) -> tf.Tensor:
    """Turns an ``(H, W, C)`` image upright for EXIF ``orientation`` 1..8, as PIL's
    ``ImageOps.exif_transpose`` does.

    Example:
    >>> image = tf.reshape(tf.range(6), (2, 3, 1))
    >>> apply_orientation(image, tf.constant(6)).shape
    TensorShape([3, 2, 1])
    """
    branches = [
        lambda: image,
        lambda: tf.image.flip_left_right(image),  # 2: mirrored
        lambda: tf.image.rot90(image, 2),  # 3: upside down
        lambda: tf.image.flip_up_down(image),  # 4
        lambda: tf.image.transpose(image),  # 5: PIL TRANSPOSE
        lambda: tf.image.rot90(image, 3),  # 6: PIL ROTATE_270 (the usual phone portrait)
        lambda: tf.image.rot90(tf.image.transpose(image), 2),  # 7: PIL TRANSVERSE
        lambda: tf.image.rot90(image, 1),  # 8: PIL ROTATE_90
    ]
    index = tf.clip_by_value(tf.cast(orientation, tf.int32) - 1, 0, 7)
    return tf.switch_case(index, branches)
