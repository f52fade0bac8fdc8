"""One loader per task: a `TaskJobConfig`'s data set (a file, a folder, ``tweets`` or
``synthetic``) as a `TaskData` of batched train/validation/test splits.

The splits depend only on the data and the config's seed and fractions, so `evaluate` rebuilds
the test split `train` held out. Question answering tokenizes with the model, so its loader
takes the model; the others take it and ignore it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from keras_transfer.testing import synthetic
from keras_transfer.commands.task_config import TaskJobConfig, text_columns
from keras_transfer.commands.task_data import SYNTHETIC, TWEETS, TaskData, coco_file, tweets_csv
from keras_transfer.errors import BadInputError

DEFAULT_SYNTHETIC_EXAMPLES = 256


def load_task_data(config: TaskJobConfig, model: Any = None) -> TaskData:
    """The data of a resolved config (see `keras_transfer.commands.task_config.resolved`).

    Example:
    >>> from keras_transfer.commands.task_config import resolved
    >>> config = resolved(TaskJobConfig(task="lm", dataset="synthetic", num_examples=20))
    >>> load_task_data(config).sizes
    {'train': 14, 'validation': 2, 'test': 4}
    """
    return _LOADERS[config.task](config, model)


def _indices(count: int, config: TaskJobConfig, what: str) -> dict[str, np.ndarray]:
    from keras_transfer.data.splits import split_indices

    if count < 2:
        raise BadInputError(f"{what}: {count} usable example(s); training needs at least 2.")
    parts = split_indices(np.zeros(count), validation_split=config.validation_split,
                          test_split=config.test_split, seed=config.seed)
    if config.max_train_examples:
        parts["train"] = parts["train"][:config.max_train_examples]
    return parts


def _num_examples(config: TaskJobConfig) -> int:
    return config.num_examples or DEFAULT_SYNTHETIC_EXAMPLES


def _take(items: Sequence, index: np.ndarray) -> list:
    return [items[i] for i in index]


# ----------------------------------------------------------------------------- text


def _text(config: TaskJobConfig, model: Any = None) -> TaskData:
    from keras_transfer.data.text import text_from_csv

    with tempfile.TemporaryDirectory() as folder:
        path, label_column = config.dataset, config.label_column or "label"
        if config.dataset == SYNTHETIC:
            path = synthetic.write_reviews_csv(Path(folder) / "reviews.csv",
                                               _num_examples(config), seed=config.seed)
        elif config.dataset == TWEETS:
            path, label_column = tweets_csv(), config.label_column or "sentiment"
        columns = text_columns(config)
        data = text_from_csv(path, columns[0] if len(columns) == 1 else columns, label_column,
                             multi_label=config.head == "multi_label",
                             batch_size=config.batch_size,
                             validation_split=config.validation_split,
                             test_split=config.test_split, seed=config.seed)
    splits = {name: ds for name, ds in (("train", data.train), ("validation", data.validation),
                                         ("test", data.test)) if ds is not None}
    sizes = dict(data.sizes)
    if config.max_train_examples and sizes.get("train", 0) > config.max_train_examples:
        # Cached after the first pass: the same examples every epoch, reshuffled.
        count = config.max_train_examples
        splits["train"] = (data.train.unbatch().take(count).cache().shuffle(count, seed=config.seed)
                           .batch(config.batch_size))
        sizes["train"] = count
    return TaskData(splits, sizes, data.class_names, source=str(config.dataset))


# ----------------------------------------------------------------------------- segmentation


def _class_file(folder: Path) -> list[str] | None:
    for name in ("classes.txt", "labels.txt"):
        if (folder / name).is_file():
            return [line.strip() for line in (folder / name).read_text().splitlines()
                    if line.strip()]
    return None


def _segmentation(config: TaskJobConfig, model: Any = None) -> TaskData:
    from keras_transfer.data.masks import segmentation_from_arrays, segmentation_from_folders

    size = (config.image_size, config.image_size)
    common = dict(batch_size=config.batch_size, validation_split=config.validation_split,
                  test_split=config.test_split, seed=config.seed)
    if config.dataset == SYNTHETIC:
        from keras_transfer.data.masks import synthetic_shapes

        images, masks = synthetic_shapes(_num_examples(config), size, seed=config.seed)
        data = segmentation_from_arrays(images, masks,
                                        class_names=list(synthetic.SEGMENTATION_CLASSES), **common)
    else:
        root = Path(config.dataset)
        data = segmentation_from_folders(root / "images", root / "masks", image_size=size,
                                         class_names=_class_file(root), **common)
    splits = {name: ds for name, ds in (("train", data.train), ("validation", data.validation),
                                         ("test", data.test)) if ds is not None}
    sizes = dict(data.sizes)
    if config.max_train_examples and sizes.get("train", 0) > config.max_train_examples:
        splits["train"] = data.train.unbatch().take(config.max_train_examples).batch(
            config.batch_size)
        sizes["train"] = config.max_train_examples
    return TaskData(splits, sizes, list(data.class_names), ignore_class=data.ignore_class,
                    source=str(config.dataset))


# ----------------------------------------------------------------------------- detection


def read_detection(dataset: str):
    """`DetectionData` from COCO (a file or a folder holding one), VOC or YOLO annotations.

    Example:
    >>> import tempfile
    >>> path = synthetic.write_coco_folder(tempfile.mkdtemp(), 2)
    >>> len(read_detection(str(path.parent)))
    2
    """
    from keras_transfer.detection import read_coco, read_voc, read_yolo

    path = Path(dataset)
    if path.is_file():
        return read_coco(path)
    if coco_file(path) is not None:
        return read_coco(coco_file(path))
    if (path / "Annotations").is_dir():
        images = path / "JPEGImages" if (path / "JPEGImages").is_dir() else path / "images"
        return read_voc(path / "Annotations", images)
    if any(path.glob("*.xml")):
        return read_voc(path)
    names = _class_file(path) or _yolo_yaml_names(path)
    if names is None:
        raise BadInputError(f"{path}: a YOLO folder needs its class names in classes.txt (one "
                            "per line, in class-id order) or data.yaml (names:).")
    return read_yolo(path / "images", path / "labels", class_names=names)


def _yolo_yaml_names(folder: Path) -> list[str] | None:
    path = folder / "data.yaml"
    if not path.is_file():
        return None
    import yaml

    names = (yaml.safe_load(path.read_text()) or {}).get("names")
    if isinstance(names, dict):  # {0: person, 1: car}
        names = [names[k] for k in sorted(names)]
    return [str(n) for n in names] if names else None


def _detection(config: TaskJobConfig, model: Any = None) -> TaskData:
    from keras_transfer.detection import detection_dataset

    if config.dataset == SYNTHETIC:
        from keras_transfer.detection.synthetic import SHAPES, synthetic_detection

        images, boxes, classes = synthetic_detection(_num_examples(config), config.image_size,
                                                     3, seed=config.seed)
        images, names = list(images), list(SHAPES[:3])
    else:
        data = read_detection(config.dataset)
        print(data.report.summary(), flush=True)
        images, boxes, classes, names = data.images, data.boxes, data.classes, data.class_names
    parts = _indices(len(images), config, str(config.dataset))
    most = max([len(b) for b in boxes] + [1])
    splits = {name: detection_dataset(
        _take(images, index), _take(boxes, index), _take(classes, index),
        (config.image_size, config.image_size), batch_size=config.batch_size,
        augment=name == "train", shuffle=name == "train", max_boxes=max(32, most),
        seed=config.seed) for name, index in parts.items()}
    return TaskData(splits, {name: len(index) for name, index in parts.items()}, names,
                    source=str(config.dataset))


# ----------------------------------------------------------------------------- QA, LM


def _question_answering(config: TaskJobConfig, model: Any = None) -> TaskData:
    from keras_transfer.text import qa_dataset, squad_examples

    if model is None:
        raise BadInputError("question answering data is tokenized by its model: pass model=.")
    examples = (synthetic.synthetic_squad(_num_examples(config), seed=config.seed)
                if config.dataset == SYNTHETIC else squad_examples(config.dataset))
    parts = _indices(len(examples), config, str(config.dataset))
    splits, split_examples = {}, {}
    for name, index in parts.items():
        split_examples[name] = _take(examples, index)
        splits[name], report = qa_dataset(model, split_examples[name],
                                          batch_size=config.batch_size, shuffle=name == "train",
                                          seed=config.seed, verbose=False)
        if report.skipped:
            print(f"      {name}: {report.good} of {len(index)} examples kept "
                  f"({len(report.skipped)} skipped, e.g. {report.skipped[0][1]})", flush=True)
    return TaskData(splits, {name: len(index) for name, index in parts.items()},
                    examples=split_examples, source=str(config.dataset))


def corpus_texts(text: str, words_per_text: int) -> list[str]:
    """A corpus as training texts: its paragraphs (its lines when it has no blank lines), each
    cut into pieces of at most `words_per_text` words (longer ones would be truncated).

    Example:
    >>> corpus_texts("one two three\\n\\nfour", 2)
    ['one two', 'three', 'four']
    """
    blocks = text.split("\n\n") if "\n\n" in text.strip() else text.splitlines()
    texts = []
    for block in blocks:
        words = block.split()
        texts += [" ".join(words[i:i + words_per_text])
                  for i in range(0, len(words), words_per_text)]
    return texts


def _causal_lm(config: TaskJobConfig, model: Any = None) -> TaskData:
    import tensorflow as tf

    if config.dataset == SYNTHETIC:
        texts = synthetic.synthetic_corpus(_num_examples(config), seed=config.seed)
    else:
        # About 4 tokens per 3 words in GPT-2's vocabulary: pieces that fit the sequence.
        text = Path(config.dataset).read_text(encoding="utf-8", errors="replace")
        texts = corpus_texts(text, max(4, config.sequence_length * 3 // 4))
    parts = _indices(len(texts), config, str(config.dataset))
    splits, examples = {}, {}
    for name, index in parts.items():
        examples[name] = _take(texts, index)
        ds = tf.data.Dataset.from_tensor_slices(tf.constant(examples[name]))
        if name == "train":
            ds = ds.shuffle(len(index), seed=config.seed, reshuffle_each_iteration=True)
        splits[name] = ds.batch(config.batch_size).prefetch(tf.data.AUTOTUNE)
    return TaskData(splits, {name: len(index) for name, index in parts.items()},
                    examples=examples, source=str(config.dataset))


_LOADERS = {
    "text_classification": _text,
    "segmentation": _segmentation,
    "detection": _detection,
    "question_answering": _question_answering,
    "causal_lm": _causal_lm,
}
