"""The main job: fine-tune a pretrained backbone on an image dataset and ship the result.

`run_image_classification` is what `keras-transfer train` runs: load data (a built-in dataset
such as ``elpv`` or any folder of class sub-folders), build the classifier, run the staged
fine-tuning recipe, evaluate on the held-out test split, and export ``model.keras``, a
SavedModel, ``.tflite`` files, ``labels.txt``, ``report.json`` and PNG plots.

Its settings are `keras_transfer.commands.image_config.ImageJobConfig`, its data
`keras_transfer.commands.image_data`, the machine it records `keras_transfer.commands.machine`;
their names are imported here too, where they used to live.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from pathlib import Path
from typing import Any

import keras

# Where these names lived before: imported from here by tests, benchmarks and other commands,
# and looked up here by the job (tests replace `load_image_data` and `native_image_size` here).
from keras_transfer.commands.image_config import (  # noqa: F401
    IMBALANCE_CHOICES,
    SCHEDULES,
    ImageJobConfig,
    Schedule,
    default_image_size,
)
from keras_transfer.commands.image_data import check_dataset, load_image_data, native_image_size
from keras_transfer.commands.image_outputs import (  # noqa: F401
    _evaluate,
    _export,
    _print_done,
    _print_scores,
    _repeatable_config,
    _Scores,
    _write_outputs,
)
from keras_transfer.commands.machine import _cpu_count, _cpu_flags, _machine, read_cpu  # noqa: F401
from keras_transfer.data.symmetry import parse_symmetries
from keras_transfer.runs import RunState, output_lock, run_dir_for


def run_image_classification(config: ImageJobConfig | None = None, **overrides: Any) -> dict:
    """Runs the whole job and returns its report (also written to ``report.json``).

    Example (about 15 minutes on 2 CPU cores; offline with the `assets` extra):
    >>> report = run_image_classification(dataset="elpv")  # doctest: +SKIP
    >>> report["test"]["accuracy"], report["decisions"]["augment"]["symmetries"]  # doctest: +SKIP
    """
    from keras_transfer import distribute

    config = dataclasses.replace(config or ImageJobConfig(), **overrides)
    config.validate()
    schedule = config.resolved_schedule()
    strategy = distribute.resolve_strategy(config.strategy)  # first: multi-worker needs startup
    check_dataset(config.dataset)  # before the lock and the run folder: a typo leaves nothing
    batch_size = distribute.global_batch_size(config.batch_size, strategy)
    chief = distribute.is_chief(strategy)
    lock = output_lock(config.resolved_output_dir()) if chief else contextlib.nullcontext()
    with lock:  # a second process on the same output is refused, with the PID of this one
        return _run(config, schedule, strategy, batch_size, chief)


def _run(config: ImageJobConfig, schedule: Schedule, strategy, batch_size: int,
         chief: bool) -> dict:
    from keras_transfer import distribute

    run_dir = run_dir_for(config.resolved_output_dir())
    output_dir = distribute.worker_dir(config.resolved_output_dir(), strategy)  # temp unless chief
    print(f"      run folder (TensorBoard logs, resumable backup): {run_dir}", flush=True)
    run_state = RunState.open(run_dir, dataclasses.asdict(config), read_only=not chief)
    keras.utils.set_random_seed(config.seed)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    job = _Job(config, schedule, strategy, batch_size, run_dir, timings, started, run_state)
    full_report = job.run(output_dir)
    distribute.release_worker_dir(output_dir)  # a non-chief's copy of the outputs
    if chief:
        run_state.finish()  # complete: a rerun trains afresh
    return full_report


def _schedule_line(config: ImageJobConfig, schedule: Schedule) -> str:
    if schedule.budget_minutes is not None and schedule.epochs is None:
        return f"schedule {config.schedule}: a {schedule.budget_minutes:g}-minute budget"
    return (f"schedule {config.schedule}: head {schedule.head_epochs} epochs, then "
            f"{schedule.epochs} epochs with the last {schedule.unfreeze_blocks} blocks")


@dataclasses.dataclass
class _Trained:
    """What training hands to evaluation and export."""

    data: Any  # the ImageDataset, at the image size trained on
    model: keras.Model  # plain variables (out of the strategy's scope)
    history: Any  # RecipeHistory
    decisions: dict  # what the recipe decided, for the report and the repeatable config
    symmetries: Any  # the label-preserving symmetries trained with (and evaluated with)
    frozen_report: dict  # the test report after the head stage (frozen backbone)

    @property
    def test(self):
        """The held-out split: the test split, else validation."""
        return self.data.test if self.data.test is not None else self.data.validation


@dataclasses.dataclass
class _Job:
    """The steps of `run_image_classification` that share its settings and clock."""

    config: ImageJobConfig
    schedule: Schedule
    strategy: Any
    batch_size: int
    run_dir: Path
    timings: dict
    started: float
    run_state: RunState

    def run(self, output_dir: Path) -> dict:
        """The five steps, in order; returns the report (also written to ``report.json``)."""
        print(f"[1/5] Loading {self.config.dataset} …", flush=True)
        data, model, size_record = self.load_and_build()
        print(f"[3/5] Training ({_schedule_line(self.config, self.schedule)}) …", flush=True)
        trained = self.fit(model, data, size_record)
        print("[4/5] Evaluating on the held-out test split …", flush=True)
        scores = self.evaluate(trained)
        print(f"[5/5] Exporting to {output_dir} …", flush=True)
        full_report = self.export(trained, scores, output_dir)
        _print_done(self.timings, scores, output_dir)
        return full_report

    def budget_left(self) -> float | None:
        if self.schedule.budget_minutes is None:
            return None
        return self.schedule.budget_minutes * 60 - (time.perf_counter() - self.started)

    def load(self, side: int):
        t = time.perf_counter()
        data = load_image_data(dataclasses.replace(self.config, batch_size=self.batch_size),
                               image_size=side)
        if self.config.max_train_examples:
            data.train = data.train.unbatch().take(self.config.max_train_examples).batch(
                self.batch_size)
        self.timings["load_data_s"] = self.timings.get("load_data_s", 0.0) + (
            time.perf_counter() - t)
        return data

    def build(self, data):
        from keras_transfer.heads import build_image_classifier

        t = time.perf_counter()
        keras.utils.set_random_seed(self.config.seed)  # same init whatever loaded before
        with self.strategy.scope():  # model, optimizer and metrics belong to the strategy
            model = build_image_classifier(
                self.config.backbone, data.num_classes, weights=self.config.weights,
                input_shape=data.input_shape, hidden_units=tuple(self.config.hidden_units),
                dropout=self.config.dropout)
        self.timings["build_model_s"] = self.timings.get("build_model_s", 0.0) + (
            time.perf_counter() - t)
        return model

    def load_and_build(self):
        """Data and model at the image size the budget affords (`_choose_image_size`)."""
        side = self.config.image_size or default_image_size(self.config.backbone)
        data = self.load(side)
        print(f"[2/5] Building {self.config.backbone} (weights={self.config.weights}) …",
              flush=True)
        model = self.build(data)
        chosen, record = self._choose_image_size(model, data, side)
        if chosen != side:
            data = self.load(chosen)
            model = self.build(data)
        print(f"      image size {chosen}px: {record['reason']}", flush=True)
        return data, model, record

    def _choose_image_size(self, model, data, side: int) -> tuple[int, dict]:
        if self.config.image_size:
            return side, {"size": side, "reason": "image_size was given"}
        recorded = self.run_state.recall("image_size")
        if recorded:  # the backup being resumed was trained at this size
            return int(recorded["size"]), {**recorded, "reason": recorded["reason"] +
                                           " (recorded by the interrupted run)"}
        size, record = self._plan_image_size(model, data, side)
        self.run_state.remember("image_size", record)
        return size, record

    def _plan_image_size(self, model, data, side: int) -> tuple[int, dict]:
        from keras_transfer.backbones import blocks_of
        from keras_transfer.recipes.budget import measure_forward_rate, plan_fine_tuning

        budget = self.budget_left()
        native = native_image_size(self.config)
        if budget is None or self.schedule.recipe != "auto" or not native or native <= side:
            return side, {"size": side, "native": native,
                          "reason": "the backbone's pretraining size"}
        rate = measure_forward_rate(model, side)
        sizes = data.sizes
        seen = sizes.get("train", 0) + sizes.get("validation", 0)
        # What the feature pass and the head will cost at the native size, before fine-tuning.
        before = seen * (native / side) ** 2 / rate + 60.0
        plan = plan_fine_tuning(budget_s=budget - before, num_train=sizes.get("train", 0),
                                num_validation=sizes.get("validation", 0), forward_rate=rate,
                                image_size=side,
                                num_blocks=sum(b.effective for b in blocks_of(model)[1:]),
                                native_size=native)
        return plan.image_size, {"size": plan.image_size, "native": native,
                                 "forward_images_per_s": round(rate, 1), "reason": plan.reason}

    def fit(self, model, data, size_record: dict) -> _Trained:
        """Step 3, timed: `train`, then the model with plain variables to evaluate and export."""
        from keras_transfer import distribute

        t = time.perf_counter()
        history, decisions, symmetries, frozen_report = self.train(model, data)
        self.timings["train_s"] = time.perf_counter() - t
        decisions["image_size"] = size_record
        model = distribute.local_copy(model)  # plain variables to evaluate and export
        return _Trained(data, model, history, decisions, symmetries, frozen_report)

    def train(self, model, data):
        """(history, decisions, symmetries, frozen-features test report)."""
        from keras_transfer import distribute
        from keras_transfer.evaluation.classification import evaluate_classifier

        test = data.test if data.test is not None else data.validation
        frozen: dict = {}

        def frozen_features(trained):
            frozen.update(evaluate_classifier(distribute.local_copy(trained), test,
                                              data.class_names))
            print(f"      frozen-features test accuracy: {frozen['accuracy']:.4f}", flush=True)

        if self.schedule.recipe == "classic":
            history, decisions, symmetries = self._train_classic(model, data, frozen_features)
        else:
            history, decisions, symmetries = self._train_auto(model, data, frozen_features)
        return history, decisions, symmetries, frozen

    def _train_auto(self, model, data, after_head):
        from keras_transfer.recipes.auto import FINE_TUNE_PEAK, auto_fine_tune

        config, schedule = self.config, self.schedule
        result = auto_fine_tune(
            model, data, time_budget=self.budget_left(), augment=config.symmetries_setting(),
            imbalance=config.imbalance,
            label_smoothing=config.label_smoothing, weight_decay=config.weight_decay,
            learning_rate=self._scaled(config.learning_rate),
            fine_tune_learning_rate=self._scaled(config.fine_tune_learning_rate or FINE_TUNE_PEAK),
            head_epochs=schedule.head_epochs, epochs=schedule.epochs,
            unfreeze_blocks="auto" if schedule.unfreeze_blocks is None
            else schedule.unfreeze_blocks,
            seed=config.seed, run_dir=self.run_dir, after_head=after_head)
        return result.history, result.decisions, result.symmetries

    def _train_classic(self, model, data, after_head):
        from keras_transfer.recipes import feature_extraction, fine_tune

        config, schedule = self.config, self.schedule
        history = feature_extraction(model, data.train, data.validation,
                                     epochs=schedule.head_epochs,
                                     learning_rate=self._scaled(config.learning_rate),
                                     strategy=self.strategy)
        after_head(model)
        stage2 = fine_tune(
            model, data.train, data.validation, head_epochs=0, epochs=schedule.epochs,
            unfreeze_blocks=schedule.unfreeze_blocks,
            fine_tune_learning_rate=self._scaled(config.fine_tune_learning_rate or 1e-4),
            run_dir=self.run_dir, strategy=self.strategy)
        history.stages += stage2.stages
        symmetries = parse_symmetries(config.symmetries_setting())
        decisions = {"recipe": "classic", "augment": {
            "symmetries": list(symmetries), "source": "setting",
            "reason": "the classic schedule's flips"}}
        return history, decisions, symmetries

    def _scaled(self, rate: float) -> float:
        from keras_transfer import distribute

        return distribute.scale_learning_rate(rate, self.strategy,
                                              self.config.scale_learning_rate)

    def evaluate(self, trained: _Trained) -> _Scores:
        """Step 4, timed: the held-out split's scores (and with TTA, when trained with any)."""
        t = time.perf_counter()
        scores = _evaluate(trained.model, trained.data, trained.test, self.config,
                           trained.symmetries)
        self.timings["evaluate_s"] = time.perf_counter() - t
        return scores

    def export(self, trained: _Trained, scores: _Scores, output_dir: Path) -> dict:
        """Step 5: the model's files, then the report, config and plots written beside them."""
        t = time.perf_counter()
        written: dict = {}

        def write_outputs(folder: Path, exported: dict) -> None:
            # Inside the export's atomic step: the model, report, config and plots replace the
            # previous output together, or (killed, failed) not at all.
            self.timings["export_s"] = time.perf_counter() - t
            self.timings["total_s"] = time.perf_counter() - self.started
            written["report"] = self.report(trained, scores, exported)
            _write_outputs(folder, scores.evaluation, written["report"],
                           _repeatable_config(self.config, trained.decisions), trained.history)

        _export(trained.model, output_dir, trained.data, trained.test, self.config,
                scores.report, trained.symmetries, write_outputs)
        return written["report"]

    def report(self, trained: _Trained, scores: _Scores, exported: dict) -> dict:
        """What ``report.json`` holds: the data, scores, decisions, history, timings, machine."""
        config, data, strategy = self.config, trained.data, self.strategy
        return {
            "task": "image_classification",
            "dataset": config.dataset,
            "backbone": config.backbone,
            "class_names": data.class_names,
            "data": {"sizes": data.sizes, "skipped": len(data.report.skipped),
                     "image_size": list(data.image_size)},
            # keras_transfer.evaluation.classification.REPORT_SCHEMA, as `keras-transfer evaluate`
            "test": scores.report,
            "test_tta": scores.tta_report,
            "validation": scores.validation_report,
            "test_frozen_features": trained.frozen_report,
            "decisions": trained.decisions,
            "history": trained.history.as_dict(),
            "timings": {k: round(v, 2) for k, v in self.timings.items()},
            "settings": {**dataclasses.asdict(config), "schedule_resolved":
                         dataclasses.asdict(self.schedule)},
            "distribute": {"strategy": type(strategy).__name__,
                           "replicas": strategy.num_replicas_in_sync,
                           "global_batch_size": self.batch_size},
            "machine": _machine(),
            "export": {"files": sorted(exported.get("files", {})),
                       "verification": exported.get("verification", {})},
        }
