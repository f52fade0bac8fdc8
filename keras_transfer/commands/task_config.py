"""Settings of a training run for any task but image classification (that one keeps
`keras_transfer.commands.image_job.ImageJobConfig`), their per-task defaults as data, and their checks.

A run's settings come from flags, a ``--config`` JSON/YAML file or Python, and are checked the
way the image job's are (`keras_transfer.settings`): one `BadInputError` naming every bad
setting, before any data is read. `resolved` fills the task's defaults in, so the
``config.json`` written beside the export repeats the run exactly.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from keras_transfer.settings import TRAINING_RULES, Rule, Together, check_settings

FORMATS = ("keras", "saved_model", "tflite")
IMAGE_INPUT_TASKS = ("segmentation", "detection")
TEXT_TASKS = ("text_classification", "question_answering", "causal_lm")
PRETRAINED = "pretrained"  # the backbone's own weights: ImageNet for images, the text preset's
TINY_PREFIX = "tiny:"  # "tiny:bert", "tiny:gpt2": a small random preset made on the spot


@dataclasses.dataclass(frozen=True)
class TaskDefaults:
    """What a task trains with when a setting is not given (`resolved` fills them in)."""

    backbone: str
    heads: tuple[str, ...] = ()  # the first one is the default
    head_epochs: int = 0
    epochs: int = 2
    fine_tune_learning_rate: float | None = None  # None: the task's default_learning_rate
    image_size: int | None = None
    sequence_length: int | None = None


DEFAULTS = {
    # Images: a head on the frozen backbone first, then the whole network at a tenth of the rate.
    "segmentation": TaskDefaults("efficientnet_lite0", ("deeplab_v3_plus", "unet"), 3, 5,
                                 1e-4, image_size=224),
    # SSD first: the best mAP per CPU minute of the four kinds (README, bench/detection.py).
    "detection": TaskDefaults("efficientnet_lite0", ("ssd", "retinanet", "yolov8", "faster_rcnn"),
                              3, 10, 1e-4, image_size=224),
    # Transformers: full fine-tuning from the first step (no separate head stage).
    "text_classification": TaskDefaults("minilm_l6", ("single_label", "multi_label"),
                                        sequence_length=128),
    "question_answering": TaskDefaults("minilm_l6", sequence_length=256),
    "causal_lm": TaskDefaults("gpt2_base_en", sequence_length=128),
}


@dataclasses.dataclass
class TaskJobConfig:
    """Settings of one `keras-transfer train --task ...` run (saved beside it as ``config.json``).

    None means "the task's default" (`DEFAULTS`, filled in by `resolved`). ``weights``:
    ``"pretrained"`` (ImageNet for image backbones, the preset's for text ones), None (random)
    or, for image backbones, a weights file. ``unfreeze_blocks`` None: every block.
    ``learning_rate`` is the head stage's rate; ``fine_tune_learning_rate`` the whole
    network's, which is ``learning_rate`` when there is no head stage (``head_epochs`` 0, the
    text tasks' default).

    Example:
    >>> config = resolved(TaskJobConfig(task="qa", dataset="synthetic"))
    >>> config.task, config.backbone, config.sequence_length
    ('question_answering', 'minilm_l6', 256)
    """

    task: str = "text_classification"
    dataset: str | None = None
    backbone: str | None = None
    weights: str | None = PRETRAINED
    head: str | None = None
    output_dir: str | None = None
    image_size: int | None = None
    sequence_length: int | None = None
    text_column: str | None = None  # None: "text"; "premise,hypothesis": a sentence pair
    label_column: str | None = None  # None: "label" ("sentiment" for the tweets)
    batch_size: int = 16
    head_epochs: int | None = None
    epochs: int | None = None
    unfreeze_blocks: int | None = None
    learning_rate: float | None = None
    fine_tune_learning_rate: float | None = None
    weight_decay: float = 0.0
    validation_split: float = 0.1
    test_split: float = 0.2
    num_examples: int | None = None  # how many --dataset synthetic generates (default 256)
    max_train_examples: int | None = None
    quantization: tuple[str, ...] | None = None
    formats: tuple[str, ...] | None = None
    seed: int = 1337

    def resolved_output_dir(self) -> Path:
        """``--output-dir``, else ``saved_models/<dataset>_<task alias>``.

        Example:
        >>> TaskJobConfig(task="lm", dataset="data/corpus.txt").resolved_output_dir().name
        'corpus_lm'
        """
        from keras_transfer.tasks import get_task

        if self.output_dir:
            return Path(self.output_dir)
        name = Path(self.dataset or "synthetic").stem or "data"
        return Path("saved_models") / f"{name}_{get_task(self.task).alias}"

    def validate(self) -> None:
        """Checks every setting (types, ranges, choices, what the task accepts); raises one
        `BadInputError` naming each bad one.

        Example:
        >>> TaskJobConfig(task="qa", dataset="synthetic", image_size=64).validate()
        Traceback (most recent call last):
        ...
        keras_transfer.errors.BadInputError: task='qa', image_size=64: image_size applies to segmentation and detection, not question_answering.
        """
        check_settings(self, setting_rules(), _together())


def _task_problem(name: str) -> str | None:
    from keras_transfer.errors import BadInputError
    from keras_transfer.tasks import get_task

    try:
        task = get_task(name)
    except BadInputError as error:
        return str(error)
    if task.name == "image_classification":
        return "image classification runs the image job (keras_transfer.commands.image_job.ImageJobConfig)"
    return None


def setting_rules() -> dict[str, Rule]:
    """What each setting accepts beyond its type hint (see `keras_transfer.settings.Rule`).

    Example:
    >>> setting_rules()["formats"].choices
    ('keras', 'saved_model', 'tflite')
    """
    from keras_transfer.export.tflite import QUANTIZATIONS

    return {
        **TRAINING_RULES,
        "task": Rule(check=_task_problem),
        "text_column": Rule(check=_text_column_problem),
        "image_size": Rule(min=32),
        "sequence_length": Rule(min=8),
        "num_examples": Rule(min=8),
        "max_train_examples": Rule(min=1),
        "quantization": Rule(choices=QUANTIZATIONS),
        "formats": Rule(choices=FORMATS, nonempty=True),
    }


def text_columns(config: TaskJobConfig) -> list[str]:
    """The text column(s) a text job reads: ``text_column`` split at commas (two: a pair).

    Example:
    >>> text_columns(TaskJobConfig(text_column="premise, hypothesis"))
    ['premise', 'hypothesis']
    """
    return [name.strip() for name in (config.text_column or "text").split(",")]


def _text_column_problem(text_column: str) -> str | None:
    columns = [name.strip() for name in text_column.split(",")]
    if not all(columns) or len(columns) > 2:
        return "expected one column name, or two separated by a comma for a sentence pair"
    return None


def _canonical(task: str) -> str:
    from keras_transfer.tasks import get_task

    return get_task(task).name


def _only_for(tasks: tuple[str, ...], setting: str):
    """A check that `setting` is None unless the task is one of `tasks`."""
    def check(task: str, value: Any) -> str | None:
        if value is None or _canonical(task) in tasks:
            return None
        return f"{setting} applies to {' and '.join(tasks)}, not {_canonical(task)}"
    return check


def _head_problem(task: str, head: str | None) -> str | None:
    heads = DEFAULTS[_canonical(task)].heads
    if head is None or head in heads:
        return None
    if not heads:
        return f"{_canonical(task)} has a single head; leave head unset"
    return f"expected one of {', '.join(heads)} for {_canonical(task)}"


def _quantization_problem(task: str, quantization: tuple[str, ...] | None) -> str | None:
    from keras_transfer.tasks import get_task

    allowed = get_task(task).quantizations
    wrong = [flavour for flavour in quantization or () if flavour not in allowed]
    if not wrong:
        return None
    return (f"{_canonical(task)} exports {', '.join(allowed)}" if allowed else
            f"{_canonical(task)} has no TFLite export; leave quantization unset")


def _formats_problem(task: str, formats: tuple[str, ...] | None) -> str | None:
    from keras_transfer.tasks import get_task

    if formats and "tflite" in formats and not get_task(task).quantizations:
        return f"{_canonical(task)} has no TFLite export; choose keras and/or saved_model"
    return None


def _backbone_problem(task: str, backbone: str | None) -> str | None:
    from keras_transfer.settings import backbone_problem
    from keras_transfer.testing.tiny_text import TINY_FAMILIES

    if backbone is None:
        return None
    if _canonical(task) in IMAGE_INPUT_TASKS:
        return backbone_problem(backbone)
    if backbone.startswith(TINY_PREFIX) and backbone[len(TINY_PREFIX):] not in TINY_FAMILIES:
        return f"expected {TINY_PREFIX}<family>, a family of {', '.join(TINY_FAMILIES)}"
    return None  # a keras-hub preset name or folder: checked when it loads


def _weights_problem(task: str, weights: str | None) -> str | None:
    if weights in (None, PRETRAINED) or _canonical(task) in IMAGE_INPUT_TASKS:
        return None
    return (f"a text backbone's weights come with its preset (--backbone); expected "
            f"{PRETRAINED!r} or none")


def _detector_size_problem(task: str, image_size: int | None) -> str | None:
    if _canonical(task) == "detection" and image_size and image_size % 32:
        return "a detector needs a multiple of 32 (features at strides 8, 16 and 32)"
    return None


def _together() -> list[Together]:
    text_only = ("text_classification",)
    return [
        Together(("task", "image_size"), _only_for(IMAGE_INPUT_TASKS, "image_size")),
        Together(("task", "image_size"), _detector_size_problem),
        Together(("task", "sequence_length"), _only_for(TEXT_TASKS, "sequence_length")),
        Together(("task", "text_column"), _only_for(text_only, "text_column")),
        Together(("task", "label_column"), _only_for(text_only, "label_column")),
        Together(("task", "head"), _head_problem),
        Together(("task", "quantization"), _quantization_problem),
        Together(("task", "formats"), _formats_problem),
        Together(("task", "backbone"), _backbone_problem),
        Together(("task", "weights"), _weights_problem),
    ]


def resolved(config: TaskJobConfig) -> TaskJobConfig:
    """The config with the task's defaults filled in (and the task by its registry name).

    Example:
    >>> config = resolved(TaskJobConfig(task="segmentation", dataset="synthetic"))
    >>> config.head, config.image_size, config.quantization, config.fine_tune_learning_rate
    ('deeplab_v3_plus', 224, ('float32',), 0.0001)
    """
    from keras_transfer.tasks import get_task

    task = get_task(config.task)
    defaults = DEFAULTS[task.name]
    pick = lambda value, default: default if value is None else value  # noqa: E731
    head_epochs = pick(config.head_epochs, defaults.head_epochs)
    if not head_epochs and config.fine_tune_learning_rate is None:
        # One stage only: --learning-rate is the rate it trains at.
        config = dataclasses.replace(config, fine_tune_learning_rate=config.learning_rate)
    return dataclasses.replace(
        config, task=task.name, backbone=pick(config.backbone, defaults.backbone),
        head=pick(config.head, defaults.heads[0] if defaults.heads else None),
        image_size=pick(config.image_size, defaults.image_size),
        sequence_length=pick(config.sequence_length, defaults.sequence_length),
        head_epochs=head_epochs,
        epochs=pick(config.epochs, defaults.epochs),
        learning_rate=pick(config.learning_rate, task.default_learning_rate),
        fine_tune_learning_rate=pick(config.fine_tune_learning_rate,
                                     defaults.fine_tune_learning_rate or
                                     task.default_learning_rate),
        quantization=pick(config.quantization, task.quantizations[:1]),
        formats=pick(config.formats, FORMATS if task.quantizations else FORMATS[:2]))


def tiny_family(backbone: str) -> str | None:
    """The family of a ``tiny:<family>`` backbone, else None.

    Example:
    >>> tiny_family("tiny:gpt2"), tiny_family("minilm_l6")
    ('gpt2', None)
    """
    match = re.fullmatch(re.escape(TINY_PREFIX) + r"(\w+)", backbone or "")
    return match.group(1) if match else None
