"""Do the recipes keep the seeds' promises? ELPV + ImageNet EfficientNet-Lite0, every recipe.

On the fixed ELPV split (1,968 train / 656 test, stratified, seed 1337; 10 % of train held out
for validation) this measures, in one run:

* test accuracy, 4-class and binary (defective = probability >= 0.5), of: frozen features +
  logistic regression (scikit-learn, the baseline a user writes by hand); `feature_extraction`
  (head on cached features); `fine_tune` (that head, then the last blocks unfrozen);
  `fine_tune` + discriminative learning rates (all blocks unfrozen, rates decaying to the stem);
  the same network trained from scratch. Binary accuracy comes from a 2-class model where
  training one is cheap (logistic regression, cached-feature head) and from the 4-class
  model's summed probabilities otherwise (marked ``derived``);
* seconds per epoch of the cached head vs a plain frozen-backbone ``model.fit`` epoch;
* Lite0 forward fed by the input pipeline vs on preloaded tensors (bench/data_throughput.py);
* data efficiency: 10 / 25 / 50 / 100 % of the training split, pretrained (cached-feature
  head) vs scratch (same epochs), as a plot;
* convergence: validation accuracy per epoch (and per second), pretrained vs scratch.

Finished stages are kept in bench/results/recipes_elpv.partial.json (with the trained head in
recipes_elpv.partial.head.weights.h5): run the same command again after an interruption and it
resumes with the first unfinished stage.

Usage:
    python bench/recipes_elpv.py            # the CPU configuration (about an hour on 2 cores)
    python bench/recipes_elpv.py --quick    # a smoke run on a few images (minutes)
Writes bench/results/recipes_elpv.json, recipes_elpv_data_efficiency.png and
recipes_elpv_convergence.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_transfer.data import augmentation, elpv_arrays, from_arrays  # noqa: E402
from keras_transfer.heads import build_image_classifier  # noqa: E402
from keras_transfer.recipes import feature_extraction, fine_tune  # noqa: E402
from keras_transfer.recipes.features import extract_features, split_at  # noqa: E402
from keras_transfer.utils.files import atomic_write_bytes  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
BACKBONE = "efficientnet_lite0"
DEFECTIVE_FROM = 2  # 4-class ids 2 and 3 are defect probabilities 2/3 and 1


def stratified_subset(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Indices of `fraction` of each class (at least one per class), sorted."""
    rng = np.random.default_rng(seed)
    keep = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = max(1, round(fraction * len(members)))
        keep.append(rng.choice(members, count, replace=False))
    return np.sort(np.concatenate(keep))


def prepare(args) -> dict:
    """ELPV arrays at the bench's size: train / validation (10 % of train) / test."""
    size = (args.image_size, args.image_size)
    x_train, y_train, x_test, y_test, class_names = elpv_arrays("4class", image_size=size)
    val = stratified_subset(y_train, 0.1, args.seed)
    train = np.setdiff1d(np.arange(len(y_train)), val)
    if args.quick:
        train = stratified_subset(y_train[train], 0.04, args.seed)
        val, test = stratified_subset(y_train, 0.02, args.seed + 1), stratified_subset(y_test, 0.1, 0)
        x_test, y_test = x_test[test], y_test[test]
    return dict(x_train=x_train[train], y_train=y_train[train], x_val=x_train[val],
                y_val=y_train[val], x_test=x_test, y_test=y_test, class_names=class_names)


def eval_pipeline(x: np.ndarray, y: np.ndarray, batch_size: int) -> tf.data.Dataset:
    return (tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)
            .map(lambda a, b: (tf.cast(a, "float32"), b)).prefetch(tf.data.AUTOTUNE))


def train_pipeline(x: np.ndarray, y: np.ndarray, args) -> tf.data.Dataset:
    """Our loader on in-memory arrays: cache, shuffle, flips (the main job's augmentation)."""
    size = (args.image_size, args.image_size)
    flips = augmentation(size, flip="horizontal_and_vertical", rotation=0, zoom=0, contrast=0,
                         seed=args.seed)
    return from_arrays(x, y, batch_size=args.batch_size, augment=flips, seed=args.seed,
                       verbose=False).train


def accuracies(model: keras.Model, data: dict, batch_size: int) -> dict:
    probabilities = model.predict(eval_pipeline(data["x_test"], data["y_test"], batch_size),
                                  verbose=0)
    return scores(probabilities, data["y_test"], derived_binary=True)


def scores(probabilities: np.ndarray, labels: np.ndarray, derived_binary: bool) -> dict:
    result = {"accuracy_4class": float(np.mean(probabilities.argmax(-1) == labels))}
    if derived_binary:
        defective = probabilities[:, DEFECTIVE_FROM:].sum(-1) >= 0.5
        result["accuracy_binary"] = float(np.mean(defective == (labels >= DEFECTIVE_FROM)))
        result["binary_from"] = "derived from the 4-class probabilities"
    return result


def pretrained_model(args, num_classes: int = 4) -> keras.Model:
    return build_image_classifier(BACKBONE, num_classes, weights="imagenet",
                                  input_shape=(args.image_size, args.image_size, 3))


def scratch_model(args) -> keras.Model:
    # From scratch every layer trains, BatchNorm included (there are no statistics to keep).
    return build_image_classifier(BACKBONE, 4, weights=None, trainable_blocks="all",
                                  train_batchnorm=True,
                                  input_shape=(args.image_size, args.image_size, 3))


def train_scratch(args, x, y, data) -> tuple[keras.Model, dict]:
    model = scratch_model(args)
    model.compile(keras.optimizers.Adam(args.scratch_learning_rate),
                  "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(train_pipeline(x, y, args),
                        validation_data=eval_pipeline(data["x_val"], data["y_val"], args.batch_size),
                        epochs=args.scratch_epochs, callbacks=[_Timer()], verbose=2)
    return model, {k: [float(v) for v in vals] for k, vals in history.history.items()}


class _Timer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs["epoch_seconds"] = time.perf_counter() - self._start


def head_on_features(args, features: tuple, labels: np.ndarray, val: tuple, num_classes: int,
                     test_features: np.ndarray) -> np.ndarray:
    """The same head `feature_extraction` trains, fitted on given cached features."""
    head = split_at(pretrained_model(args, num_classes))[1]
    head.compile(keras.optimizers.Adam(args.learning_rate), "sparse_categorical_crossentropy")
    head.fit(features, labels, batch_size=64, epochs=args.head_epochs, validation_data=val,
             verbose=0, callbacks=[keras.callbacks.EarlyStopping(
                 patience=15, restore_best_weights=True)])
    return head.predict(test_features, verbose=0)


def logistic_regression(f_train, y_train, f_test) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    return classifier.fit(f_train, y_train).predict_proba(f_test)


def plain_frozen_epoch_seconds(args, data) -> float:
    """One ordinary `model.fit` epoch with the backbone frozen (it still runs every image)."""
    model = pretrained_model(args)
    from keras_transfer import freeze

    freeze(model)
    model.compile(keras.optimizers.Adam(args.learning_rate), "sparse_categorical_crossentropy")
    timer = _Timer()
    model.fit(train_pipeline(data["x_train"], data["y_train"], args), epochs=1,
              callbacks=[timer], verbose=2)
    return float(model.history.history["epoch_seconds"][0])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--head-epochs", type=int, default=60)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--fine-tune-epochs", type=int, default=5)
    parser.add_argument("--fine-tune-learning-rate", type=float, default=1e-4)
    parser.add_argument("--unfreeze-blocks", type=int, default=3)
    parser.add_argument("--discriminative", type=float, default=0.7,
                        help="per-block learning-rate decay, all blocks unfrozen")
    parser.add_argument("--discriminative-learning-rate", type=float, default=3e-4)
    parser.add_argument("--scratch-epochs", type=int, default=6)
    parser.add_argument("--scratch-learning-rate", type=float, default=1e-3)
    parser.add_argument("--fractions", default="0.1,0.25,0.5,1.0")
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--quick", action="store_true", help="a smoke run on a few images")
    parser.add_argument("--output-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.image_size, args.head_epochs, args.fine_tune_epochs, args.scratch_epochs = 96, 3, 1, 1
    fractions = [float(f) for f in args.fractions.split(",")]
    keras.utils.set_random_seed(args.seed)
    started = time.perf_counter()
    data = prepare(args)
    print(f"ELPV: {len(data['y_train'])} train / {len(data['y_val'])} validation / "
          f"{len(data['y_test'])} test at {args.image_size} px", flush=True)
    train = train_pipeline(data["x_train"], data["y_train"], args)
    val = eval_pipeline(data["x_val"], data["y_val"], args.batch_size)
    methods, timings = {}, {}
    stem = "recipes_elpv_quick" if args.quick else "recipes_elpv"
    done = Stages(args.output_dir / f"{stem}.partial", vars(args))

    # Frozen features once (disk-cached, so a resumed run reads them back); every
    # cached-feature method below reads them.
    base = pretrained_model(args)
    features = split_at(base)[0]
    t = time.perf_counter()
    cached = {split: extract_features(features, eval_pipeline(data[f"x_{split}"],
                                                              data[f"y_{split}"], args.batch_size),
                                      cache="disk", description=f"{split} features")
              for split in ("train", "val", "test")}
    timings["extract_features_s"] = time.perf_counter() - t
    (f_tr, y_tr), (f_val, y_val), (f_te, y_te) = cached["train"], cached["val"], cached["test"]
    binary = lambda y: (y >= DEFECTIVE_FROM).astype("int32")  # noqa: E731

    print("[1/6] logistic regression on frozen features", flush=True)

    def run_logistic_regression() -> dict:
        t = time.perf_counter()
        return {
            **scores(logistic_regression(f_tr, y_tr, f_te), y_te, derived_binary=False),
            "accuracy_binary": float(np.mean(
                logistic_regression(f_tr, binary(y_tr), f_te).argmax(-1) == binary(y_te))),
            "binary_from": "2-class model", "seconds": time.perf_counter() - t}

    methods["logistic_regression"] = done("logistic_regression", run_logistic_regression)

    print("[2/6] feature_extraction (head on cached features)", flush=True)
    head_file = Path(f"{done.path}.head.weights.h5")

    def run_feature_extraction() -> dict:
        t = time.perf_counter()
        # The un-augmented pipeline: the recipe's cache then holds the features computed above.
        history = feature_extraction(
            base, eval_pipeline(data["x_train"], data["y_train"], args.batch_size), val,
            epochs=args.head_epochs, learning_rate=args.learning_rate, cache="disk", verbose=0)
        seconds = time.perf_counter() - t
        base.save_weights(head_file)
        binary_probs = head_on_features(args, f_tr, binary(y_tr), (f_val, binary(y_val)), 2, f_te)
        return {
            **scores(split_at(base)[1].predict(f_te, verbose=0), y_te, derived_binary=False),
            "accuracy_binary": float(np.mean(binary_probs.argmax(-1) == binary(y_te))),
            "binary_from": "2-class head on the same cached features", "seconds": seconds,
            "history": history.as_dict()}

    methods["feature_extraction"] = done("feature_extraction", run_feature_extraction)
    head_history = methods["feature_extraction"]["history"]["feature_extraction"]
    epoch_seconds, seconds = head_history["epoch_seconds"], methods["feature_extraction"]["seconds"]

    print("[3/6] cached head epoch vs plain frozen-backbone epoch", flush=True)

    def run_speed() -> dict:
        cached_epoch = float(np.median(epoch_seconds[1:] or epoch_seconds))
        plain_epoch = plain_frozen_epoch_seconds(args, data)
        return {"cached_head_epoch_s": cached_epoch, "plain_frozen_fit_epoch_s": plain_epoch,
                "speedup": plain_epoch / cached_epoch, "target": 30.0}

    speed = done("cached_head_speed", run_speed)

    print("[4/6] fine_tune and fine_tune + discriminative learning rates", flush=True)
    variants = {
        "fine_tune": dict(unfreeze_blocks=args.unfreeze_blocks,
                          fine_tune_learning_rate=args.fine_tune_learning_rate),
        "fine_tune_discriminative": dict(unfreeze_blocks=None, discriminative=args.discriminative,
                                         fine_tune_learning_rate=args.discriminative_learning_rate),
    }
    convergence = {}
    for name, settings in variants.items():

        def run_variant(settings=settings) -> dict:
            model = pretrained_model(args)
            model.load_weights(head_file)  # start from the trained head: stage 1 is shared
            t = time.perf_counter()
            staged = fine_tune(model, train, val, head_epochs=0, epochs=args.fine_tune_epochs,
                               run_dir=None, verbose=2, **settings)
            return {**accuracies(model, data, args.batch_size), "settings": settings,
                    "seconds": time.perf_counter() - t + seconds, "history": staged.as_dict()}

        methods[name] = done(name, run_variant)
        staged = methods[name]["history"]["fine_tune"]
        convergence[name] = {"val_accuracy": head_history["val_accuracy"] + staged["val_accuracy"],
                             "epoch_seconds": epoch_seconds + staged["epoch_seconds"]}
        print(f"      {name}: {methods[name]['accuracy_4class']:.4f}", flush=True)

    print("[5/6] from scratch, and data efficiency", flush=True)
    efficiency = {"fractions": sorted(fractions), "pretrained": [], "scratch": [],
                  "train_examples": []}
    for fraction in sorted(fractions, reverse=True):
        subset = stratified_subset(data["y_train"], fraction, args.seed)

        def run_fraction(subset=subset) -> dict:
            probs = head_on_features(args, f_tr[subset], y_tr[subset], (f_val, y_val), 4, f_te)
            t = time.perf_counter()
            model, scratch_history = train_scratch(args, data["x_train"][subset],
                                                   data["y_train"][subset], data)
            return {"train_examples": int(len(subset)),
                    "pretrained": float(np.mean(probs.argmax(-1) == y_te)),
                    "scratch": {**accuracies(model, data, args.batch_size),
                                "seconds": time.perf_counter() - t, "history": scratch_history}}

        row = done(f"fraction_{fraction:g}", run_fraction)
        if fraction == 1.0:
            methods["scratch"] = row["scratch"]
            convergence["scratch"] = {k: row["scratch"]["history"][k]
                                      for k in ("val_accuracy", "epoch_seconds")}
        efficiency["train_examples"].insert(0, row["train_examples"])
        efficiency["pretrained"].insert(0, row["pretrained"])
        efficiency["scratch"].insert(0, row["scratch"]["accuracy_4class"])
        print(f"      {fraction:.0%}: pretrained {row['pretrained']:.4f}, "
              f"scratch {row['scratch']['accuracy_4class']:.4f}", flush=True)

    print("[6/6] input pipeline vs raw forward", flush=True)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from data_throughput import forward_rows

    def run_pipeline() -> dict:
        rows = forward_rows(None if not args.quick else 64, 64 if args.quick else 512,
                            (args.image_size, args.image_size), args.batch_size)
        return {"rows": rows,
                "fed_over_preloaded": rows[1]["images_per_s"] / rows[0]["images_per_s"],
                "fed_flips_over_preloaded": rows[2]["images_per_s"] / rows[0]["images_per_s"],
                "target": 0.9}

    pipeline = done("pipeline", run_pipeline)

    result = {
        "benchmark": "recipes_elpv", "backbone": BACKBONE, "weights": "ImageNet (offline asset)",
        "quick": args.quick, "settings": vars(args) | {"output_dir": str(args.output_dir)},
        "sizes": {k: int(len(data[f"y_{k}"])) for k in ("train", "val", "test")},
        "methods": methods, "cached_head_speed": speed, "pipeline": pipeline,
        "data_efficiency": efficiency, "convergence": convergence,
        "targets": {"best_4class": 0.885,
                    "pretrained_25_vs_scratch_100": _at(efficiency, 0.25, "pretrained")
                    >= _at(efficiency, 1.0, "scratch") if 0.25 in fractions else None},
        "timings": {**timings, "total_s": time.perf_counter() - started},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "tensorflow": tf.__version__, "keras": keras.__version__,
                    "gpus": [d.name for d in tf.config.list_physical_devices("GPU")]},
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    print_table(result)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.output_dir / f"{stem}.json",
                       (json.dumps(result, indent=2) + "\n").encode())
    plot(result, args.output_dir, stem)
    print(f"wrote {args.output_dir}/{stem}.json and PNGs")
    return result


class Stages:
    """Results of finished stages, kept in ``<path>.json`` so a killed run resumes where it
    stopped (the file is tied to the run's settings; other settings start afresh)."""

    def __init__(self, path: Path, settings: dict):
        self.path = path
        self.file = Path(f"{path}.json")
        self.settings = {k: str(v) for k, v in settings.items()}
        stored = json.loads(self.file.read_text()) if self.file.exists() else {}
        self.results = stored.get("stages", {}) if stored.get("settings") == self.settings else {}

    def __call__(self, name: str, run) -> dict:
        if name in self.results:
            print(f"      (resumed: {name} from {self.file.name})", flush=True)
            return self.results[name]
        self.results[name] = run()
        self.file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.file, json.dumps(
            {"settings": self.settings, "stages": self.results}, indent=1).encode())
        return self.results[name]


def _at(efficiency: dict, fraction: float, key: str) -> float:
    return efficiency[key][efficiency["fractions"].index(fraction)]


def print_table(result: dict) -> None:
    print(f"\n{'method':<28} {'4-class':>8} {'binary':>8} {'minutes':>8}")
    for name, row in result["methods"].items():
        mark = "*" if row.get("binary_from", "").startswith("derived") else " "
        print(f"{name:<28} {row['accuracy_4class']:>8.2%} {row['accuracy_binary']:>7.2%}{mark}"
              f" {row['seconds'] / 60:>8.1f}")
    print("* binary accuracy derived from the 4-class probabilities")
    speed, pipe = result["cached_head_speed"], result["pipeline"]
    print(f"cached head epoch {speed['cached_head_epoch_s']:.2f} s vs plain frozen fit epoch "
          f"{speed['plain_frozen_fit_epoch_s']:.1f} s: {speed['speedup']:.0f}x (target >= 30x)")
    print(f"Lite0 fed by the pipeline / preloaded: {pipe['fed_over_preloaded']:.2f}x "
          f"(+ flips {pipe['fed_flips_over_preloaded']:.2f}x; target >= 0.9)")
    eff = result["data_efficiency"]
    for fraction, n, p, s in zip(eff["fractions"], eff["train_examples"], eff["pretrained"],
                                 eff["scratch"]):
        print(f"{fraction:>5.0%} of train ({n:>4} images): pretrained {p:.2%}, scratch {s:.2%}")


def plot(result: dict, directory: Path, stem: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    eff = result["data_efficiency"]
    figure, axis = plt.subplots(figsize=(6, 4))
    percent = [100 * f for f in eff["fractions"]]
    axis.plot(percent, eff["pretrained"], "o-", label="pretrained (ImageNet Lite0, cached head)")
    axis.plot(percent, eff["scratch"], "s-", label="same network from scratch")
    axis.set(xlabel="% of the ELPV training split", ylabel="4-class test accuracy",
             title="Data efficiency", xscale="log", xticks=percent,
             xticklabels=[f"{p:g}" for p in percent])
    axis.grid(alpha=0.3), axis.legend()
    figure.tight_layout(), figure.savefig(directory / f"{stem}_data_efficiency.png", dpi=120)
    plt.close(figure)

    figure, (by_epoch, by_time) = plt.subplots(1, 2, figsize=(11, 4))
    for name, curve in result["convergence"].items():
        accuracy = curve["val_accuracy"]
        by_epoch.plot(range(1, len(accuracy) + 1), accuracy, ".-", label=name)
        by_time.plot(np.cumsum(curve["epoch_seconds"]) / 60, accuracy, ".-", label=name)
    head = len(result["methods"]["feature_extraction"]["history"]["feature_extraction"]["loss"])
    by_epoch.axvline(head + 0.5, color="gray", ls=":", label="head → fine-tuning")
    by_epoch.set(xlabel="epoch", ylabel="validation accuracy", title="Convergence per epoch")
    by_time.set(xlabel="training minutes (cached head epochs take seconds)",
                ylabel="validation accuracy", title="Convergence per minute")
    for axis in (by_epoch, by_time):
        axis.grid(alpha=0.3), axis.legend(fontsize=8)
    figure.tight_layout(), figure.savefig(directory / f"{stem}_convergence.png", dpi=120)
    plt.close(figure)


if __name__ == "__main__":
    main()
