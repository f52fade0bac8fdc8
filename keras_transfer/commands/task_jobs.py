"""One training job for every task but image classification (that one is
`keras_transfer.commands.image_job.run_image_classification`): what ``keras-transfer train --task ...`` runs.

Load the data (a file, a folder, ``tweets`` or ``synthetic``), build the model with the task's
builder on the chosen backbone, run the staged `fine_tune` recipe (which asks the model's task
for its optimizer, loss and metrics), evaluate on the held-out test split with the task's
metrics, and export with `kt.export` (which asks the task how), then write ``report.json`` and
``config.json`` (``--config`` on it repeats the run). Working state lives in a run folder
(`keras_transfer.runs`): a killed run resumes its fine-tuning stage; a second process writing the
same output is refused.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import keras

from keras_transfer.commands.task_config import (
    IMAGE_INPUT_TASKS,
    PRETRAINED,
    TaskJobConfig,
    resolved,
    text_columns,
    tiny_family,
)
from keras_transfer.commands.task_data import EXPECTED, TaskData, check_task_data
from keras_transfer.errors import BadInputError
from keras_transfer.runs import RunState, output_lock, run_dir_for


def run_task(config: TaskJobConfig | None = None, **overrides: Any) -> dict:
    """Runs the whole job and returns its report (also written to ``report.json``).

    Every setting and the data's layout are checked before anything is built or read.

    Example (about a minute on 2 CPU cores, offline):
    >>> report = run_task(task="segmentation", dataset="synthetic", backbone="mobilenet_v2",
    ...                   weights=None, image_size=64, num_examples=32)  # doctest: +SKIP
    >>> report["test"]["mean_iou"]  # doctest: +SKIP
    """
    config = dataclasses.replace(config or TaskJobConfig(), **overrides)
    config.validate()
    config = resolved(config)
    if config.dataset is None:
        from keras_transfer.tasks import get_task

        raise BadInputError(f"dataset: --task {get_task(config.task).alias} needs --dataset: "
                            f"{EXPECTED[config.task]}.")
    check_task_data(config.task, config.dataset)
    output_dir = config.resolved_output_dir()
    with output_lock(output_dir):  # a second process on the same output is refused
        return _run(config, output_dir)


def _run(config: TaskJobConfig, output_dir: Path) -> dict:
    from keras_transfer.evaluation.tasks import evaluate_split, summary
    from keras_transfer.recipes import fine_tune

    run_dir = run_dir_for(output_dir)
    print(f"      run folder (TensorBoard logs, resumable backup): {run_dir}", flush=True)
    state = RunState.open(run_dir, dataclasses.asdict(config))
    keras.utils.set_random_seed(config.seed)
    timings: dict[str, float] = {}
    started = clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        timings[name] = round(time.perf_counter() - clock, 2)
        clock = time.perf_counter()

    print(f"[1/5] Loading {config.dataset} for {config.task} …", flush=True)
    print(f"[2/5] Building {config.backbone} ({_weights_words(config)}) …", flush=True)
    model, data = load_and_build(config, run_dir)
    lap("load_and_build_s")
    print(f"[3/5] Training: {_stages_line(config)} …", flush=True)
    history = fine_tune(
        model, data.split("train"), data.splits.get("validation"),
        head_epochs=config.head_epochs, epochs=config.epochs,
        unfreeze_blocks=config.unfreeze_blocks, learning_rate=config.learning_rate,
        fine_tune_learning_rate=config.fine_tune_learning_rate,
        weight_decay=config.weight_decay, run_dir=run_dir)
    lap("train_s")
    split = next(name for name in ("test", "validation", "train") if name in data.splits)
    print(f"[4/5] Evaluating on the held-out {split} split …", flush=True)
    test = evaluate_split(model, data, split, config.task)
    print(f"      {summary(test)}", flush=True)
    lap("evaluate_s")
    print(f"[5/5] Exporting to {output_dir} …", flush=True)
    exported = export_model(model, output_dir, config, data, test)
    lap("export_s")
    timings["total_s"] = round(time.perf_counter() - started, 2)
    report = {"task": config.task, "dataset": config.dataset, "backbone": config.backbone,
              "class_names": data.class_names, "data": {"sizes": data.sizes}, "test": test,
              "history": history.as_dict(), "timings": timings,
              "settings": dataclasses.asdict(config),
              "export": {"files": sorted(exported.get("files", {}))}}
    write_outputs(output_dir, report, config, history)
    state.finish()  # complete: a rerun trains afresh
    print(f"Done in {timings['total_s'] / 60:.1f} min. {summary(test)}. Artifacts: "
          f"{', '.join(sorted(p.name for p in output_dir.iterdir()))}", flush=True)
    return report


def _weights_words(config: TaskJobConfig) -> str:
    if config.weights is None:
        return "random weights"
    return "pretrained weights" if config.weights == PRETRAINED else f"weights={config.weights}"


def _stages_line(config: TaskJobConfig) -> str:
    blocks = "every block" if config.unfreeze_blocks is None else \
        f"the last {config.unfreeze_blocks} blocks"
    head = (f"head {config.head_epochs} epochs on the frozen backbone at "
            f"{config.learning_rate:g}, then " if config.head_epochs else "")
    return (f"{head}{config.epochs} epochs with {blocks} trainable at "
            f"{config.fine_tune_learning_rate:g}")


def load_and_build(config: TaskJobConfig, run_dir: Path) -> tuple[keras.Model, TaskData]:
    """The data and the model of a resolved config: the data first where its classes size the
    model, the model first where it tokenizes the data (question answering).

    Example:
    >>> # model, data = load_and_build(resolved(TaskJobConfig(task="qa", ...)), Path("runs/x"))
    """
    from keras_transfer.commands.task_loaders import load_task_data

    if config.task == "question_answering":
        model = build_model(config, None, run_dir)
        return model, load_task_data(config, model)
    data = load_task_data(config)
    return build_model(config, data, run_dir), data


def build_model(config: TaskJobConfig, data: TaskData | None, run_dir: Path) -> keras.Model:
    """The task's model from its registry builder, on the config's backbone.

    Example:
    >>> # build_model(resolved(TaskJobConfig(task="lm", backbone="tiny:gpt2")), None, run_dir)
    """
    from keras_transfer.tasks import get_task

    task = get_task(config.task)
    keras.utils.set_random_seed(config.seed)  # the same initial head whatever loaded before
    if config.task in IMAGE_INPUT_TASKS:
        weights = "imagenet" if config.weights == PRETRAINED else config.weights
        shape = (config.image_size, config.image_size, 3)
        num_classes = len(data.class_names)
        if config.task == "segmentation":
            return task.build(config.head, config.backbone, num_classes, weights=weights,
                              input_shape=shape, ignore_class=data.ignore_class)
        return task.build(config.head, config.backbone, num_classes, weights=weights,
                          input_shape=shape)
    preset = text_preset(config, run_dir)
    options = dict(sequence_length=config.sequence_length,
                   weights="preset" if config.weights is not None else None)
    if config.task == "text_classification":
        return task.build(preset, len(data.class_names), task=config.head,
                          pairs=len(text_columns(config)) == 2, **options)
    return task.build(preset, **options)


def text_preset(config: TaskJobConfig, run_dir: Path) -> str:
    """The preset to load: the backbone setting, or a tiny random preset written into the run
    folder for ``tiny:<family>`` (smoke runs; nothing is downloaded).

    Example:
    >>> import tempfile
    >>> config = TaskJobConfig(task="lm", backbone="tiny:gpt2", sequence_length=16)
    >>> Path(text_preset(config, Path(tempfile.mkdtemp()))).name
    'tiny_gpt2'
    """
    from keras_transfer.text import make_tiny_preset

    family = tiny_family(config.backbone)
    if family is None:
        return config.backbone
    length = max(64, config.sequence_length or 0)
    return str(make_tiny_preset(family, Path(run_dir) / f"tiny_{family}", seed=config.seed,
                                max_sequence_length=length))


def export_model(model: keras.Model, output_dir: Path, config: TaskJobConfig, data: TaskData,
                 test: dict) -> dict:
    """`kt.export` with the config's formats and quantization, the class names, the test
    scores in ``metadata.json``, and held-out examples to verify (and calibrate int8) on.

    Example:
    >>> # export_model(model, Path("saved_models/shapes_segmentation"), config, data, test)
    """
    from keras_transfer.evaluation.tasks import headline
    from keras_transfer.tasks.api import export

    options: dict[str, Any] = {}
    if data.class_names is not None:
        options["labels"] = list(data.class_names)
    if "int8" in (config.quantization or ()):
        options["representative_data"] = sample_inputs(config.task, data, "train", 100)
    info = export(model, output_dir, formats=tuple(config.formats),
                  quantization=tuple(config.quantization or ()), verbose=False,
                  verify_data=sample_inputs(config.task, data, test["split"], 8),
                  metadata={"backbone": config.backbone, "dataset": config.dataset,
                            f"{test['split']}_scores": headline(test)}, **options)
    return info


def sample_inputs(task: str, data: TaskData, split: str, count: int) -> Any:
    """Up to `count` raw model inputs of a split, in the form the task's export verifies on:
    images ``(N, H, W, 3)``, texts, ``{"question", "context"}`` dicts or prompts.

    Example:
    >>> data = TaskData({}, {}, examples={"test": ["the fox", "the owl", "the cat"]})
    >>> sample_inputs("causal_lm", data, "test", 2)
    ['the fox', 'the owl']
    """
    import numpy as np

    if task == "question_answering":
        return [{"question": e["question"], "context": e["context"]}
                for e in data.examples[split][:count]]
    if task == "causal_lm":
        return list(data.examples[split][:count])
    inputs = [x for x, _ in data.split(split).unbatch().take(count).as_numpy_iterator()]
    if task in IMAGE_INPUT_TASKS:
        return np.stack(inputs)
    decode = lambda value: value.decode("utf-8", errors="replace")  # noqa: E731
    return [tuple(map(decode, x)) if isinstance(x, tuple) else decode(x) for x in inputs]


def write_outputs(output_dir: Path, report: dict, config: TaskJobConfig, history) -> None:
    """``report.json``, ``config.json`` (the settings as run) and ``learning_curves.png``.

    Example:
    >>> # write_outputs(Path("saved_models/corpus_lm"), report, config, history)
    """
    from keras_transfer.evaluation.plots import plot_learning_curves
    from keras_transfer.utils.files import atomic_write_bytes

    for name, content in (("report.json", report), ("config.json", dataclasses.asdict(config))):
        atomic_write_bytes(output_dir / name, json.dumps(content, indent=2, default=str).encode())
    if history.stages:
        plot_learning_curves(history.stages, output_dir / "learning_curves.png")
