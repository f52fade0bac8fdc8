"""The main job: fine-tune a pretrained backbone on an image dataset and ship the result.

`run_image_classification` is what `keras-transfer train` runs: load data (a built-in dataset
such as ``elpv`` or any folder of class sub-folders), build the classifier, run the staged
fine-tuning recipe, evaluate on the held-out test split, and export ``model.keras``, a
SavedModel, ``.tflite`` files, ``labels.txt``, ``report.json`` and PNG plots.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from pathlib import Path
from typing import Any

import keras

SCHEDULES = {
    # name: (head_epochs, fine-tune epochs, unfreeze_blocks). "default" finishes in about a
    # quarter of an hour for ELPV + EfficientNet-Lite0 on a 2-core CPU; "long" trains deeper.
    "default": (25, 4, 3),
    "long": (40, 12, 5),
    "fast": (2, 1, 1),  # smoke runs and notebooks' fast mode
}


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
    image_size: int = 224
    batch_size: int = 32
    schedule: str = "default"
    head_epochs: int | None = None
    epochs: int | None = None
    unfreeze_blocks: int | None = None
    learning_rate: float = 1e-3
    fine_tune_learning_rate: float = 1e-4
    validation_split: float = 0.1
    test_split: float = 0.2
    augment: bool = True
    # 0 = flips only; s > 0 adds random contrast (±0.3·s) and brightness (±0.2·s).
    augment_strength: float = 0.0
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

    def stages(self) -> tuple[int, int, int | None]:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule={self.schedule!r}: expected one of {sorted(SCHEDULES)}.")
        head, epochs, blocks = SCHEDULES[self.schedule]
        pick = lambda value, default: default if value is None else value  # noqa: E731
        return pick(self.head_epochs, head), pick(self.epochs, epochs), pick(self.unfreeze_blocks, blocks)


def load_image_data(config: ImageJobConfig):
    """The `ImageDataset` a config names: a built-in dataset or a folder of class folders."""
    from keras_transfer import data as kd

    size = (config.image_size, config.image_size)
    augment = None
    if config.augment:
        # Flips only: they keep defects recognisable and cost next to nothing on a CPU, where
        # interpolating layers (zoom, rotation) would be slower than the backbone itself.
        strength = config.augment_strength
        augment = kd.augmentation(size, flip="horizontal_and_vertical", rotation=0.0, zoom=0.0,
                                  contrast=0.3 * strength, brightness=0.2 * strength,
                                  seed=config.seed)
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


def run_image_classification(config: ImageJobConfig | None = None, **overrides: Any) -> dict:
    """Runs the whole job and returns its report (also written to ``report.json``).

    Example (about 15 minutes on 2 CPU cores; offline with the `assets` extra):
    >>> report = run_image_classification(dataset="elpv")  # doctest: +SKIP
    >>> report["test"]["accuracy"]  # doctest: +SKIP
    """
    from keras_transfer import distribute
    from keras_transfer.evaluate import evaluate_classifier, evaluate_details
    from keras_transfer.export import export
    from keras_transfer.heads import build_image_classifier
    from keras_transfer.plots import plot_learning_curves
    from keras_transfer.recipes import feature_extraction, fine_tune
    from keras_transfer.weights.cache import atomic_write_bytes

    config = dataclasses.replace(config or ImageJobConfig(), **overrides)
    strategy = distribute.resolve_strategy(config.strategy)  # first: multi-worker needs startup
    batch_size = distribute.global_batch_size(config.batch_size, strategy)
    scaled = lambda rate: distribute.scale_learning_rate(  # noqa: E731
        rate, strategy, config.scale_learning_rate)
    head_epochs, epochs, unfreeze_blocks = config.stages()
    run_dir = Path("runs") / config.resolved_output_dir().name
    output_dir = distribute.worker_dir(config.resolved_output_dir(), strategy)  # temp unless chief
    keras.utils.set_random_seed(config.seed)
    timings: dict[str, float] = {}
    started = time.perf_counter()

    print(f"[1/5] Loading {config.dataset} …", flush=True)
    data = load_image_data(dataclasses.replace(config, batch_size=batch_size))
    train = data.train
    if config.max_train_examples:
        train = train.unbatch().take(config.max_train_examples).batch(batch_size)
    timings["load_data_s"] = time.perf_counter() - started

    print(f"[2/5] Building {config.backbone} (weights={config.weights}) …", flush=True)
    t = time.perf_counter()
    keras.utils.set_random_seed(config.seed)  # as the tuner does: same init whatever loaded before
    with strategy.scope():  # model, optimizer and metrics belong to the strategy
        model = build_image_classifier(
            config.backbone, data.num_classes, weights=config.weights,
            input_shape=data.input_shape, hidden_units=tuple(config.hidden_units),
            dropout=config.dropout)
    timings["build_model_s"] = time.perf_counter() - t

    print(f"[3/5] Training: the head {head_epochs} epochs on cached features, then "
          f"{epochs} epochs with the last {unfreeze_blocks} blocks unfrozen …", flush=True)
    t = time.perf_counter()
    test = data.test if data.test is not None else data.validation
    history = feature_extraction(model, train, data.validation, epochs=head_epochs,
                                 learning_rate=scaled(config.learning_rate), strategy=strategy)
    timings["train_head_s"] = time.perf_counter() - t
    # The frozen-features baseline: what the pretrained features give without fine-tuning.
    frozen_report = evaluate_classifier(distribute.local_copy(model), test, data.class_names)
    print(f"      frozen-features test accuracy: {frozen_report['accuracy']:.4f}", flush=True)
    t = time.perf_counter()
    stage2 = fine_tune(
        model, train, data.validation, head_epochs=0, epochs=epochs,
        unfreeze_blocks=unfreeze_blocks,
        fine_tune_learning_rate=scaled(config.fine_tune_learning_rate), run_dir=run_dir,
        strategy=strategy,
    )
    history.stages += stage2.stages
    timings["fine_tune_s"] = time.perf_counter() - t
    model = distribute.local_copy(model)  # plain variables to evaluate and export

    print("[4/5] Evaluating on the held-out test split …", flush=True)
    t = time.perf_counter()
    evaluation = evaluate_details(model, test, class_names=data.class_names,
                                  name=f"{config.dataset} test")
    report = evaluation.report
    # The tuner's objective: comparable with a search's best score when re-run from its config.
    validation_report = (evaluate_classifier(model, data.validation, data.class_names)
                         if data.validation is not None else None)
    timings["evaluate_s"] = time.perf_counter() - t
    print(f"      test accuracy: {report['accuracy']:.4f} on {report['num_examples']} images",
          flush=True)

    print(f"[5/5] Exporting to {output_dir} …", flush=True)
    t = time.perf_counter()
    exported = export(
        model, output_dir, formats=("keras", "saved_model", "tflite"),
        quantization=config.quantization, labels=data.class_names, verify_data=test,
        representative_data=data.train if "int8" in config.quantization else None,
        metadata={"backbone": config.backbone, "dataset": config.dataset,
                  "test_accuracy": report["accuracy"]},
    )
    timings["export_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - started

    full_report = {
        "task": "image_classification",
        "dataset": config.dataset,
        "backbone": config.backbone,
        "class_names": data.class_names,
        "data": {"sizes": data.sizes, "skipped": len(data.report.skipped)},
        "test": report,  # keras_transfer.evaluate.REPORT_SCHEMA, as `keras-transfer evaluate`
        "validation": validation_report,
        "test_frozen_features": frozen_report,
        "history": history.as_dict(),
        "timings": {k: round(v, 2) for k, v in timings.items()},
        "settings": {**dataclasses.asdict(config), "head_epochs": head_epochs, "epochs": epochs,
                     "unfreeze_blocks": unfreeze_blocks},
        "distribute": {"strategy": type(strategy).__name__,
                       "replicas": strategy.num_replicas_in_sync, "global_batch_size": batch_size},
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "keras": keras.__version__, "cpu_count": _cpu_count()},
        "export": {"files": sorted(exported.get("files", {})),
                   "verification": exported.get("verification", {})},
    }
    write_json = lambda name, obj: atomic_write_bytes(  # noqa: E731
        output_dir / name, json.dumps(obj, indent=2, default=str).encode())
    # After the export, which replaces the folder: confusion matrix, reliability, wrong examples.
    evaluation.write(output_dir)
    write_json("report.json", full_report)
    write_json("config.json", dataclasses.asdict(config))
    plot_learning_curves(history.stages, output_dir / "learning_curves.png")
    print(f"Done in {timings['total_s'] / 60:.1f} min. Test accuracy {report['accuracy']:.2%}. "
          f"Artifacts: {', '.join(sorted(p.name for p in output_dir.iterdir()))}", flush=True)
    distribute.release_worker_dir(output_dir)  # a non-chief's copy of the outputs
    return full_report


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
