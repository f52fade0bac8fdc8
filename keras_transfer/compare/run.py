"""`compare_backbones`: several backbones on one split, scored, exported, timed, recommended.

For each backbone, in order: load the split at its image size (the same seed and fractions for
all), build the classifier, train the training job's head on cached features (the backbone
runs once per image; `keras_transfer.recipes.train_head`) and score the test split — the
frozen-features accuracy; with ``fine_tune``, the job's default recipe instead
(`keras_transfer.recipes.auto_fine_tune`: the same head, then fine-tuning planned within the
per-backbone `time_budget`, the frozen-features model kept if it is better on validation).
Then the model is exported to TFLite (`keras_transfer.export.export`: float32 and int8, int8
calibrated on training images, each file verified on test images). A backbone that fails
(weights unavailable offline, out of memory, ...) is recorded with its reason and the others
go on. Once every backbone is done, all the ``.tflite`` files are timed again in alternating
rounds, so the load of a shared machine falls on each file alike, and the Pareto front and the
recommendation (`keras_transfer.compare.pareto`) are computed from those latencies.

Outputs in the output folder, each written atomically: ``comparison.json`` and
``comparison.png`` (accuracy against latency, the front connected, the recommendation circled).
This module runs the comparison; `keras_transfer.compare.latency` times the files and
`keras_transfer.compare.report` writes what was found.
"""

from __future__ import annotations

import dataclasses
import gc
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import keras
import numpy as np

from keras_transfer.compare.config import CompareConfig
from keras_transfer.compare.latency import time_files
from keras_transfer.compare.report import (  # noqa: F401 - comparison_table: its old home
    PLOT_FILE,
    RESULT_FILE,
    comparison_table,
    count_text,
    summarize,
    write_report,
)
from keras_transfer.errors import KerasTransferError


def compare_backbones(config: CompareConfig | None = None, **overrides: Any) -> dict:
    """Compares backbones on one dataset and returns what it writes to ``comparison.json``.

    Settings are `CompareConfig` fields (as a config, keyword arguments, or both); all are
    checked before any data is read. Prints one progress block per backbone, a table and the
    recommendation; writes ``comparison.json`` and ``comparison.png`` to the output folder.
    Raises `KerasTransferError` when every backbone failed (``comparison.json`` still says why).

    Example (a few minutes: two random-weight backbones on a folder of small images; with
    ImageNet weights, offline, ``backbones=["efficientnet_lite0", "efficientnet_lite1"]``):
    >>> result = compare_backbones(  # doctest: +SKIP
    ...     dataset="photos/", backbones=["vgg16", "resnet50"], weights=None, image_size=32)
    >>> result["recommendation"]["backbone"], result["recommendation"]["reason"]  # doctest: +SKIP

    Every setting is checked first (in seconds, before any data is read):
    >>> compare_backbones(dataset="elpv", backbones=["resnet-50", "vgg16"])
    Traceback (most recent call last):
    ...
    keras_transfer.errors.BadInputError: backbones=['resnet-50', 'vgg16']: Unknown backbone 'resnet-50'; did you mean 'resnet50'? ...
    """
    from keras_transfer.runs import output_lock

    config = dataclasses.replace(config or CompareConfig(), **overrides)
    config.check()  # before any data is read
    config = dataclasses.replace(config, backbones=config.resolved_backbones(),
                                 quantization=tuple(dict.fromkeys(config.quantization)))
    output_dir = config.resolved_output_dir()
    with output_lock(output_dir, what="comparing backbones"):
        return _Comparison(config, output_dir).run()


@dataclasses.dataclass
class _Comparison:
    """The steps of `compare_backbones` that share its settings, data and export folder."""

    config: CompareConfig
    output_dir: Path
    # (image size, ImageDataset, int8 calibration images) of the last backbone.
    _loaded: tuple[int, Any, np.ndarray] | None = None
    _model: keras.Model | None = None  # the backbone's classifier, between training and export

    def run(self) -> dict:
        started = time.perf_counter()
        names = self.config.backbones
        print(f"Comparing {len(names)} backbone(s) on {self.config.dataset}: "
              f"{', '.join(names)}", flush=True)
        with tempfile.TemporaryDirectory(prefix="keras_transfer_compare_") as exports:
            rows = [self.backbone(name, i + 1, len(names), Path(exports))
                    for i, name in enumerate(names)]
            latency = time_files(rows, self.config.latency_rounds)
        self._loaded = None
        summary = summarize(self.config, rows, latency, time.perf_counter() - started)
        write_report(self.config, self.output_dir, summary)
        if summary["recommendation"] is None:
            reasons = "; ".join(f"{row['backbone']}: {row['error']}" for row in rows)
            raise KerasTransferError(f"every backbone failed ({reasons}). Details in "
                                     f"{self.output_dir / RESULT_FILE}.")
        return summary

    # ---- one backbone -------------------------------------------------------------------

    def backbone(self, name: str, index: int, total: int, exports: Path) -> dict[str, Any]:
        from keras_transfer.commands.image_job import default_image_size

        config = self.config
        size = config.image_size or default_image_size(name)
        print(f"[{index}/{total}] {name}: {size} px, weights={config.weights} …", flush=True)
        row: dict[str, Any] = {"backbone": name, "status": "ok", "image_size": size,
                               "weights": config.weights,
                               "pretrained": config.weights is not None}
        timings: dict[str, float] = {}
        started = time.perf_counter()
        try:
            t = time.perf_counter()
            data = self.data(size)
            timings["load_s"] = time.perf_counter() - t
            row.update(self.train_and_score(name, data, timings))
            t = time.perf_counter()
            row["tflite"] = self.export(name, data, exports / name)
            timings["export_s"] = time.perf_counter() - t
        except Exception as error:  # noqa: BLE001 - one backbone's failure must not stop the rest
            row.update(status="failed", error=f"{type(error).__name__}: {error}")
            print(f"      failed: {row['error']}", flush=True)
        finally:
            self._model = None
            keras.backend.clear_session()
            _forget_features()
            gc.collect()
        timings["total_s"] = time.perf_counter() - started
        row["timings"] = {key: round(value, 2) for key, value in timings.items()}
        if row["status"] == "ok":
            print(f"      done in {timings['total_s']:.0f} s", flush=True)
        return row

    def data(self, size: int):
        """The split at `size` px; the same images and split for every backbone."""
        if self._loaded is not None and self._loaded[0] == size:
            return self._loaded[1]
        from keras_transfer.commands.image_job import ImageJobConfig, load_image_data

        config = self.config
        self._loaded = None
        keras.utils.set_random_seed(config.seed)  # the training subset is drawn the same way
        data = load_image_data(ImageJobConfig(
            dataset=config.dataset, image_size=size, batch_size=config.batch_size,
            validation_split=config.validation_split, test_split=config.test_split,
            seed=config.seed, augment="none"))
        if config.max_train_examples:
            total = data.sizes.get("train", 0)
            data.train, count = _first_examples(data.train, config.max_train_examples,
                                                config.batch_size, config.seed)
            data.report.split_counts["train"] = count
            print(f"      training on {count} of the {total} training images "
                  "(max_train_examples), the same ones for every backbone", flush=True)
        # Drawn once, right after the seeded load: the same images calibrate every backbone.
        calibration = _take(data.train, config.calibration_images)[0].astype("float32")
        self._loaded = (size, data, calibration)
        return data

    def train_and_score(self, name: str, data, timings: dict[str, float]) -> dict[str, Any]:
        """Builds the classifier, trains it (`train_head`, or with ``fine_tune`` the default
        recipe) and scores it on the test split (else validation), frozen features included."""
        from keras_transfer.backbones import find_backbone
        from keras_transfer.evaluation.classification import evaluate_classifier

        test, test_split = _scoring_split(data)
        model = self.build(name, data, timings)
        frozen: dict[str, Any] = {}

        def score_frozen(trained: keras.Model) -> dict[str, Any]:
            t = time.perf_counter()
            frozen.update(evaluate_classifier(trained, test, data.class_names))
            timings["evaluate_s"] = time.perf_counter() - t
            print(f"      frozen features: {_scores_text(frozen)}", flush=True)
            return frozen

        train = self.fine_tune if self.config.fine_tune else self.train_head
        final, training = train(model, data, test, score_frozen, timings)
        print(f"      trained in {timings['train_s']:.0f} s", flush=True)
        return {
            "accuracy": _round(final["accuracy"]), "macro_f1": _round(final["macro_avg"]["f1"]),
            "frozen_accuracy": _round(frozen["accuracy"]),
            "frozen_macro_f1": _round(frozen["macro_avg"]["f1"]),
            "fine_tuned": self.config.fine_tune, "scored_on": test_split,
            "num_test": int(final["num_examples"]),
            "params": int(model.count_params()),
            "backbone_params": int(find_backbone(model)[0].count_params()),
            "data_sizes": data.sizes, "training": training,
        }

    def build(self, name: str, data, timings: dict[str, float]) -> keras.Model:
        """The classifier with the training job's head, seeded alike for every backbone."""
        from keras_transfer.commands.image_job import ImageJobConfig
        from keras_transfer.heads import build_image_classifier

        t = time.perf_counter()
        keras.utils.set_random_seed(self.config.seed)  # the same head initialisation for all
        self._model = build_image_classifier(name, data.num_classes, weights=self.config.weights,
                                             input_shape=data.input_shape,
                                             dropout=ImageJobConfig().dropout)
        timings["build_s"] = time.perf_counter() - t
        return self._model

    def train_head(self, model: keras.Model, data, test, score_frozen: Callable,
                   timings: dict[str, float]) -> tuple[dict, dict]:
        """The head on cached features; its scores are the final ones."""
        from keras_transfer.recipes import train_head

        epochs = self.config.head_epochs
        t = time.perf_counter()
        stage = train_head(model, data.train, data.validation, verbose=0,
                           **({"max_epochs": epochs} if epochs else {}), **self._head_settings())
        timings["train_s"] = time.perf_counter() - t
        return score_frozen(model), {"recipe": "train_head", "head": stage.as_dict()}

    def fine_tune(self, model: keras.Model, data, test, score_frozen: Callable,
                  timings: dict[str, float]) -> tuple[dict, dict]:
        """`auto_fine_tune` within the per-backbone budget, scored after the head and at the
        end (the scoring is not counted as training time)."""
        from keras_transfer.evaluation.classification import evaluate_classifier
        from keras_transfer.recipes import auto_fine_tune

        config = self.config
        t = time.perf_counter()
        result = auto_fine_tune(model, data, time_budget=config.time_budget * 60,
                                head_epochs=config.head_epochs, seed=config.seed,
                                after_head=score_frozen, verbose=0, **self._head_settings())
        timings["train_s"] = time.perf_counter() - t - timings["evaluate_s"]
        t = time.perf_counter()
        final = evaluate_classifier(model, test, data.class_names)
        timings["evaluate_s"] += time.perf_counter() - t
        plan, kept = result.decisions["plan"], result.decisions["fine_tune"]
        print(f"      fine-tuned ({config.time_budget:g}-minute budget, "
              f"{count_text(plan['epochs_run'], 'epoch')} of {_blocks_text(plan)}): "
              f"{_scores_text(final)}; "
              f"{kept['reason']}", flush=True)
        return final, {"recipe": "auto_fine_tune", "decisions": result.decisions}

    def _head_settings(self) -> dict[str, Any]:
        """The training job's head settings, with this comparison's imbalance treatment."""
        from keras_transfer.commands.image_job import ImageJobConfig

        job = ImageJobConfig()
        return dict(imbalance=self.config.imbalance, label_smoothing=job.label_smoothing,
                    learning_rate=job.learning_rate, weight_decay=job.weight_decay)

    def export(self, name: str, data, folder: Path) -> dict[str, dict[str, Any]]:
        from keras_transfer.export import export

        config = self.config
        test = data.test if data.test is not None else data.validation
        info = export(self._model, folder, formats="tflite", quantization=config.quantization,
                      labels=data.class_names, representative_data=self._loaded[2],
                      verify_data=test, num_verify=config.verify_images,
                      num_calibration=config.calibration_images, verbose=False,
                      metadata={"backbone": name, "dataset": config.dataset})
        files: dict[str, dict[str, Any]] = {}
        for file, checked in info["verification"]["tflite"].items():
            files[checked["quantization"]] = {
                "file": file, "path": str(folder / file), "size_bytes": checked["size_bytes"],
                "verify_latency_ms": round(checked["latency_ms_median"], 3),
                "top1_agreement": checked.get("top1_agreement"),
                "verify_accuracy": checked.get("accuracy"),
                "verify_images": info["verification"]["num_samples"],
            }
        print("      TFLite: " + ", ".join(
            f"{kind} {_size_text(entry['size_bytes'])}" + (
                f" (agrees with Keras on {entry['top1_agreement']:.0%} of "
                f"{entry['verify_images']} test images)"
                if entry["top1_agreement"] is not None else "")
            for kind, entry in files.items()), flush=True)
        return files


# ---- helpers ------------------------------------------------------------------------------


def _scoring_split(data) -> tuple[Any, str]:
    """The split the scores come from: test, else validation."""
    if data.test is not None:
        return data.test, "test"
    if data.validation is None:
        raise KerasTransferError("no test or validation split to score on: give "
                                 "test_split > 0 or a folder with a test split.")
    return data.validation, "validation"


def _first_examples(train, count: int, batch_size: int, seed: int):
    """The first `count` training examples, fixed once (a re-iterated shuffled pipeline would
    draw other ones each pass), reshuffled every epoch; and how many there are."""
    import tensorflow as tf

    x, y = _take(train, count)
    subset = (tf.data.Dataset.from_tensor_slices((x, y))
              .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
              .batch(batch_size)
              .map(lambda images, labels: (tf.cast(images, tf.float32), labels))
              .prefetch(tf.data.AUTOTUNE))
    return subset, int(len(x))


def _take(dataset, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `count` examples of a batched dataset, images as uint8 (the loaders' pixels
    are whole grey levels: 4x less memory than float32)."""
    images, labels, seen = [], [], 0
    for x, y in dataset:
        images.append(np.clip(np.rint(np.asarray(x)), 0, 255).astype("uint8"))
        labels.append(np.asarray(y))
        seen += len(images[-1])
        if seen >= count:
            break
    return np.concatenate(images)[:count], np.concatenate(labels)[:count]


def _forget_features() -> None:
    from keras_transfer.recipes.features import clear_memory_cache

    clear_memory_cache()  # a finished backbone's cached features are of no further use


def _scores_text(report: dict) -> str:
    return (f"test accuracy {report['accuracy']:.2%}, macro-F1 {report['macro_avg']['f1']:.3f} "
            f"({report['num_examples']} images)")


def _blocks_text(plan: dict) -> str:
    blocks = plan.get("unfreeze_blocks")
    return "every block" if blocks is None else f"the top {count_text(blocks, 'block')}"


def _size_text(size_bytes: int) -> str:
    return (f"{size_bytes / 2**20:.1f} MiB" if size_bytes >= 2**20 else
            f"{size_bytes / 2**10:.0f} KiB")


def _round(value: float) -> float:
    return round(float(value), 4)
