"""Turning what users pass (file paths, bytes, arrays, tf.data, iterables) into raw image batches.

Every exported model takes float32 pixels in [0, 255] of shape ``(N, H, W, 3)``. Files and
encoded bytes are decoded by the training decoder (`keras_transfer.data.decode`: PIL, EXIF
orientation applied, `to_rgb`, PIL bilinear resize), so `predict` sees exactly the pixels
training saw for the same file, in every format training accepts. Arrays (already decoded) are
resized as training resizes arrays: ``tf.image.resize`` bilinear with antialiasing, rounded to
uint8 levels when they are uint8.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from keras_transfer.errors import BadInputError

PathLike = str | os.PathLike
_BYTES = (bytes, bytearray, memoryview)


def decode_image_bytes(
    data: bytes, size: tuple[int, int], *, name: str = "<bytes>", resize_mode: str = "stretch"
) -> np.ndarray:
    """Decodes one encoded image (any format training reads), resized to ``size`` → float32
    ``(H, W, 3)`` in [0, 255]; the same pixels as training's `load_image` on that file.

    Example:
    >>> import io, PIL.Image
    >>> buffer = io.BytesIO(); PIL.Image.new("RGB", (8, 6), (255, 0, 0)).save(buffer, "PNG")
    >>> decode_image_bytes(buffer.getvalue(), (4, 4))[0, 0].tolist()
    [255.0, 0.0, 0.0]
    """
    from keras_transfer.data.decode import load_image_bytes

    return load_image_bytes(data, tuple(size), resize_mode, name=name).astype("float32")


def read_image(
    path: PathLike, size: tuple[int, int], *, resize_mode: str = "stretch"
) -> np.ndarray:
    """Reads and decodes an image file exactly as training does, resized to ``size`` (float32
    ``(H, W, 3)``, [0, 255]).

    Example:
    >>> import tempfile, PIL.Image
    >>> path = tempfile.mktemp(suffix=".tif"); PIL.Image.new("RGB", (5, 5)).save(path)
    >>> read_image(path, (3, 3)).shape
    (3, 3, 3)
    """
    from keras_transfer.data.decode import load_image

    return load_image(Path(path), tuple(size), resize_mode).astype("float32")


def _resize_batch(
    images: np.ndarray, size: tuple[int, int] | None, *, uint8_levels: bool = False,
    resize_mode: str = "stretch",
) -> np.ndarray:
    """Resizes like the training pipeline resizes arrays (bilinear, antialiased: close to PIL)."""
    if size is None or tuple(images.shape[1:3]) == tuple(size):
        return images
    from keras_transfer.data.pipeline import resize_image

    resized = resize_image(images, size, resize_mode).numpy()
    return np.clip(np.round(resized), 0, 255) if uint8_levels else resized


def to_image_batch(
    images: Any, size: tuple[int, int] | None = None, *, what: str = "images",
    resize_mode: str = "stretch",
) -> np.ndarray:
    """Converts paths, encoded bytes, one image, a batch or a list of images to float32
    ``(N, H, W, 3)``.

    File paths and bytes are decoded as training decodes them (`read_image`); arrays whose size
    differs from ``size`` are resized (bilinear, antialiased; uint8 arrays stay on uint8 levels).
    ``resize_mode``: "stretch", "pad" or "crop", as the training images were resized.

    Example:
    >>> to_image_batch(np.zeros((2, 4, 4, 3), "uint8"), (2, 2)).shape
    (2, 2, 2, 3)
    """
    if isinstance(images, (str, os.PathLike, *_BYTES)):
        images = [images]
    if isinstance(images, (list, tuple)):
        if not images:
            raise BadInputError(f"{what}: got an empty list.")
        if all(isinstance(item, (str, os.PathLike, *_BYTES)) for item in images):
            if size is None:
                raise BadInputError(f"{what}: decoding files needs the model's input size.")
            decoded = [
                decode_image_bytes(item, size, name=f"{what}[{i}] (bytes)",
                                   resize_mode=resize_mode)
                if isinstance(item, _BYTES) else read_image(item, size, resize_mode=resize_mode)
                for i, item in enumerate(images)
            ]
            return np.stack(decoded).astype("float32")
        if all(isinstance(item, np.ndarray) or hasattr(item, "numpy") for item in images):
            batch = [to_image_batch(np.asarray(item), size, what=what, resize_mode=resize_mode)
                     for item in images]
            return np.concatenate(batch, axis=0)
    array = np.asarray(images)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[-1] != 3:
        raise BadInputError(
            f"{what}: expected RGB images of shape (H, W, 3) or (N, H, W, 3), got {array.shape}."
        )
    return _resize_batch(array.astype("float32"), size, uint8_levels=array.dtype == np.uint8,
                         resize_mode=resize_mode)


def _split_element(element: Any) -> tuple[Any, Any]:
    """(x, y) from a dataset element: ``x``, ``(x,)``, ``(x, y)``, ``(x, y, w)`` or a dict."""
    if isinstance(element, dict):
        x = element.get("image", element.get("images"))
        y = element.get("label", element.get("labels"))
        if x is None:
            raise BadInputError(
                f"dataset element dict needs an 'image' key, got {sorted(element)}."
            )
        return x, y
    if isinstance(element, tuple) and 1 <= len(element) <= 3:
        return element[0], element[1] if len(element) > 1 else None
    return element, None


def spread_indices(total: int, limit: int) -> np.ndarray:
    """``min(total, limit)`` increasing indices spread evenly over ``range(total)``.

    Example:
    >>> spread_indices(10, 4).tolist()
    [0, 2, 5, 7]
    """
    count = min(total, limit)
    return (np.arange(count) * total) // max(count, 1)


def collect_samples(
    data: Any,
    limit: int,
    size: tuple[int, int] | None = None,
    *,
    what: str = "data",
    spread: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Takes up to ``limit`` raw images (and labels, when present) from ``data``.

    ``data`` may be an array ``(N, H, W, 3)``, a tuple ``(images, labels)``, a list of file paths,
    a ``tf.data.Dataset`` (batched or not) or any iterable of such elements. The first ``limit``
    are taken, or with ``spread`` (arrays and path lists, whose length is known) ``limit`` spread
    evenly over all of them, so that data sorted by class still gives every class.

    Example:
    >>> x, y = collect_samples((np.zeros((5, 4, 4, 3)), np.arange(5)), limit=3)
    >>> x.shape, y.tolist()
    ((3, 4, 4, 3), [0, 1, 2])
    >>> collect_samples((np.zeros((6, 4, 4, 3)), np.arange(6)), limit=3, spread=True)[1].tolist()
    [0, 2, 4]
    """
    if limit <= 0:
        raise BadInputError(f"{what}: the number of samples must be positive, got {limit}.")

    def take(items: Any) -> Any:
        if not spread:
            return items[:limit]
        chosen = spread_indices(len(items), limit)
        return [items[i] for i in chosen] if isinstance(items, list) else items[chosen]

    if isinstance(data, tuple) and len(data) == 2 and not isinstance(data[0], (str, os.PathLike)):
        first = data[0]
        is_paths = bool(
            isinstance(first, (list, tuple)) and first and isinstance(first[0], (str, os.PathLike))
        )
        if is_paths or np.ndim(first) == 4:
            head = take(list(first)) if is_paths else take(np.asarray(first))
            x = to_image_batch(head, size, what=what)
            return x, take(np.asarray(data[1]))
    if isinstance(data, (np.ndarray, str, os.PathLike)) or (
        isinstance(data, (list, tuple)) and data and isinstance(data[0], (str, os.PathLike))
    ):
        if isinstance(data, (list, tuple)):
            data = take(list(data))
        elif isinstance(data, np.ndarray) and data.ndim == 4:
            data = take(data)
        return to_image_batch(data, size, what=what)[:limit], None
    if hasattr(data, "numpy") and not hasattr(data, "as_numpy_iterator"):  # a tf / keras tensor
        return to_image_batch(np.asarray(data)[:limit], size, what=what), None
    return _gather(_elements(data, limit, what), limit, size, what)


def _elements(data: Any, limit: int, what: str) -> Iterable[Any]:
    """The elements of a dataset (its first `limit`), a keras `PyDataset` or an iterable."""
    if hasattr(data, "as_numpy_iterator"):
        return data.take(limit).as_numpy_iterator()
    if hasattr(data, "__getitem__") and hasattr(data, "__len__") and not isinstance(data, list):
        return (data[i] for i in range(len(data)))  # keras.utils.PyDataset and friends
    try:
        return iter(data)
    except TypeError:
        raise BadInputError(
            f"{what}: expected an array, (images, labels), file paths, a tf.data.Dataset or an "
            f"iterable of images, got {type(data).__name__}."
        ) from None


def _gather(elements: Iterable[Any], limit: int, size: tuple[int, int] | None,
            what: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The first `limit` images of the elements (single images or batches), and their labels
    when every element has some."""
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    count = 0
    for element in elements:
        x, y = _split_element(element)
        if not isinstance(x, (str, os.PathLike, *_BYTES)):
            x = np.asarray(x)
        x = to_image_batch(x, size, what=what)
        xs.append(x)
        if y is not None:
            y = np.asarray(y)
            ys.append(y[None] if len(x) == 1 and (y.ndim == 0 or y.shape[0] != 1) else y)
        count += len(x)
        if count >= limit:
            break
    if not xs:
        raise BadInputError(f"{what}: yielded no images.")
    labels = np.concatenate(ys)[:limit] if ys and len(ys) == len(xs) else None
    return np.concatenate(xs)[:limit], labels
