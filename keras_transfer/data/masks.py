"""Image + mask pairs for semantic segmentation: folders, arrays, joint augmentation, shapes.

Masks are PNGs holding a class index per pixel (grayscale or palette-indexed "P" PNGs, as in
Pascal VOC) or RGB colours mapped to classes by a ``palette``. Every pair is decoded and checked up
front (missing mask, unreadable file, size mismatch, class index out of range): bad pairs are
skipped and listed in the `LoadReport` (``strict=True`` raises naming the file). Images are
resized bilinearly, masks with nearest neighbour; augmentation moves image and mask together.
Reading one mask or pair is `keras_transfer.data.mask_decode`'s.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from keras_transfer.data.dataset import ImageSplits
from keras_transfer.data.decode import IMAGE_EXTENSIONS, list_image_files
from keras_transfer.data.mask_decode import (  # noqa: F401 - read_mask: its old home
    Palette,
    palette_lookup,
    read_mask,
    read_pair,
)
from keras_transfer.data.report import LoadReport
from keras_transfer.data.splits import DEFAULT_SEED, split_indices
from keras_transfer.errors import BadInputError


@dataclass
class SegmentationDataset(ImageSplits):
    """Batched ``(images, masks)`` splits: float32 ``(B, H, W, 3)`` images in [0, 255] and
    int32 ``(B, H, W)`` class ids.

    Example:
    >>> data = segmentation_from_arrays(*synthetic_shapes(4, (16, 16)), verbose=False)
    >>> data.num_classes, data.input_shape, data.sizes
    (4, (16, 16, 3), {'train': 4})
    """

    train: tf.data.Dataset | None
    validation: tf.data.Dataset | None
    test: tf.data.Dataset | None
    class_names: list[str]
    report: LoadReport
    image_size: tuple[int, int]
    ignore_class: int | None = None


def segmentation_augmentation(
    *,
    flip: str | None = "horizontal",
    zoom: float = 0.2,
    rotation: float = 0.0,
    translation: float = 0.0,
    seed: int | None = None,
) -> keras.Sequential:
    """Random layers moving image and mask together: call it on
    ``{"images": x, "segmentation_masks": m}`` (Keras interpolates masks with nearest neighbour).

    ``zoom`` is a fraction of the size (zooming in is a random crop resized back, zooming out a
    random downscale); ``rotation`` a fraction of a full turn. 0/None leaves a layer out.

    Example:
    >>> augment = segmentation_augmentation(seed=0)
    >>> out = augment({"images": np.zeros((1, 8, 8, 3), "float32"),
    ...                "segmentation_masks": np.ones((1, 8, 8, 1), "int32")}, training=True)
    >>> sorted(out)
    ['images', 'segmentation_masks']
    """
    layers = []
    if flip:
        layers.append(keras.layers.RandomFlip(flip, seed=seed))
    if zoom:
        layers.append(keras.layers.RandomZoom((-zoom, zoom), seed=seed))
    if rotation:
        layers.append(keras.layers.RandomRotation(rotation, seed=seed))
    if translation:
        layers.append(keras.layers.RandomTranslation(translation, translation, seed=seed))
    return keras.Sequential(layers, name="segmentation_augmentation")


# --------------------------------------------------------------------------- loaders


def _resolve_num_classes(num_classes: int | None, class_names: Sequence[str] | None,
                         palette: Palette | None, ignore_class: int | None) -> int | None:
    if class_names is not None:
        if num_classes is not None and num_classes != len(class_names):
            raise BadInputError(f"num_classes={num_classes} but {len(class_names)} class_names.")
        return len(class_names)
    if num_classes is None and palette is not None:
        ids = palette_lookup(palette)[1]
        return int(ids[ids != ignore_class].max()) + 1
    return num_classes


def segmentation_from_folders(
    images: str | os.PathLike,
    masks: str | os.PathLike,
    *,
    image_size: tuple[int, int] = (224, 224),
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    palette: Palette | None = None,
    ignore_class: int | None = None,
    mask_suffix: str = ".png",
    batch_size: int = 16,
    validation_split: float = 0.0,
    test_split: float = 0.0,
    seed: int = DEFAULT_SEED,
    augment: Any = None,
    strict: bool = False,
    verbose: bool = True,
) -> SegmentationDataset:
    """Pairs ``images/<path>.<ext>`` with ``masks/<path><mask_suffix>`` (sub-folders kept).

    Masks hold class ids (grayscale or "P" PNGs) or, with ``palette`` (``{(r, g, b): class}`` or a
    list of colours, index = class), colours. ``num_classes`` defaults to ``len(class_names)``,
    the palette's classes, or else the largest id found + 1. ``ignore_class`` (e.g. VOC's 255)
    marks pixels to leave out of loss and metrics. Bad pairs are skipped and reported (or raise,
    with ``strict=True``); masks without an image are noted. ``augment``: True for
    `segmentation_augmentation`, or any layer taking ``{"images", "segmentation_masks"}``; it
    applies to the train split only. Decoded pairs are kept in memory.

    Example:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "img").mkdir(); (root / "ann").mkdir()
    >>> for i, (x, m) in enumerate(zip(*synthetic_shapes(3, (16, 16)))):
    ...     Image.fromarray(x).save(root / "img" / f"{i}.jpg")
    ...     Image.fromarray(m).save(root / "ann" / f"{i}.png")
    >>> data = segmentation_from_folders(root / "img", root / "ann", image_size=(8, 8),
    ...                                  num_classes=4, verbose=False)
    >>> data.sizes
    {'train': 3}
    """
    image_root, mask_root = Path(images), Path(masks)
    for root, what in ((image_root, "images"), (mask_root, "masks")):
        if not root.is_dir():
            raise BadInputError(f"{root}: not a folder ({what}=).")
    num_classes = _resolve_num_classes(num_classes, class_names, palette, ignore_class)
    if num_classes is not None and num_classes > 255:
        raise BadInputError(f"num_classes={num_classes}: masks are read as 8-bit class ids.")
    report = LoadReport(f"{image_root} + {mask_root}", strict=strict)
    pairs = _paired_paths(image_root, mask_root, mask_suffix, report)
    pixels, labels = _read_pairs(pairs, report, size=tuple(image_size), palette=palette,
                                 num_classes=num_classes, ignore_class=ignore_class)
    if not pixels:
        first = "; ".join(f"{item}: {why}" for item, why in report.skipped[:3])
        raise BadInputError(f"{image_root}: no usable image/mask pair"
                            f"{' (' + first + ')' if first else ' (no images found)'}.")
    return _assemble(np.stack(pixels), np.stack(labels), report, num_classes=num_classes,
                     class_names=class_names, ignore_class=ignore_class, batch_size=batch_size,
                     validation_split=validation_split, test_split=test_split, seed=seed,
                     augment=augment, verbose=verbose)


def _paired_paths(image_root: Path, mask_root: Path, mask_suffix: str,
                  report: LoadReport) -> list[tuple[str, str]]:
    """``(image, expected mask)`` paths, sub-folders kept; masks without an image are noted."""
    found, _ = list_image_files(image_root, IMAGE_EXTENSIONS)
    relative = [p.relative_to(image_root) for p in found]
    mask_paths = [str(mask_root / r.with_suffix(mask_suffix)) for r in relative]
    expected = {os.path.normpath(p) for p in mask_paths}
    orphans = [p for p in list_image_files(mask_root, (mask_suffix,))[0]
               if os.path.normpath(str(p)) not in expected]
    if orphans:
        report.notes.append(f"{len(orphans)} mask(s) without an image ignored, e.g. {orphans[0]}")
    return list(zip(map(str, found), mask_paths))


def _read_pairs(pairs: list[tuple[str, str]], report: LoadReport, *, size: tuple[int, int],
                palette: Palette | None, num_classes: int | None, ignore_class: int | None
                ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The images and masks of the good pairs (`read_pair`, in threads); the bad ones are
    skipped in `report`."""
    def attempt(pair: tuple[str, str]):
        return read_pair(*pair, size, palette, num_classes, ignore_class)

    pixels, labels = [], []
    executor = ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) + 2))
    try:  # results in input order, so strict mode raises on the first bad pair
        for result in executor.map(attempt, pairs):
            if isinstance(result[0], str):
                report.skip(*result)
            else:
                pixels.append(result[0])
                labels.append(result[1])
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
    return pixels, labels


def segmentation_from_arrays(
    images: np.ndarray,
    masks: np.ndarray,
    *,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    ignore_class: int | None = None,
    batch_size: int = 16,
    validation_split: float = 0.0,
    test_split: float = 0.0,
    seed: int = DEFAULT_SEED,
    augment: Any = None,
    verbose: bool = True,
) -> SegmentationDataset:
    """In-memory pairs: images ``(N, H, W, 3)`` in [0, 255] and integer masks ``(N, H, W)``.

    Example:
    >>> x, m = synthetic_shapes(10, (16, 16), seed=1)
    >>> segmentation_from_arrays(x, m, validation_split=0.2, verbose=False).sizes
    {'train': 8, 'validation': 2}
    """
    images, masks = np.asarray(images), np.asarray(masks)
    if masks.ndim == 4 and masks.shape[-1] == 1:
        masks = masks[..., 0]
    if images.ndim != 4 or images.shape[-1] != 3 or masks.shape != images.shape[:3]:
        raise BadInputError(f"images {images.shape} and masks {masks.shape}: expected "
                            "(N, H, W, 3) and (N, H, W).")
    num_classes = _resolve_num_classes(num_classes, class_names, None, ignore_class)
    report = LoadReport("arrays")
    if num_classes is not None:
        valid = masks != ignore_class if ignore_class is not None else True
        bad = np.flatnonzero((((masks < 0) | (masks >= num_classes)) & valid).any(axis=(1, 2)))
        if bad.size:
            raise BadInputError(f"masks[{bad[0]}]: class index out of range (num_classes="
                                f"{num_classes}).")
    return _assemble(images, masks.astype(np.uint8), report, num_classes=num_classes,
                     class_names=class_names, ignore_class=ignore_class, batch_size=batch_size,
                     validation_split=validation_split, test_split=test_split, seed=seed,
                     augment=augment, verbose=verbose)


def _assemble(images: np.ndarray, masks: np.ndarray, report: LoadReport, *,
              num_classes: int | None, class_names: Sequence[str] | None,
              ignore_class: int | None, batch_size: int, validation_split: float,
              test_split: float, seed: int, augment: Any, verbose: bool) -> SegmentationDataset:
    if batch_size < 1:
        raise BadInputError(f"batch_size must be >= 1; got {batch_size}.")
    if num_classes is None:
        valid = masks[masks != ignore_class] if ignore_class is not None else masks
        num_classes = max(2, int(valid.max()) + 1 if valid.size else 2)
        report.notes.append(f"num_classes={num_classes} inferred from the largest mask value")
    names = [str(n) for n in class_names] if class_names is not None else \
        [str(i) for i in range(num_classes)]
    report.good = len(images)
    parts = split_indices(np.zeros(len(images)), validation_split=validation_split,
                          test_split=test_split, seed=seed)
    report.split_counts = {name: int(len(index)) for name, index in parts.items()}
    counts = np.bincount(masks.reshape(-1), minlength=num_classes)[:num_classes]
    report.class_counts = {f"{name} (pixels)": int(c) for name, c in zip(names, counts)}
    if augment is True:
        augment = segmentation_augmentation(seed=seed)
    splits = {
        name: mask_pipeline(images[index], masks[index], batch_size=batch_size,
                            training=name == "train", augment=augment, seed=seed)
        for name, index in parts.items()
    }
    if verbose:
        print(report.summary(), flush=True)
    return SegmentationDataset(splits.get("train"), splits.get("validation"), splits.get("test"),
                               names, report, tuple(images.shape[1:3]), ignore_class)


def mask_pipeline(images: np.ndarray, masks: np.ndarray, *, batch_size: int = 16,
                  training: bool = False, augment: Any = None, seed: int = DEFAULT_SEED
                  ) -> tf.data.Dataset:
    """Batches uint8 pairs to float32 images and int32 masks; shuffles and augments if training.

    Example:
    >>> ds = mask_pipeline(np.zeros((3, 8, 8, 3), np.uint8), np.zeros((3, 8, 8), np.uint8),
    ...                    batch_size=2)
    >>> [(tuple(x.shape), tuple(m.shape), m.dtype.name) for x, m in ds]
    [((2, 8, 8, 3), (2, 8, 8), 'int32'), ((1, 8, 8, 3), (1, 8, 8), 'int32')]
    """
    ds = tf.data.Dataset.from_tensor_slices((images, masks[..., None]))
    if training:
        ds = ds.shuffle(max(1, min(len(images), 10_000)), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).map(lambda x, m: (tf.cast(x, tf.float32), tf.cast(m, tf.int32)),
                                  num_parallel_calls=tf.data.AUTOTUNE)
    if training and augment:
        def joint(x, m):
            out = augment({"images": x, "segmentation_masks": m}, training=True)
            return out["images"], tf.cast(tf.round(out["segmentation_masks"]), tf.int32)

        ds = ds.map(joint, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.map(lambda x, m: (x, m[..., 0])).prefetch(tf.data.AUTOTUNE)


# --------------------------------------------------------------------------- synthetic data


def synthetic_shapes(
    count: int,
    image_size: tuple[int, int] = (64, 64),
    *,
    max_shapes: int = 3,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Random circles (class 1), squares (2) and triangles (3) of random colours on a noisy
    gradient: uint8 images ``(N, H, W, 3)`` and masks ``(N, H, W)``. The class is the shape, not
    the colour, so a model has to see form. Deterministic for a seed.

    Example:
    >>> images, masks = synthetic_shapes(2, (32, 32))
    >>> images.shape, masks.shape, int(masks.max()) <= 3
    ((2, 32, 32, 3), (2, 32, 32), True)
    """
    from PIL import ImageDraw

    rng = np.random.default_rng(seed)
    height, width = image_size
    images = np.zeros((count, height, width, 3), np.uint8)
    masks = np.zeros((count, height, width), np.uint8)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    for i in range(count):
        start, slope = rng.uniform(40, 200, 3), rng.uniform(-80, 80, (2, 3))
        background = start + yy[..., None] * slope[0] + xx[..., None] * slope[1]
        background += rng.normal(0, 12, (height, width, 3))
        image = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8))
        mask = Image.new("L", (width, height), 0)
        draw_image, draw_mask = ImageDraw.Draw(image), ImageDraw.Draw(mask)
        for _ in range(rng.integers(1, max_shapes + 1)):
            cls = int(rng.integers(1, 4))
            side = rng.uniform(0.2, 0.45) * min(height, width)
            cx = rng.uniform(side / 2, width - side / 2)
            cy = rng.uniform(side / 2, height - side / 2)
            box = [cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2]
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            for draw, fill in ((draw_image, colour), (draw_mask, cls)):
                if cls == 1:
                    draw.ellipse(box, fill=fill)
                elif cls == 2:
                    draw.rectangle(box, fill=fill)
                else:
                    draw.polygon([(cx, box[1]), (box[0], box[3]), (box[2], box[3])], fill=fill)
        images[i], masks[i] = np.asarray(image), np.asarray(mask)
    return images, masks
