"""TensorFlow Datasets: named datasets (downloaded when online), prepared local builders,
builder objects, and ImageFolder-style split folders (validated like `from_folder`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from keras_transfer.data.dataset import ImageDataset, record_splits
from keras_transfer.data.decode import IMAGE_EXTENSIONS
from keras_transfer.data.images import assemble_image_files, scan_class_folders
from keras_transfer.data.labels import natural_sorted, require_two_classes
from keras_transfer.data.pipeline import PipelineOptions, image_pipeline
from keras_transfer.data.report import LoadReport
from keras_transfer.data.splits import DEFAULT_SEED, split_indices
from keras_transfer.errors import BadInputError, KerasTransferError

SPLIT_FOLDER_NAMES = {
    "train": "train",
    "validation": "validation",
    "val": "validation",
    "valid": "validation",
    "test": "test",
}


# TFDS downloads most datasets from Google Cloud Storage: reaching it is what "online" means.
TFDS_HOST = ("storage.googleapis.com", 443)
PROXY_ENVS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


class DatasetUnavailableError(KerasTransferError, OSError):
    """A dataset could not be downloaded or prepared (usually: no network)."""


def network_problem(host: tuple[str, int] = TFDS_HOST, timeout: float = 3.0) -> str | None:
    """Why a download from ``host`` cannot work (`connect_problem`), or None when it can.

    ``KERAS_TRANSFER_OFFLINE=1`` means offline without probing; a download through a proxy
    (``HTTPS_PROXY`` and the like) is left to try (None), since only the proxy is reachable.
    TFDS retries a failed download for about 3.5 minutes; this check fails in seconds instead.

    Example:
    >>> import os
    >>> saved = os.environ.get("KERAS_TRANSFER_OFFLINE")
    >>> os.environ["KERAS_TRANSFER_OFFLINE"] = "1"
    >>> network_problem()
    'KERAS_TRANSFER_OFFLINE=1'
    >>> _ = os.environ.pop("KERAS_TRANSFER_OFFLINE") if saved is None else os.environ.update(
    ...     KERAS_TRANSFER_OFFLINE=saved)
    """
    if os.environ.get("KERAS_TRANSFER_OFFLINE", "0") == "1":
        return "KERAS_TRANSFER_OFFLINE=1"
    if any(os.environ.get(name) for name in PROXY_ENVS):
        return None
    return connect_problem(host, timeout)


def connect_problem(host: tuple[str, int], timeout: float = 3.0) -> str | None:
    """Why no TCP connection to ``host`` opens within ``timeout`` seconds (name lookup
    included), or None when one does.

    Example:
    >>> connect_problem(("127.0.0.1", 9), timeout=1.0)  # doctest: +ELLIPSIS
    '127.0.0.1:9 cannot be reached (...Error: ...)'
    """
    import socket
    import threading

    found: list[str | None] = []

    def connect() -> None:
        try:
            with socket.create_connection(host, timeout=timeout):
                found.append(None)
        except OSError as error:  # DNS failure, refused, unreachable, timed out
            found.append(f"{type(error).__name__}: {error}")

    probe = threading.Thread(target=connect, daemon=True)  # a name lookup has no timeout
    probe.start()
    probe.join(timeout)
    if found and found[0] is None:
        return None
    reason = found[0] if found else f"no answer in {timeout:g} s"
    return f"{host[0]}:{host[1]} cannot be reached ({reason})"


def offline_alternatives(name: str) -> str:
    """The message part that tells an offline user what to load instead.

    Example:
    >>> "from_folder" in offline_alternatives("cats_vs_dogs")
    True
    """
    return (
        f"Offline alternatives for {name!r}: (1) keras_transfer.data.from_folder(root) with one "
        "sub-folder of images per class; (2) from_tfds(root) on an ImageFolder-style tree "
        "root/<train|validation|test>/<class>/<image> (the layout of "
        "tfds.folder_dataset.ImageFolder; files are validated up front); (3) a dataset prepared "
        "on a machine with network: copy its folder and pass from_tfds('/path/<name>/<version>') "
        "or from_tfds(name, data_dir=..., download=False)."
    )


def from_tfds(
    name: str | os.PathLike | Any,
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    image_key: str = "image",
    label_key: str = "label",
    image_size: tuple[int, int] = (224, 224),
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
    """A TFDS image-classification dataset: a registered name, a prepared folder, or a builder.

    ``name`` may be a TFDS name ("tf_flowers"), a prepared builder folder (with
    ``dataset_info.json``), a `tfds.core.DatasetBuilder` (e.g. `tfds.folder_dataset.ImageFolder`),
    or an ImageFolder-style tree ``root/<split>/<class>/<image>`` (validated like `from_folder`).
    The dataset's own validation/test splits are used when present; otherwise
    ``validation_split``/``test_split`` carve stratified ones from train. A failed download
    raises `DatasetUnavailableError` naming the offline alternatives; so does a download
    attempted offline, within seconds (see `network_problem`) rather than after TFDS's retries.

    Example:
    >>> data = from_tfds("tf_flowers", validation_split=0.1, test_split=0.1)  # doctest: +SKIP
    >>> data.class_names[:2]  # doctest: +SKIP
    ['dandelion', 'daisy']
    """
    options = PipelineOptions.from_arguments(locals())
    if isinstance(name, (str, os.PathLike)) and Path(name).is_dir():
        root = Path(name)
        if not (root / "dataset_info.json").is_file():
            return _from_split_folders(root, options, validation_split, test_split, strict, verbose)
    import tensorflow_datasets as tfds

    builder = _builder(tfds, name, data_dir, download)
    return _from_builder(
        tfds, builder, options, image_key, label_key, validation_split, test_split, verbose
    )


def _builder(tfds: Any, name: Any, data_dir: Any, download: bool) -> Any:
    if isinstance(name, tfds.core.DatasetBuilder):
        builder = name
    elif isinstance(name, (str, os.PathLike)) and Path(name).is_dir():
        return tfds.builder_from_directory(str(name))
    else:
        try:
            builder = tfds.builder(str(name), data_dir=None if data_dir is None else str(data_dir))
        except tfds.core.DatasetNotFoundError as error:
            raise BadInputError(
                f"{name!r} is not a TFDS dataset name nor an existing folder. "
                + offline_alternatives(str(name))
            ) from error
    if builder.is_prepared():
        return builder
    label = getattr(builder, "name", str(name))
    if not download:
        raise DatasetUnavailableError(
            f"TFDS dataset {label!r} is not prepared in {builder.data_dir} and download=False. "
            + offline_alternatives(label)
        )
    problem = network_problem()
    if problem:  # fail now rather than after minutes of download retries
        raise DatasetUnavailableError(
            f"Could not download TFDS dataset {label!r} into {builder.data_dir}: no network "
            f"({problem}). " + offline_alternatives(label)
        )
    try:
        builder.download_and_prepare()
    except Exception as error:  # noqa: BLE001 - network, DNS, missing optional module, quota...
        raise DatasetUnavailableError(
            f"Could not download/prepare TFDS dataset {label!r} into {builder.data_dir} "
            f"({type(error).__name__}: {error}). " + offline_alternatives(label)
        ) from error
    return builder


def _from_builder(
    tfds, builder, options, image_key, label_key, validation_split, test_split, verbose
) -> ImageDataset:
    info = builder.info
    class_names = _class_names(tfds, info, image_key, label_key)
    sources, labels = _split_sources(tfds, builder, image_key, label_key, validation_split,
                                     test_split, options.seed)
    counts = {part: len(part_labels) for part, part_labels in labels.items()}
    report = LoadReport(f"tfds:{info.name}")
    offsets = np.cumsum([0] + list(counts.values()))
    parts = {p: np.arange(offsets[i], offsets[i + 1]) for i, p in enumerate(counts)}
    class_weights = record_splits(report, np.concatenate(list(labels.values())), parts,
                                  class_names)
    label_format = options.label_format(multi_label=False)
    splits = {
        part: image_pipeline(
            ds,
            options,
            training=part == "train",
            num_classes=len(class_names),
            label_format=label_format,
            cache_suffix=f"-{part}",
            size_hint=counts[part],
        )
        for part, ds in sources.items()
    }
    if verbose:
        print(report.summary())
    return ImageDataset(
        train=splits.get("train"),
        validation=splits.get("validation"),
        test=splits.get("test"),
        class_names=class_names,
        report=report,
        class_weights=class_weights,
        image_size=tuple(options.image_size),
        label_format=label_format,
    )


def _class_names(tfds, info, image_key: str, label_key: str) -> list[str]:
    """The ClassLabel feature's names, once the features and a 'train' split are checked."""
    label_feature = info.features[label_key] if label_key in info.features else None
    if not isinstance(label_feature, tfds.features.ClassLabel):
        raise BadInputError(
            f"TFDS dataset {info.name!r}: {label_key!r} is not a ClassLabel feature "
            f"(features: {list(info.features.keys())}); pass label_key=..."
        )
    if image_key not in info.features:
        raise BadInputError(
            f"TFDS dataset {info.name!r} has no {image_key!r} feature; pass image_key=..."
        )
    class_names = list(label_feature.names)
    require_two_classes(class_names, f"tfds:{info.name}")
    available = set(info.splits.keys())
    if "train" not in available:
        raise BadInputError(
            f"TFDS dataset {info.name!r} has no 'train' split (has {sorted(available)})."
        )
    return class_names


def _split_sources(tfds, builder, image_key: str, label_key: str, validation_split: float,
                   test_split: float, seed: int
                   ) -> tuple[dict[str, tf.data.Dataset], dict[str, np.ndarray]]:
    """``(image, label)`` examples and labels per split, in train/validation/test order: the
    dataset's own splits, and those it lacks carved out of 'train' (stratified, seeded)."""
    available = set(builder.info.splits.keys())

    def labels_of(split: str) -> np.ndarray:
        # Labels only: images are left encoded, so this pass is cheap.
        ds = builder.as_dataset(
            split=split, shuffle_files=False, decoders={image_key: tfds.decode.SkipDecoding()}
        )
        batches = ds.map(lambda ex: ex[label_key]).batch(4096).as_numpy_iterator()
        return np.concatenate(list(batches) or [np.zeros(0, np.int64)]).astype(np.int64)

    def examples(split: str) -> tf.data.Dataset:
        ds = builder.as_dataset(split=split, shuffle_files=False)
        return ds.map(
            lambda ex: (ex[image_key], ex[label_key]), num_parallel_calls=tf.data.AUTOTUNE
        )

    train_labels = labels_of("train")
    carve = split_indices(
        train_labels.tolist(),
        validation_split=0.0 if "validation" in available else validation_split,
        test_split=0.0 if "test" in available else test_split,
        seed=seed,
    )
    sources, labels = {}, {}
    for part in ("train", "validation", "test"):
        if part in carve:
            sources[part] = _carved(examples("train"), carve[part], len(train_labels))
            labels[part] = train_labels[carve[part]]
        elif part in available and part != "train":
            sources[part] = examples(part)
            labels[part] = labels_of(part)
    return sources, labels


def _carved(examples: tf.data.Dataset, indices: np.ndarray, total: int) -> tf.data.Dataset:
    """The examples at `indices` of a split of `total` examples, in order."""
    mask = np.zeros(total, bool)
    mask[indices] = True
    flags = tf.constant(mask)
    return (
        examples.enumerate()
        .filter(lambda i, _, flags=flags: tf.gather(flags, i))
        .map(lambda _, ex: ex)
    )


def _from_split_folders(
    root: Path,
    options: PipelineOptions,
    validation_split: float,
    test_split: float,
    strict: bool,
    verbose: bool,
) -> ImageDataset:
    """ImageFolder layout ``root/<split>/<class>/<image>``; class ids shared across splits."""
    split_dirs = {
        SPLIT_FOLDER_NAMES[p.name.lower()]: p
        for p in sorted(root.iterdir())
        if p.is_dir() and p.name.lower() in SPLIT_FOLDER_NAMES
    }
    if "train" not in split_dirs:
        raise BadInputError(
            f"{root}: expected a 'train' sub-folder (ImageFolder layout root/<split>/<class>/...) "
            "or a prepared TFDS folder with dataset_info.json; for root/<class>/... use "
            "from_folder."
        )
    class_names = natural_sorted(
        c.name
        for d in split_dirs.values()
        for c in d.iterdir()
        if c.is_dir() and not c.name.startswith(".")
    )
    report = LoadReport(str(root), strict=strict)
    paths, labels, split_of = [], [], []
    for part, folder in split_dirs.items():
        present = [n for n in class_names if (folder / n).is_dir()]
        found, ids, _ = scan_class_folders(folder, present, IMAGE_EXTENSIONS, report)
        paths += found
        labels += [class_names.index(present[i]) for i in ids]
        split_of += [part] * len(found)
    return assemble_image_files(
        paths,
        np.asarray(labels, np.int64),
        class_names,
        report,
        options,
        validation_split=0.0 if "validation" in split_dirs else validation_split,
        test_split=0.0 if "test" in split_dirs else test_split,
        keep_in_memory=None,
        drop_empty=True,
        verbose=verbose,
        split_of=split_of,
        class_folders={n: str(root / "*" / n) for n in class_names},
    )
