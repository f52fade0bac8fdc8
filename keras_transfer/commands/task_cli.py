"""`keras-transfer train`, `evaluate` and `tune` for every task: which task a command is for
(``--task``, the config file's ``task``, the export's ``metadata.json`` or the data's layout),
then the image job or the generic task job.

Image classification keeps its own job and settings (`keras_transfer.commands.image_job`); every other task
runs `keras_transfer.commands.task_jobs.run_task`. Flags of one kind of job given to the other
are refused by name, before anything is read.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from keras_transfer.errors import BadInputError

TASK_ALIASES = ("image", "text", "qa", "lm", "segmentation", "detection")
TASK_METAVAR = "{" + ",".join(TASK_ALIASES) + "}"
# Settings only one of the two jobs has (flags default to SUPPRESS: present only when given).
IMAGE_ONLY = ("schedule", "time_budget", "augment", "imbalance", "strategy",
              "scale_learning_rate")
TASK_ONLY = ("head", "sequence_length", "text_column", "label_column", "num_examples")
# The image search's own settings (heads on cached features), not the other tasks'.
IMAGE_SEARCH_ONLY = ("recipes", "fine_tune_epochs", "augment")


def task_argument(value: str) -> str:
    """``--task``: an alias (``text``) or a registry name (``text_classification``), as alias.

    Example:
    >>> task_argument("question_answering")
    'qa'
    """
    from keras_transfer.tasks import get_task

    try:
        return get_task(value).alias
    except BadInputError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a task; choose from {', '.join(TASK_ALIASES)}") from None


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _refuse(args: argparse.Namespace, names: tuple[str, ...], task: str, runs: str) -> None:
    given = [_flag(name) for name in names if hasattr(args, name)]
    if given:
        raise BadInputError(f"{', '.join(given)}: not a setting of {task} ({runs}).")


def _file_settings(args: argparse.Namespace) -> tuple[dict, str | None]:
    """The ``--config`` file's settings (``{}`` without one) and its ``task``."""
    from keras_transfer.commands.cli import _load_config

    path = getattr(args, "config", None)
    settings = _load_config(path) if path else {}
    return settings, settings.pop("task", None)


def _task_and_settings(args: argparse.Namespace) -> tuple[Any, dict]:
    """The task a command is for (``--task``, the config's ``task``, else the data's layout)
    and the ``--config`` file's other settings."""
    from keras_transfer.commands.task_data import choose_task

    file_settings, file_task = _file_settings(args)
    dataset = getattr(args, "dataset", None) or file_settings.get("dataset")
    return choose_task(getattr(args, "task", None) or file_task, dataset), file_settings


def merge_settings(cls: type, args: argparse.Namespace, file_settings: dict,
                   defaults: dict | None = None) -> dict:
    """A config class's settings: `defaults`, then the config file, then the flags given (as
    `keras_transfer.commands.cli` does for every job); unknown names in the file are refused.

    Example:
    >>> from keras_transfer.commands.task_config import TaskJobConfig
    >>> args = argparse.Namespace(epochs=3)
    >>> merge_settings(TaskJobConfig, args, {"epochs": 1, "quantization": "float16"})
    {'epochs': 3, 'quantization': ('float16',)}
    """
    from keras_transfer.settings import coerce_settings, unknown_settings

    unknown = unknown_settings(cls, list(file_settings), getattr(args, "config", None))
    if unknown:
        raise ValueError(unknown)
    settings = {**(defaults or {}), **file_settings}
    settings.update({field.name: getattr(args, field.name) for field in dataclasses.fields(cls)
                     if hasattr(args, field.name)})
    return coerce_settings(cls, settings)


# ----------------------------------------------------------------------------- train


def train(args: argparse.Namespace) -> int:
    """`keras-transfer train`: the image job, or the task job for any other task.

    Example:
    >>> # train(build_parser().parse_args(["train", "--task", "lm", "--dataset", "synthetic"]))
    """
    task, file_settings = _task_and_settings(args)
    if task.name == "image_classification":
        from keras_transfer.commands import image_job as jobs

        _refuse(args, TASK_ONLY, task.name, "the image job; see keras-transfer train --help")
        settings = merge_settings(jobs.ImageJobConfig, args, file_settings)
        jobs.run_image_classification(jobs.ImageJobConfig(**settings))  # checks first
        return 0
    from keras_transfer.commands.task_config import TaskJobConfig
    from keras_transfer.commands.task_jobs import run_task

    _refuse(args, IMAGE_ONLY, task.name, "image classification only")
    settings = merge_settings(TaskJobConfig, args, file_settings)
    run_task(TaskJobConfig(**{**settings, "task": task.name}))  # checks first
    return 0


# ----------------------------------------------------------------------------- evaluate


def _model_file(path: Path) -> Path:
    return path / "model.keras" if path.is_dir() else path


def artifact_task_name(path: Path) -> str | None:
    """The task of a model file or export folder: ``metadata.json`` beside it, else the model
    itself (loaded); None when there is nothing there (the image command names it).

    Example:
    >>> artifact_task_name(Path("/nonexistent/model.keras")) is None
    True
    """
    from keras_transfer.tasks.artifacts import artifact_task, metadata_path

    model_file = _model_file(path)
    if not model_file.is_file():
        return None
    if metadata_path(model_file).is_file():
        return artifact_task(model_file)
    import keras

    from keras_transfer.tasks import task_name_of

    return task_name_of(keras.models.load_model(model_file, safe_mode=True))


def evaluate(args: argparse.Namespace) -> int:
    """`keras-transfer evaluate`: the task's report on a split of the data the model was
    trained on (from ``config.json`` beside it) or of ``--dataset``.

    Example:
    >>> # evaluate(build_parser().parse_args(["evaluate", "saved_models/corpus_lm"]))
    """
    from keras_transfer.commands.image_cli import evaluate_image
    from keras_transfer.tasks import get_task

    name = artifact_task_name(Path(args.model))
    requested = getattr(args, "task", None)
    if requested is not None and name is not None and get_task(requested).name != name:
        raise BadInputError(f"--task {requested}: {args.model} is a {name} model "
                            f"(--task {get_task(name).alias}).")
    if name in (None, "image_classification"):
        return evaluate_image(args)
    if getattr(args, "tta", None):
        raise BadInputError(f"--tta: test-time augmentation is for image classifiers; "
                            f"{args.model} is a {name} model.")
    return evaluate_task_model(args, name)


def evaluate_task_model(args: argparse.Namespace, task: str) -> int:
    """Evaluates a model of `task` (not image classification) and writes ``evaluation.json``.

    Example:
    >>> # evaluate_task_model(args, "segmentation")  # prints e.g. "8 test images: mean IoU …"
    """
    import keras

    from keras_transfer.commands.task_config import TaskJobConfig, resolved
    from keras_transfer.commands.task_loaders import load_task_data
    from keras_transfer.evaluation.tasks import evaluate_split, summary
    from keras_transfer.export.integrity import check_artifact

    path = Path(args.model)
    model_file = _model_file(path)
    if model_file.suffix != ".keras":
        raise BadInputError(f"{args.model}: evaluate reads a .keras model, or an export folder "
                            "holding model.keras (the folder's TFLite files run through "
                            "keras-transfer predict).")
    beside = model_file.parent / "config.json"
    if getattr(args, "config", None) is None and beside.is_file():
        args.config = str(beside)  # the training run's settings: the same split
    file_settings, _ = _file_settings(args)
    evaluation_dir = vars(args).pop("output_dir", None)  # the report's folder, not a setting
    settings = merge_settings(TaskJobConfig, args, file_settings)
    settings.pop("output_dir", None)
    check_artifact(model_file)  # a clear error naming a truncated or altered file
    model = keras.models.load_model(model_file, safe_mode=True)
    if task in ("segmentation", "detection"):
        settings["image_size"] = int(model.input_shape[1])  # what the saved model takes
    config = TaskJobConfig(**{**settings, "task": task})
    config.validate()
    config = resolved(config)
    if config.dataset is None:
        raise BadInputError(f"{args.model}: no config.json beside it to say which data it was "
                            "trained on; pass --dataset (and --config if the splits differed).")
    data = load_task_data(config, model)
    report = evaluate_split(model, data, args.split, task)
    output_dir = Path(evaluation_dir or model_file.parent / f"evaluation_{args.split}")
    output_dir.mkdir(parents=True, exist_ok=True)
    _write_json(output_dir / "evaluation.json", {**report, "dataset": config.dataset,
                                                 "model": str(model_file)})
    print(summary(report))
    print(f"Wrote evaluation.json to {output_dir}")
    return 0


def _write_json(path: Path, content: Any) -> None:
    from keras_transfer.utils.files import atomic_write_bytes

    atomic_write_bytes(path, json.dumps(content, indent=2, default=str).encode())


# ----------------------------------------------------------------------------- tune


def tune(args: argparse.Namespace) -> int:
    """`keras-transfer tune`: the image classifier search (heads on cached features), or for
    any other task a search over its job's rates, unfrozen blocks and weight decay
    (`keras_transfer.tuning.task`).

    Example:
    >>> # tune(build_parser().parse_args(["tune", "--task", "qa", "--dataset", "synthetic"]))
    """
    task, file_settings = _task_and_settings(args)
    if task.name == "image_classification":
        from keras_transfer.commands.image_cli import tune_image

        _refuse(args, TASK_ONLY + ("epochs",), task.name,
                "the image search; its fine-tuning epochs are --fine-tune-epochs")
        return tune_image(args, file_settings)
    _refuse(args, IMAGE_SEARCH_ONLY, task.name, "the image search only")
    return tune_task(args, task.name, file_settings)



def tune_task(args: argparse.Namespace, task: str, file_settings: dict) -> int:
    """Searches the job of `task` (`tuning.task.TaskTrainer`) and writes what `tune` writes.

    Example:
    >>> # tune_task(args, "segmentation", {})
    """
    from keras_transfer.commands.cli import _load_config
    from keras_transfer.commands.task_config import TaskJobConfig, resolved
    from keras_transfer.commands.task_data import check_task_data
    from keras_transfer.commands.task_jobs import load_and_build
    from keras_transfer.runs import run_dir_for
    from keras_transfer.tasks import get_task
    from keras_transfer.tuning import tune
    from keras_transfer.tuning.task import TaskSpace, TaskTrainer

    config = TaskJobConfig(**{**merge_settings(TaskJobConfig, args, file_settings),
                              "task": task})
    config.validate()
    config = resolved(config)
    space_file = getattr(args, "space", None)
    space = TaskSpace.from_dict(_load_config(space_file), source=space_file) if space_file \
        else TaskSpace()
    alias = get_task(task).alias
    if config.dataset is None:
        raise BadInputError(f"tune --task {alias}: needs --dataset (see keras-transfer train).")
    check_task_data(config.task, config.dataset)
    output_dir = Path(getattr(args, "tune_dir", None) or
                      Path("tuning") / config.resolved_output_dir().name)
    _, data = load_and_build(config, run_dir_for(output_dir))  # the data once, for every trial
    if "validation" not in data.splits:
        raise BadInputError(f"tune --task {alias}: trials are scored on a validation split; "
                            "give --validation-split above 0.")
    trainer = TaskTrainer(config, data, space, run_dir=run_dir_for(output_dir))
    result = tune(trainer, algorithm=getattr(args, "algorithm", "bayesian"),
                  max_trials=getattr(args, "max_trials", None if hasattr(args, "max_minutes")
                                     else 10),
                  max_minutes=getattr(args, "max_minutes", None), output_dir=output_dir,
                  seed=config.seed)
    metric = trainer.task.headline[0]
    print(result.table())
    print(f"Best validation {metric.words} {metric.fmt.format(abs(result.best_score))} (trial "
          f"{result.best_trial}). Re-run it: keras-transfer train --config "
          f"{output_dir / 'best_config.json'}")
    return 0
