"""In-memory image arrays as a source: any dtype or channel count; ids, names or multi-hot."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from keras_transfer.data.dataset import ImageDataset, assemble_images
from keras_transfer.data.decode import scale_to_uint8
from keras_transfer.data.labels import encode_labels, require_two_classes
from keras_transfer.data.pipeline import PipelineOptions, resize_uint8
from keras_transfer.data.report import LoadReport
from keras_transfer.data.splits import DEFAULT_SEED
from keras_transfer.errors import BadInputError


def from_arrays(
    images: np.ndarray | Sequence[np.ndarray],
    labels: Sequence[Any] | np.ndarray,
    *,
    class_names: Sequence[str] | None = None,
    image_size: tuple[int, int] | None = None,
    resize_mode: str = "stretch",
    batch_size: int = 32,
    validation_split: float = 0.0,
    test_split: float = 0.0,
    seed: int = DEFAULT_SEED,
    augment: Any = None,
    mixup: float | None = None,
    cutmix: float | None = None,
    cache: bool | str = True,
    strict: bool = False,
    verbose: bool = True,
) -> ImageDataset:
    """In-memory images (N, H, W[, C]) with class ids, class-name strings or multi-hot rows.

    uint8 pixels are used as they are, 16-bit ones scaled to 8 bits, floats kept (they must
    already be in [0, 255]); 1 or 4 channels become RGB. Images of different sizes (a list)
    need ``image_size``. Images with NaN/inf and labels outside ``class_names`` are skipped.

    Example:
    >>> import numpy as np
    >>> data = from_arrays(np.zeros((10, 28, 28), "uint8"), np.arange(10) % 2,
    ...                    image_size=(32, 32), test_split=0.2, verbose=False)
    >>> data.sizes, data.input_shape
    ({'train': 8, 'test': 2}, (32, 32, 3))
    """
    options = PipelineOptions.from_arguments(locals())
    report = LoadReport("arrays", strict=strict)
    pixels = _as_pixel_array(images, image_size, resize_mode)
    raw = np.asarray(labels)
    if len(raw) != len(pixels):
        raise BadInputError(f"got {len(pixels)} images but {len(raw)} labels.")
    if raw.ndim == 2 and raw.shape[1] == 1:
        raw = raw[:, 0]
    wheres = [f"index {i}" for i in range(len(raw))]
    encode = (_multi_hot if raw.ndim == 2 else _class_strings if raw.dtype.kind in "USO"
              else _class_ids)
    encoded, names, kept = encode(raw, wheres, class_names, report)
    keep_images = []
    for position, i in enumerate(kept):
        if pixels.dtype.kind == "f" and not np.isfinite(pixels[i]).all():
            report.skip(wheres[i], "image has NaN or infinite pixel values")
        else:
            keep_images.append(position)
    require_two_classes(names, report.source)
    return assemble_images(
        labels=encoded[keep_images],
        class_names=names,
        report=report,
        options=options,
        validation_split=validation_split,
        test_split=test_split,
        pixels=pixels[[kept[p] for p in keep_images]],
        verbose=verbose,
    )


# Label encoders: ``(raw labels, where each is, class_names, report)`` → ``(encoded labels,
# class names, indices of the examples kept)``; a bad label is skipped in the report.


def _multi_hot(raw: np.ndarray, wheres: list[str], class_names: Sequence[str] | None,
               report: LoadReport) -> tuple[np.ndarray, list[str], list[int]]:
    names = (
        [str(n) for n in class_names]
        if class_names is not None
        else [str(i) for i in range(raw.shape[1])]
    )
    if len(names) != raw.shape[1]:
        raise BadInputError(
            f"multi-hot labels have {raw.shape[1]} columns but {len(names)} class_names."
        )
    return raw.astype(np.float32), names, list(range(len(raw)))


def _class_strings(raw: np.ndarray, wheres: list[str], class_names: Sequence[str] | None,
                   report: LoadReport) -> tuple[np.ndarray, list[str], list[int]]:
    return encode_labels(
        [[str(v).strip()] if str(v).strip() else [] for v in raw],
        wheres,
        class_names=class_names,
        multi_label=False,
        report=report,
    )


def _class_ids(raw: np.ndarray, wheres: list[str], class_names: Sequence[str] | None,
               report: LoadReport) -> tuple[np.ndarray, list[str], list[int]]:
    ids = raw.astype(np.int64)
    names = (
        [str(n) for n in class_names]
        if class_names is not None
        else [str(i) for i in range(int(ids.max(initial=0)) + 1)]
    )
    kept = []
    for i, value in enumerate(ids):
        if 0 <= value < len(names) and float(raw[i]) == float(value):
            kept.append(i)
        else:
            report.skip(wheres[i], f"label {raw[i]!r} is not a class id in 0..{len(names) - 1}")
    return ids[kept], names, kept


def _as_pixel_array(
    images: Any, image_size: tuple[int, int] | None, resize_mode: str
) -> np.ndarray:
    """(N, H, W, C) with C in {1, 3, 4}, uint8 unless floats were given."""
    try:
        pixels = np.asarray(images)
        uniform = pixels.dtype != object
    except ValueError:  # a list of differently sized images
        uniform = False
    if not uniform:
        if image_size is None:
            raise BadInputError("images of different sizes need image_size=(height, width).")
        return _stack_rgb(images, image_size, resize_mode)
    if pixels.ndim == 3:
        pixels = pixels[..., np.newaxis]
    if pixels.ndim != 4 or pixels.shape[-1] not in (1, 3, 4):
        raise BadInputError(
            f"images must be (N, H, W) or (N, H, W, 1|3|4); got shape {pixels.shape}."
        )
    if pixels.dtype == bool:
        return pixels.astype(np.uint8) * 255
    if pixels.dtype.kind in "iu" and pixels.dtype != np.uint8:
        return scale_to_uint8(pixels)
    if pixels.dtype.kind == "f":
        return pixels.astype(np.float32)
    return pixels


def _stack_rgb(images: Sequence[Any], image_size: tuple[int, int], resize_mode: str) -> np.ndarray:
    """Differently sized images: make each uint8 RGB, resize it, then stack."""
    out = []
    for image in images:
        pixels = _as_pixel_array([np.asarray(image)], None, resize_mode)
        if pixels.dtype != np.uint8:
            pixels = np.clip(np.round(np.nan_to_num(pixels)), 0, 255).astype(np.uint8)
        if pixels.shape[-1] == 1:
            pixels = np.repeat(pixels, 3, axis=-1)
        out.append(resize_uint8(pixels[..., :3], image_size, resize_mode)[0])
    return np.stack(out)
