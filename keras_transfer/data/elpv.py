"""The ELPV solar-cell dataset (Deitsch et al., 2019) with the paper's protocol.

2,624 electroluminescence images of solar cells (300x300 grayscale) with a defect probability
in {0, 1/3, 2/3, 1}. The paper trains on 1,968 cells and tests on 656 (75/25 stratified); the
four probability levels are the four classes, and "defective" means probability >= 0.5.
The pixels come from the ``elpv-dataset`` package (CC BY-NC-SA 4.0), never copied here.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from keras_transfer.data.dataset import ImageDataset, assemble_images
from keras_transfer.data.pipeline import PipelineOptions, resize_uint8
from keras_transfer.data.report import LoadReport
from keras_transfer.data.splits import split_indices
from keras_transfer.errors import BadInputError, require

ELPV_SEED = 1337
ELPV_TEST_FRACTION = 0.25
ELPV_PROBABILITIES = (0.0, 1 / 3, 2 / 3, 1.0)
ELPV_SYMMETRIES = ("hflip", "vflip", "rot90")  # the 8 flips and quarter turns of a square cell
ELPV_NATIVE_SIZE = 300
ELPV_CLASS_NAMES = {
    # Defect probability 0, 1/3, 2/3, 1: the experts' confidence that the cell is defective.
    "4class": ["functional", "probably_functional", "probably_defective", "defective"],
    "binary": ["functional", "defective"],
}


@functools.lru_cache(maxsize=1)
def _raw_elpv() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images uint8 [2624, 300, 300], probability, type) read once per process (~5 s)."""
    utils = require("elpv_dataset.utils", extra="assets", feature="The ELPV dataset")
    images, probabilities, types = utils.load_dataset()
    images = np.ascontiguousarray(images, dtype=np.uint8)
    images.setflags(write=False)  # shared by every caller through the cache
    return images, np.asarray(probabilities, np.float64), np.asarray(types)


def _check_variant(variant: str) -> None:
    if variant not in ELPV_CLASS_NAMES:
        raise BadInputError(
            f"ELPV variant must be one of {list(ELPV_CLASS_NAMES)}; got {variant!r}."
        )


def _elpv_split(
    seed: int, validation_split: float = 0.0
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Four-class ids and the stratified split (same cells for both variants)."""
    _, probabilities, types = _raw_elpv()
    four_class = np.rint(probabilities * 3).astype(np.int64)
    # Stratify on class and cell type (mono/poly) so both keep their proportions in each split;
    # the binary variant reuses this split, so both variants test on the same 656 cells.
    strata = list(zip(four_class.tolist(), types.tolist()))
    parts = split_indices(
        strata, validation_split=validation_split, test_split=ELPV_TEST_FRACTION, seed=seed
    )
    return four_class, parts


def _labels(four_class: np.ndarray, variant: str) -> np.ndarray:
    return (four_class >= 2).astype(np.int64) if variant == "binary" else four_class


def elpv_arrays(
    variant: str = "4class",
    seed: int = ELPV_SEED,
    image_size: tuple[int, int] | None = None,
    channels: int = 3,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """``(x_train, y_train, x_test, y_test, class_names)`` as numpy arrays, for benchmarks.

    x: uint8 (N, H, W, channels) — native 300x300 unless ``image_size``; ``channels`` 3
    replicates the gray level (1 keeps it). y: int64 class ids. 1,968 train / 656 test.

    Example:
    >>> x_train, y_train, x_test, y_test, names = elpv_arrays(  # doctest: +SKIP
    ...     "binary", channels=1)
    >>> x_train.shape, x_test.shape, names  # doctest: +SKIP
    ((1968, 300, 300, 1), (656, 300, 300, 1), ['functional', 'defective'])
    """
    _check_variant(variant)
    if channels not in (1, 3):
        raise BadInputError(f"channels must be 1 or 3; got {channels}.")
    images, _, _ = _raw_elpv()
    four_class, parts = _elpv_split(seed)
    labels = _labels(four_class, variant)

    def pixels(index: np.ndarray) -> np.ndarray:
        chosen = images[index][..., np.newaxis]
        if image_size is not None and tuple(image_size) != chosen.shape[1:3]:
            chosen = resize_uint8(chosen, image_size)
        return np.repeat(chosen, 3, axis=-1) if channels == 3 else chosen

    train, test = parts["train"], parts["test"]
    return pixels(train), labels[train], pixels(test), labels[test], list(ELPV_CLASS_NAMES[variant])


def load_elpv(
    variant: str = "4class",
    *,
    image_size: tuple[int, int] = (224, 224),
    batch_size: int = 32,
    seed: int = ELPV_SEED,
    validation_split: float = 0.0,
    resize_mode: str = "stretch",
    augment: Any = None,
    mixup: float | None = None,
    cutmix: float | None = None,
    cache: bool | str = True,
    verbose: bool = True,
) -> ImageDataset:
    """ELPV as an `ImageDataset`: 1,968 train / 656 test cells, stratified, fixed seed.

    ``variant="4class"`` (defect probability 0, 1/3, 2/3, 1) or ``"binary"`` (defective =
    probability >= 0.5). ``validation_split`` is carved (stratified) from the 1,968 training
    cells; the 656 test cells never change for a given seed. Images are float32 (H, W, 3) in
    [0, 255], the gray level replicated to three channels; labels int32 class ids.

    Example:
    >>> data = load_elpv("4class", validation_split=0.1, verbose=False)  # doctest: +SKIP
    >>> data.sizes  # doctest: +SKIP
    {'train': 1771, 'validation': 197, 'test': 656}
    >>> data.class_names  # doctest: +SKIP
    ['functional', 'probably_functional', 'probably_defective', 'defective']
    """
    _check_variant(variant)
    options = PipelineOptions.from_arguments(locals())
    images, _, _ = _raw_elpv()
    four_class, parts = _elpv_split(seed, validation_split)
    report = LoadReport(f"elpv ({variant})")
    data = assemble_images(
        labels=_labels(four_class, variant),
        class_names=list(ELPV_CLASS_NAMES[variant]),
        report=report,
        options=options,
        validation_split=validation_split,
        test_split=ELPV_TEST_FRACTION,
        # Kept single-channel at 300x300: the pipeline resizes, caches uint8, then tiles to RGB.
        pixels=images[..., np.newaxis],
        parts=parts,
        verbose=verbose,
    )
    # A cell has no orientation: busbars run either way and a crack is a crack when mirrored.
    data.symmetries = ELPV_SYMMETRIES
    return data
