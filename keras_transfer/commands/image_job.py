"""The main job: fine-tune a pretrained backbone on an image dataset and ship the result.

`run_image_classification` is what `keras-transfer train` runs: load data (a built-in dataset
such as ``elpv`` or any folder of class sub-folders), build the classifier, run the staged
fine-tuning recipe, evaluate on the held-out test split, and export ``model.keras``, a
SavedModel, ``.tflite`` files, ``labels.txt``, ``report.json`` and PNG plots.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import platform
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from keras_transfer.data.symmetry import RandomSymmetry, parse_symmetries
from keras_transfer.runs import RunState, output_lock, run_dir_for

@dataclasses.dataclass(frozen=True)
class Schedule:
    """A named way to train: a time budget for the default recipe, or fixed stages."""

    budget_minutes: float | None = None  # the default recipe plans within it
    head_epochs: int | None = None  # fixed stages (None: decided by the recipe)
    epochs: int | None = None
    unfreeze_blocks: int | None = None
    recipe: str = "auto"  # "auto" (`keras_transfer.recipes.auto_fine_tune`) or "classic"


SCHEDULES = {
    # "default" keeps README command 1 near a quarter of an hour on a 2-core CPU (the budget
    # covers training; evaluation and export come on top); "long" gives the planner more to
    # spend (larger inputs, more epochs, the whole network).
    "default": Schedule(budget_minutes=12),
    "long": Schedule(budget_minutes=30),
    "fast": Schedule(head_epochs=2, epochs=1, unfreeze_blocks=1),  # smoke runs, notebooks
    # The default before the data-aware recipe, kept to compare against: head 25 epochs
    # (Adam), then 4 epochs of the last 3 blocks, horizontal + vertical flips.
    "classic": Schedule(head_epochs=25, epochs=4, unfreeze_blocks=3, recipe="classic"),
}
IMBALANCE_CHOICES = ("auto", "none", "class_weight", "focal")


@dataclasses.dataclass
class ImageJobConfig:
    """Settings of one training run (saved beside its outputs as ``config.json``).

    Example:
    >>> ImageJobConfig(dataset="elpv").resolved_output_dir().name
    'elpv_efficientnet_lite0'
    """

    dataset: str = "elpv"
    backbone: str = "efficientnet_lite0"
    weights: str | None = "imagenet"
    output_dir: str | None = None
    # None: the backbone's size, or larger for larger images when the budget allows.
    image_size: int | None = None
    batch_size: int = 32
    schedule: str = "default"
    # Minutes for training (head, probes, fine-tuning); None: the schedule's.
    time_budget: float | None = None
    head_epochs: int | None = None
    epochs: int | None = None
    unfreeze_blocks: int | None = None
    learning_rate: float = 1e-3
    # AdamW's peak rate while fine-tuning (the "classic" schedule: Adam's, no warmup).
    fine_tune_learning_rate: float | None = None
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    validation_split: float = 0.1
    test_split: float = 0.2
    # "auto": the dataset's declared symmetries, else those a probe shows the labels keep;
    # or "none", "flip", "flips", "dihedral", "hflip,rot90", ... (legacy True = "flips").
    augment: str | bool = "auto"
    # 0 = no photometric change; s > 0 adds random contrast (±0.3·s) and brightness (±0.2·s).
    augment_strength: float = 0.0
    imbalance: str = "auto"
    hidden_units: tuple[int, ...] = ()
    dropout: float = 0.2
    quantization: tuple[str, ...] = ("float32",)
    seed: int = 1337
    max_train_examples: int | None = None
    # tf.distribute (keras_transfer.distribute.STRATEGIES): batch_size is then per replica, and
    # "linear"/"sqrt" scale the learning rates by the replica count (or its square root).
    strategy: str = "default"
    scale_learning_rate: str | None = None

    def resolved_output_dir(self) -> Path:
        if self.output_dir:
            return Path(self.output_dir)
        name = Path(self.dataset).name if Path(self.dataset).is_dir() else self.dataset
        return Path("saved_models") / f"{name}_{self.backbone.replace('/', '_')}"

    def resolved_schedule(self) -> Schedule:
        """The schedule with this config's explicit stages and budget applied."""
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule={self.schedule!r}: expected one of {sorted(SCHEDULES)}.")
        base = SCHEDULES[self.schedule]
        pick = lambda value, default: default if value is None else value  # noqa: E731
        return dataclasses.replace(
            base, budget_minutes=pick(self.time_budget, base.budget_minutes),
            head_epochs=pick(self.head_epochs, base.head_epochs),
            epochs=pick(self.epochs, base.epochs),
            unfreeze_blocks=pick(self.unfreeze_blocks, base.unfreeze_blocks))

    def validate(self, *, fits_backbone: bool = True) -> None:
        """Checks every setting before any data is read: types from the field hints, ranges and
        choices from `setting_rules`; one `BadInputError` names each bad setting.
        `fits_backbone`: also that ``image_size`` is at least the backbone's smallest input
        (off where a saved model is evaluated: its input size is what it is).

        Example:
        >>> ImageJobConfig(head_epochs=-3, learning_rate=-1.0).validate()
        Traceback (most recent call last):
        ...
        keras_transfer.errors.BadInputError: 2 invalid settings: head_epochs=-3: expected an integer >= 0 or None; learning_rate=-1.0: expected a number > 0.
        """
        from keras_transfer import settings

        together = [settings.FITS_BACKBONE] if fits_backbone else []
        settings.check_settings(self, self.setting_rules(), together)

    @staticmethod
    def setting_rules() -> dict:
        """What each setting accepts beyond its type hint (`keras_transfer.settings.Rule`).

        Example:
        >>> ImageJobConfig.setting_rules()["imbalance"].choices
        ('auto', 'none', 'class_weight', 'focal')
        """
        from keras_transfer.distribute.strategies import LR_RULES, STRATEGIES
        from keras_transfer.export.tflite import QUANTIZATIONS
        from keras_transfer.settings import FRACTION, SEED, Rule, backbone_problem, \
            symmetries_problem

        return {
            "backbone": Rule(check=backbone_problem),
            "image_size": Rule(min=1),  # and the backbone's smallest input (FITS_BACKBONE)
            "batch_size": Rule(min=1),
            "schedule": Rule(choices=tuple(SCHEDULES)),
            "time_budget": Rule(above=0),
            "head_epochs": Rule(min=0),
            "epochs": Rule(min=0),
            "unfreeze_blocks": Rule(min=0),
            "learning_rate": Rule(above=0),
            "fine_tune_learning_rate": Rule(above=0),
            "weight_decay": Rule(min=0),
            "label_smoothing": FRACTION,
            "validation_split": FRACTION,  # of what the test split leaves: no limit on the sum
            "test_split": FRACTION,
            "augment": Rule(check=symmetries_problem),
            "augment_strength": Rule(min=0),
            "imbalance": Rule(choices=IMBALANCE_CHOICES),
            "hidden_units": Rule(min=1),
            "dropout": FRACTION,
            "quantization": Rule(choices=QUANTIZATIONS, nonempty=True),
            "seed": SEED,
            "max_train_examples": Rule(min=1),
            "strategy": Rule(choices=STRATEGIES),
            "scale_learning_rate": Rule(choices=LR_RULES),
        }

    def stages(self) -> tuple[int | None, int | None, int | None]:
        schedule = self.resolved_schedule()
        return schedule.head_epochs, schedule.epochs, schedule.unfreeze_blocks

    def symmetries_setting(self) -> str:
        """`augment` as a symmetry setting: legacy booleans mapped to their old meaning."""
        if self.augment is True:
            return "flips"
        if self.augment is False or self.augment is None:
            return "none"
        return "flips" if self.resolved_schedule().recipe == "classic" and \
            self.augment == "auto" else str(self.augment)


def default_image_size(backbone: str) -> int:
    """The input size a backbone was pretrained at (224 when the registry does not know it).

    Example:
    >>> default_image_size("efficientnet_lite0"), default_image_size("hub:some_preset")
    (224, 224)
    """
    from keras_transfer.backbones import get_spec

    try:
        return int(get_spec(backbone).default_size)
    except Exception:  # a hub preset or a path: resolved when built
        return 224


def load_image_data(config: ImageJobConfig, image_size: int | None = None):
    """The `ImageDataset` a config names: a built-in dataset or a folder of class folders.

    Symmetry augmentation is part of the pipeline only when `augment` names it; ``"auto"``
    leaves it to the recipe, which decides after looking at the data.
    """
    from keras_transfer import data as kd

    side = image_size or config.image_size or default_image_size(config.backbone)
    size = (side, side)
    setting = config.symmetries_setting()
    symmetries = () if setting == "auto" else parse_symmetries(setting)
    strength = config.augment_strength
    augment = None
    if symmetries or strength:
        # Flips and turns keep defects recognisable and cost next to nothing on a CPU, where
        # interpolating layers (zoom, rotation) would be slower than the backbone itself.
        layers = [RandomSymmetry(symmetries, seed=config.seed)] if symmetries else []
        if strength:
            layers.append(kd.augmentation(size, flip=None, rotation=0.0, zoom=0.0,
                                          contrast=0.3 * strength, brightness=0.2 * strength,
                                          seed=config.seed))
        augment = keras.Sequential(layers, name="augmentation")
    common = dict(image_size=size, batch_size=config.batch_size, augment=augment,
                  validation_split=config.validation_split)
    if Path(config.dataset).is_dir():
        return kd.from_folder(config.dataset, test_split=config.test_split, seed=config.seed,
                              **common)
    if config.dataset in kd.builtin_names():
        return kd.load_builtin(config.dataset, **common)
    raise ValueError(
        f"dataset={config.dataset!r} is neither a folder of class sub-folders nor a built-in "
        f"dataset ({', '.join(kd.builtin_names())})."
    )


def native_image_size(config: ImageJobConfig) -> int | None:
    """The smaller side of the dataset's images (median over a sample), None if unknown.

    Example:
    >>> native_image_size(ImageJobConfig(dataset="/nonexistent")) is None
    True
    """
    from keras_transfer import data as kd

    if Path(config.dataset).is_dir():
        from PIL import Image

        from keras_transfer.data import IMAGE_EXTENSIONS

        files = [p for p in sorted(Path(config.dataset).rglob("*"))
                 if p.suffix.lower() in IMAGE_EXTENSIONS]
        files = files[:: max(1, len(files) // 64)]  # a sample spread over every class
        sides = []
        for path in files:
            try:
                with Image.open(path) as image:  # reads the header only
                    sides.append(min(image.size))
            except Exception:  # a bad file is the loader's to report
                continue
        return int(np.median(sides)) if sides else None
    if config.dataset in kd.builtin_names():
        probe = kd.load_builtin(config.dataset, image_size=None, batch_size=1, verbose=False)
        shape = probe.train.element_spec[0].shape
        return int(min(shape[1], shape[2])) if shape[1] and shape[2] else None
    return None


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

    print(f"[1/5] Loading {config.dataset} …", flush=True)
    data, model, size_record = job.load_and_build()
    print(f"[3/5] Training ({_schedule_line(config, schedule)}) …", flush=True)
    t = time.perf_counter()
    history, decisions, symmetries, frozen_report = job.train(model, data)
    timings["train_s"] = time.perf_counter() - t
    decisions["image_size"] = size_record
    model = distribute.local_copy(model)  # plain variables to evaluate and export

    print("[4/5] Evaluating on the held-out test split …", flush=True)
    t = time.perf_counter()
    test = data.test if data.test is not None else data.validation
    evaluation, report, tta_report, validation_report = _evaluate(model, data, test, config,
                                                                  symmetries)
    timings["evaluate_s"] = time.perf_counter() - t

    print(f"[5/5] Exporting to {output_dir} …", flush=True)
    t = time.perf_counter()
    written: dict = {}

    def write_outputs(folder: Path, exported: dict) -> None:
        # Inside the export's atomic step: the model, report, config and plots replace the
        # previous output together, or (killed, failed) not at all.
        timings["export_s"] = time.perf_counter() - t
        timings["total_s"] = time.perf_counter() - started
        written["report"] = {
            "task": "image_classification",
            "dataset": config.dataset,
            "backbone": config.backbone,
            "class_names": data.class_names,
            "data": {"sizes": data.sizes, "skipped": len(data.report.skipped),
                     "image_size": list(data.image_size)},
            "test": report,  # keras_transfer.evaluation.classification.REPORT_SCHEMA, as `keras-transfer evaluate`
            "test_tta": tta_report,
            "validation": validation_report,
            "test_frozen_features": frozen_report,
            "decisions": decisions,
            "history": history.as_dict(),
            "timings": {k: round(v, 2) for k, v in timings.items()},
            "settings": {**dataclasses.asdict(config), "schedule_resolved":
                         dataclasses.asdict(schedule)},
            "distribute": {"strategy": type(strategy).__name__,
                           "replicas": strategy.num_replicas_in_sync,
                           "global_batch_size": batch_size},
            "machine": _machine(),
            "export": {"files": sorted(exported.get("files", {})),
                       "verification": exported.get("verification", {})},
        }
        _write_outputs(folder, evaluation, written["report"],
                       _repeatable_config(config, decisions), history)

    _export(model, output_dir, data, test, config, report, symmetries, write_outputs)
    full_report = written["report"]
    print(f"Done in {timings['total_s'] / 60:.1f} min. Test accuracy {report['accuracy']:.2%}"
          + (f" ({tta_report['accuracy']:.2%} with {tta_report['tta']['views']}-view TTA)"
             if tta_report else "")
          + f". Artifacts: {', '.join(sorted(p.name for p in output_dir.iterdir()))}",
          flush=True)
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
            model, data, time_budget=self.budget_left(), augment=config.symmetries_setting(), imbalance=config.imbalance,
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


def _evaluate(model, data, test, config: ImageJobConfig, symmetries):
    from keras_transfer.evaluation.classification import evaluate_classifier, evaluate_details

    name = f"{Path(config.dataset).name} test"
    evaluation = evaluate_details(model, test, class_names=data.class_names, name=name)
    report = evaluation.report
    tta_report = None
    if symmetries:
        tta_report = evaluate_details(model, test, class_names=data.class_names, name=name,
                                      tta=symmetries).report
    # The tuner's objective: comparable with a search's best score when re-run from its config.
    validation_report = (evaluate_classifier(model, data.validation, data.class_names)
                         if data.validation is not None else None)
    _print_scores("test", report)
    if tta_report:
        _print_scores(f"test, {tta_report['tta']['views']}-view TTA", tta_report)
    return evaluation, report, tta_report, validation_report


def _print_scores(label: str, report: dict) -> None:
    recall = ", ".join(f"{name} {scores['recall']:.0%}"
                       for name, scores in report["per_class"].items())
    print(f"      {label}: accuracy {report['accuracy']:.4f}, macro-F1 "
          f"{report['macro_avg']['f1']:.4f} on {report['num_examples']} images; recall: "
          f"{recall}", flush=True)


def _export(model, output_dir: Path, data, test, config: ImageJobConfig, report: dict,
            symmetries, extra_files) -> dict:
    from keras_transfer.export import export

    return export(
        model, output_dir, formats=("keras", "saved_model", "tflite"),
        quantization=config.quantization, labels=data.class_names, verify_data=test,
        representative_data=data.train if "int8" in config.quantization else None,
        metadata={"backbone": config.backbone, "dataset": config.dataset,
                  "test_accuracy": report["accuracy"], "symmetries": list(symmetries)},
        extra_files=extra_files,
    )


def _repeatable_config(config: ImageJobConfig, decisions: dict) -> dict:
    """The settings as run, with what the recipe decided written out: `--config` repeats the
    same training (symmetries, imbalance treatment, image size, blocks and epochs fixed)."""
    settings = dataclasses.asdict(config)
    augment = decisions.get("augment", {})
    if settings["augment"] == "auto" and "symmetries" in augment:
        settings["augment"] = ",".join(augment["symmetries"]) or "none"
    if settings["imbalance"] == "auto" and "head" in decisions:
        settings["imbalance"] = decisions["head"]["imbalance"]
    if settings["image_size"] is None and "image_size" in decisions:
        settings["image_size"] = decisions["image_size"]["size"]
    plan = decisions.get("plan", {})
    if settings["epochs"] is None and "epochs_run" in plan:
        # The epochs the budget allowed, as fixed stages: a re-run trains the same, no budget.
        settings["epochs"] = plan["epochs_run"]
        settings["unfreeze_blocks"] = plan["blocks_unfrozen"]
    return settings


def _write_outputs(output_dir: Path, evaluation, report: dict, config: dict, history) -> None:
    from keras_transfer.evaluation.plots import plot_learning_curves
    from keras_transfer.utils.files import atomic_write_bytes

    write_json = lambda name, obj: atomic_write_bytes(  # noqa: E731
        output_dir / name, json.dumps(obj, indent=2, default=str).encode())
    # Into the export's temporary folder: confusion matrix, reliability, wrong examples.
    evaluation.write(output_dir)
    write_json("report.json", report)
    write_json("config.json", config)
    plot_learning_curves(history.stages, output_dir / "learning_curves.png")


def _machine() -> dict:
    return {"platform": platform.platform(), "python": platform.python_version(),
            "keras": keras.__version__, "cpu_count": _cpu_count(), **_cpu_flags()}


def read_cpu() -> tuple[str, set[str]]:
    """The CPU model name and its feature flags (from /proc/cpuinfo; empty flags elsewhere):
    what every benchmark records beside its timings.

    Example:
    >>> model, flags = read_cpu()
    >>> isinstance(model, str) and isinstance(flags, set)
    True
    """
    model, flags = platform.processor() or platform.machine(), set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return model, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            model = value.strip()
        elif key.strip() == "flags":
            flags = set(value.split())
        if flags and key.strip() == "flags":
            break  # the first processor says it for all
    return model, flags


def _cpu_flags() -> dict:
    """The CPU model and the vector extensions that decide CPU training speed."""
    model, flags = read_cpu()
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")
    return {"cpu": model, "cpu_flags": [flag for flag in wanted if flag in flags]}


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
