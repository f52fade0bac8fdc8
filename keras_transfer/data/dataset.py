"""`ImageDataset` / `TextDataset` results and the shared split-then-batch assembly of sources."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Hashable, Sequence

import numpy as np
import tensorflow as tf

from keras_transfer.data.labels import class_counts
from keras_transfer.data.pipeline import (
    PipelineOptions,
    examples_from_arrays,
    examples_from_paths,
    image_pipeline,
)
from keras_transfer.data.report import LoadReport
from keras_transfer.data.splits import balanced_class_weights, split_indices, stratum_keys

SPLITS = ("train", "validation", "test")


class ImageSplits:
    """What every image dataset result answers from its `class_names`, `image_size` and
    `report` (`ImageDataset`, `SegmentationDataset`)."""

    @property
    def num_classes(self) -> int:
        """Number of classes (the size of the classifier's output)."""
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(height, width, 3): the shape of one image."""
        return (int(self.image_size[0]), int(self.image_size[1]), 3)

    @property
    def sizes(self) -> dict[str, int]:
        """Examples per split, e.g. ``{"train": 1968, "test": 656}``."""
        return dict(self.report.split_counts)

    def summary(self) -> str:
        """The load report as text."""
        return self.report.summary()


@dataclass
class ImageDataset(ImageSplits):
    """Batched ``(image, label)`` splits plus what a training job needs to know about them.

    Images are float32 (batch, H, W, 3) in [0, 255] (models preprocess inside). Labels are int32
    class ids (``label_format="int"``), float32 one-hot (``"one_hot"``, when MixUp/CutMix is on)
    or float32 multi-hot (``"multi_hot"``, multi-label). Absent splits are None.
    ``class_weights`` is for ``model.fit(class_weight=...)``; None for multi-label data.

    Example:
    >>> import numpy as np
    >>> from keras_transfer.data import from_arrays
    >>> data = from_arrays(np.zeros((4, 8, 8, 3), "uint8"), [0, 1, 0, 1], verbose=False)
    >>> data.num_classes, data.input_shape, data.label_format
    (2, (8, 8, 3), 'int')
    """

    train: tf.data.Dataset | None
    validation: tf.data.Dataset | None
    test: tf.data.Dataset | None
    class_names: list[str]
    report: LoadReport
    class_weights: dict[int, float] | None = None
    multi_label: bool = False
    image_size: tuple[int, int] = (224, 224)
    label_format: str = "int"
    # Flips / quarter turns that keep every label (`keras_transfer.data.symmetry` names), when
    # the source knows them (ELPV cells have no orientation); None: unknown, probe the data.
    symmetries: tuple[str, ...] | None = None



@dataclass
class TextDataset:
    """Batched ``(text, label)`` splits (``((text_a, text_b), label)`` for sentence pairs).

    Texts are tf.string; labels int32 class ids, or float32 multi-hot rows when multi-label.

    Example:
    >>> from keras_transfer.data import LoadReport
    >>> TextDataset(None, None, None, ["neg", "pos"], LoadReport("x")).num_classes
    2
    """

    train: tf.data.Dataset | None
    validation: tf.data.Dataset | None
    test: tf.data.Dataset | None
    class_names: list[str]
    report: LoadReport
    class_weights: dict[int, float] | None = None
    multi_label: bool = False
    text_columns: tuple[str, ...] = field(default_factory=lambda: ("text",))

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    @property
    def sizes(self) -> dict[str, int]:
        """Examples per split."""
        return dict(self.report.split_counts)

    def summary(self) -> str:
        """The load report as text."""
        return self.report.summary()


def record_splits(
    report: LoadReport,
    labels: np.ndarray,
    parts: dict[str, np.ndarray],
    class_names: Sequence[str],
) -> dict[int, float] | None:
    """Fills the report's class / split counts; returns balanced class weights of the train split.

    Example:
    >>> report = LoadReport("x")
    >>> record_splits(report, np.array([0, 1, 1]), {"train": np.array([0, 1, 2])}, ["a", "b"])
    {0: 1.5, 1: 0.75}
    """
    labels = np.asarray(labels)
    report.good = len(labels)
    report.class_counts = class_counts(labels, class_names)
    report.split_counts = {name: len(index) for name, index in parts.items()}
    train = labels[parts["train"]]
    missing = [n for n, c in class_counts(train, class_names).items() if c == 0]
    if missing and len(train):
        report.notes.append(f"no training example for class(es) {missing}")
    if labels.ndim == 2:
        return None  # Keras class_weight only supports single-label targets
    return balanced_class_weights(train, len(class_names))


def assemble_images(
    *,
    labels: np.ndarray,
    class_names: list[str],
    report: LoadReport,
    options: PipelineOptions,
    validation_split: float,
    test_split: float,
    pixels: np.ndarray | None = None,
    paths: Sequence[str] | None = None,
    strata: Sequence[Hashable] | None = None,
    parts: dict[str, np.ndarray] | None = None,
    verbose: bool = True,
) -> ImageDataset:
    """Splits the good examples (stratified), builds one pipeline per split, prints the report.

    Give either ``pixels`` (N, H, W, C) or validated ``paths``. ``parts`` overrides the split
    (e.g. a dataset's own test set); ``strata`` overrides stratifying on the labels.

    Example:
    >>> data = assemble_images(labels=np.array([0, 1] * 4), class_names=["a", "b"],
    ...     report=LoadReport("demo"), options=PipelineOptions(image_size=(4, 4)),
    ...     validation_split=0.25, test_split=0.0, pixels=np.zeros((8, 4, 4, 3), np.uint8),
    ...     verbose=False)
    >>> data.sizes
    {'train': 6, 'validation': 2}
    """
    multi_label = labels.ndim == 2
    if parts is None:
        parts = split_indices(
            strata if strata is not None else stratum_keys(labels),
            validation_split=validation_split,
            test_split=test_split,
            seed=options.seed,
        )
    class_weights = record_splits(report, labels, parts, class_names)
    label_format = options.label_format(multi_label)
    if pixels is not None:
        image_size = options.image_size or tuple(pixels.shape[1:3])
    else:
        image_size = options.image_size
    splits = {}
    for name in SPLITS:
        if name not in parts:
            splits[name] = None
            continue
        index = parts[name]
        if pixels is not None:
            examples = examples_from_arrays(pixels[index], labels[index])
        else:
            examples = examples_from_paths(
                [paths[i] for i in index], labels[index], image_size, options.resize_mode
            )
        splits[name] = image_pipeline(
            examples,
            options,
            training=name == "train",
            num_classes=len(class_names),
            label_format=label_format,
            cache_suffix=f"-{name}",
            size_hint=len(index),
        )
    if verbose:
        print(report.summary())
    return ImageDataset(
        train=splits["train"],
        validation=splits["validation"],
        test=splits["test"],
        class_names=list(class_names),
        report=report,
        class_weights=class_weights,
        multi_label=multi_label,
        image_size=tuple(int(v) for v in image_size),
        label_format=label_format,
    )
