"""Does the model the default training path hands back beat simple baselines?

    python bench/defaults.py [--datasets elpv,elpv_binary,digits]
                             [--rows baselines,classic,default,long]
                             [--output bench/results/defaults.json]
    python bench/defaults.py --datasets digits --rows baselines     # about a minute
    python bench/defaults.py --smoke --datasets digits --rows default  # a few minutes

Datasets (all offline): ``elpv`` (4-class) and ``elpv_binary``, the built-ins, and ``digits``:
scikit-learn's 1,797 8x8 digits written as a folder of class folders (bench/digits_folder.py),
where orientation carries the class (a mirrored 6 or 9 changes or loses its meaning).

Every row of a dataset uses the training job's own split: the bench loads the data through
`keras_transfer.commands.image_job.load_image_data(ImageJobConfig(dataset=...))` with augmentation off (the
split depends on the dataset, seed and split fractions only, never on the image size), and
each training row's reported split sizes are checked against it (``same_split``).

Rows (each timed, stamped with its date and the CPU it ran on):

* ``baselines`` -> three rows, every hyperparameter chosen on the validation split, fitted on
  the training split only (as the job trains), scored once on the test split:
  ``pixels_logreg`` / ``pixels_svm_rbf``: logistic regression / an RBF SVM on standardised
  grayscale pixels (32x32 for ELPV, the native 8x8 for digits); ``lite0_frozen_logreg``:
  logistic regression on pooled ImageNet EfficientNet-Lite0 features at 224x224.
* ``classic`` / ``default`` / ``long``: `run_image_classification` with that ``schedule``
  (outputs under bench/results/defaults_runs/, not committed): test accuracy, macro-F1,
  per-class recall, TTA accuracy when reported, the frozen-features accuracy, minutes and the
  job's ``decisions``. A schedule the installed job does not know is skipped with a message.

Rows from separate invocations are merged into the JSON (read, update, atomic write); the PNG
(bars of test accuracy per dataset and method, the issue's targets as markers) is redrawn from
the merged file each time. ``--smoke`` runs training rows with ``schedule="fast"`` on 64
training images (baselines on 64 too) and writes to a temporary folder unless ``--output``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from digits_folder import build_digits_folder  # noqa: E402

from keras_transfer.commands import image_job as jobs  # noqa: E402
from keras_transfer.evaluation.metrics import classification_report  # noqa: E402
from keras_transfer.utils.files import atomic_write_bytes  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
RUNS = RESULTS / "defaults_runs"  # training rows' job outputs (git-ignored)
DATASETS = ("elpv", "elpv_binary", "digits")
TRAINING_ROWS = ("classic", "default", "long")
ROW_GROUPS = ("baselines",) + TRAINING_ROWS
BASELINE_ROWS = ("pixels_logreg", "pixels_svm_rbf", "lite0_frozen_logreg")
PIXEL_SIZE = {"elpv": 32, "elpv_binary": 32, "digits": 8}
FEATURE_SIZE = 224
LOGREG_C = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
SVM_C = (0.1, 1.0, 10.0, 100.0)
SMOKE_TRAIN_EXAMPLES = 64
# The targets on test accuracy (the model the job hands back, i.e. report["test"]);
# "best_pixel_baseline" = the better of the two pixel rows on that dataset.
TARGETS = (
    ("elpv", "default", 0.80),
    ("elpv", "long", 0.84),
    ("elpv_binary", "default", 0.885),
    ("digits", "default", "best_pixel_baseline"),
)
PLOT_METHODS = (  # (label, row, which accuracy)
    ("pixels logreg", "pixels_logreg", "test"),
    ("pixels RBF SVM", "pixels_svm_rbf", "test"),
    ("Lite0 frozen + logreg", "lite0_frozen_logreg", "test"),
    ("classic", "classic", "test"),
    ("default", "default", "test"),
    ("default + TTA", "default", "test_tta"),
    ("long", "long", "test"),
)


# --------------------------------------------------------------------------- machine


def machine_info() -> dict:
    """CPU model, the SIMD / matrix flags that decide CPU speed, cores and versions."""
    import sklearn
    import tensorflow as tf

    model, flags = jobs.read_cpu()
    return {
        "cpu": model,
        "flags": {name: name in flags for name in
                  ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16",
                   "amx_int8")},
        "amx": any(name.startswith("amx") for name in flags),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "cores_total": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "sklearn": sklearn.__version__,
        "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
    }


def stamp(machine: dict) -> dict:
    """What every row carries: when, and on which CPU."""
    return {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpu": machine["cpu"],
            "cores": machine["cores_usable"]}


# --------------------------------------------------------------------------- data


def dataset_source(name: str, data_dir: Path | None) -> str:
    """What ``ImageJobConfig(dataset=...)`` gets: a built-in name or the digits folder."""
    if name == "digits":
        return str(build_digits_folder(data_dir / "digits" if data_dir else None))
    return name


def _fields() -> dict:
    return {f.name: f for f in dataclasses.fields(jobs.ImageJobConfig)}


def loader_configs(source: str, image_size: int) -> list:
    """Configs naming the job's split with augmentation (and resampling) off, in the order to
    try: ``augment="none"`` for the string-valued option, ``False`` for the boolean one."""
    fields = _fields()
    extra = {}
    if "imbalance" in fields:  # no oversampling: each training example exactly once
        extra["imbalance"] = "none"
    default = fields["augment"].default
    choices = [False, "none"] if isinstance(default, bool) else ["none", False]
    configs = []
    for augment in choices:
        try:
            configs.append(jobs.ImageJobConfig(dataset=source, image_size=image_size,
                                               augment=augment, **extra))
        except (ValueError, TypeError):
            continue
    return configs


def load_split_data(source: str, image_size: int):
    """`jobs.load_image_data` on the first loader config the installed job accepts."""
    problems = []
    for config in loader_configs(source, image_size):
        try:
            return jobs.load_image_data(config)
        except (ValueError, TypeError) as error:
            problems.append(f"augment={config.augment!r}: {error}")
    raise RuntimeError(f"cannot load {source} through the job's loader: {problems}")


def bounded(dataset, count: int, batch_size: int = 32):
    """Exactly the split's `count` examples (a repeating or resampling pipeline can't run on)."""
    return dataset.unbatch().take(count).batch(batch_size)


def pixel_arrays(data, smoke: bool) -> dict:
    """{split: (grayscale pixels (N, H*W) float32 in [0, 1], labels)} from the job's splits."""
    arrays = {}
    for split, count in data.sizes.items():
        dataset = getattr(data, split)
        if split == "train" and smoke:
            count = min(count, SMOKE_TRAIN_EXAMPLES)
        images, labels = [], []
        for x, y in bounded(dataset, count):
            x = np.asarray(x)
            images.append(x[..., 0].reshape(len(x), -1) / 255.0)  # gray: R = G = B
            labels.append(np.asarray(y).reshape(-1))
        arrays[split] = (np.concatenate(images).astype("float32"),
                         np.concatenate(labels).astype("int64"))
        if len(arrays[split][1]) != count:
            warnings.warn(f"{split}: read {len(arrays[split][1])} examples, expected {count}")
    return arrays


def feature_arrays(source: str, num_classes: int, smoke: bool) -> dict:
    """{split: (pooled ImageNet Lite0 features, labels)} on the job's splits at 224x224."""
    from keras_transfer import build_image_classifier
    from keras_transfer.recipes import extract_features
    from keras_transfer.recipes.features import split_at

    data = load_split_data(source, FEATURE_SIZE)
    keras.utils.set_random_seed(1337)
    model = build_image_classifier("efficientnet_lite0", num_classes, weights="imagenet",
                                   input_shape=(FEATURE_SIZE, FEATURE_SIZE, 3))
    features = split_at(model)[0]
    arrays = {}
    for split, count in data.sizes.items():
        if split == "train" and smoke:
            count = min(count, SMOKE_TRAIN_EXAMPLES)
        arrays[split] = extract_features(features, bounded(getattr(data, split), count),
                                         cache=None, description=f"{split} features")
    return arrays


# --------------------------------------------------------------------------- baselines


def summary(report: dict | None) -> dict | None:
    """accuracy, macro-F1 and per-class recall of a `classification_report`-style dict."""
    if not report:
        return None
    per_class = report.get("per_class") or {}
    return {"accuracy": report.get("accuracy"),
            "macro_f1": (report.get("macro_avg") or {}).get("f1"),
            "per_class_recall": {name: row.get("recall") for name, row in per_class.items()},
            "num_examples": report.get("num_examples")}


def _one_hot(predicted: np.ndarray, num_classes: int) -> np.ndarray:
    return np.eye(num_classes)[predicted]


def fit_on_validation(make, grid: tuple, arrays: dict, class_names: list[str]) -> dict:
    """Fits ``make(C)`` on train for every C, keeps the best validation accuracy (ties: the
    smaller C, the stronger regularisation), and reports it on test."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    (x_tr, y_tr), (x_val, y_val), (x_te, y_te) = (
        arrays["train"], arrays.get("validation"), arrays.get("test"))
    started = time.perf_counter()
    scores, best = {}, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for c in grid:
            model = make_pipeline(StandardScaler(), make(c)).fit(x_tr, y_tr)
            scores[str(c)] = float(np.mean(model.predict(x_val) == y_val))
            if best is None or scores[str(c)] > scores[str(best[0])]:
                best = (c, model)
    c, model = best
    k = len(class_names)
    report = classification_report(y_te, _one_hot(model.predict(x_te), k), class_names)
    validation = classification_report(y_val, _one_hot(model.predict(x_val), k), class_names)
    return {"test": summary(report), "validation_accuracy": validation["accuracy"],
            "C": c, "validation_accuracy_by_C": scores,
            "fit_s": round(time.perf_counter() - started, 2)}


def baseline_rows(name: str, source: str, data_px, smoke: bool, machine: dict) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC

    class_names = list(data_px.class_names)
    rows = {}
    t = time.perf_counter()
    pixels = pixel_arrays(data_px, smoke)
    load_s = time.perf_counter() - t
    size = PIXEL_SIZE[name]
    logreg = lambda c: LogisticRegression(C=c, max_iter=3000)  # noqa: E731
    for row, make, grid, what in (
        ("pixels_logreg", logreg, LOGREG_C, "logistic regression"),
        ("pixels_svm_rbf", lambda c: SVC(C=c, kernel="rbf", gamma="scale"), SVM_C, "RBF SVM"),
    ):
        t = time.perf_counter()
        result = fit_on_validation(make, grid, pixels, class_names)
        rows[row] = {"kind": "baseline", "method": f"{what} on standardised {size}x{size} "
                     "grayscale pixels, C chosen on validation", **result,
                     "wall_s": round(time.perf_counter() - t + load_s, 2), **stamp(machine)}
        _print_row(name, row, rows[row])
    t = time.perf_counter()
    features = feature_arrays(source, len(class_names), smoke)
    extract_s = time.perf_counter() - t
    result = fit_on_validation(logreg, LOGREG_C, features, class_names)
    rows["lite0_frozen_logreg"] = {
        "kind": "baseline", "method": "logistic regression on pooled ImageNet EfficientNet-Lite0 "
        f"features ({FEATURE_SIZE}x{FEATURE_SIZE}), C chosen on validation", **result,
        "extract_features_s": round(extract_s, 2),
        "wall_s": round(time.perf_counter() - t, 2), **stamp(machine)}
    _print_row(name, "lite0_frozen_logreg", rows["lite0_frozen_logreg"])
    if smoke:
        for row in rows.values():
            row["smoke"] = f"{SMOKE_TRAIN_EXAMPLES} training examples"
    return rows


# --------------------------------------------------------------------------- training rows


def schedule_known(schedule: str) -> bool:
    known = getattr(jobs, "SCHEDULES", None)
    return not isinstance(known, dict) or schedule in known


def training_row(name: str, source: str, row: str, sizes: dict, runs: Path, smoke: bool,
                 machine: dict) -> dict | None:
    schedule = "fast" if smoke else row
    if not schedule_known(schedule):
        print(f"[{name}/{row}] skipped: the installed job has no schedule {schedule!r} "
              f"(known: {sorted(jobs.SCHEDULES)})", flush=True)
        return None
    settings = dict(dataset=source, schedule=schedule, output_dir=str(runs / f"{name}_{row}"))
    if smoke:
        settings["max_train_examples"] = SMOKE_TRAIN_EXAMPLES
    print(f"[{name}/{row}] run_image_classification({settings})", flush=True)
    started = time.perf_counter()
    report = jobs.run_image_classification(jobs.ImageJobConfig(**settings))
    wall = time.perf_counter() - started
    timings = report.get("timings") or {}
    job_sizes = (report.get("data") or {}).get("sizes")
    keep = ("schedule", "schedule_resolved", "time_budget", "augment", "imbalance",
            "image_size", "head_epochs", "epochs", "unfreeze_blocks", "max_train_examples")
    result = {
        "kind": "training", "schedule": schedule,
        "test": summary(report.get("test")),
        "test_tta": summary(report.get("test_tta")),
        "tta": (report.get("test_tta") or {}).get("tta"),
        "frozen_features": summary(report.get("test_frozen_features")),
        "minutes": round(timings.get("total_s", wall) / 60, 2),
        "wall_s": round(wall, 2),
        "decisions": report.get("decisions"),
        "settings": {k: v for k, v in (report.get("settings") or {}).items() if k in keep},
        "timings": timings,
        "sizes": job_sizes,
        "image_size": (report.get("data") or {}).get("image_size"),
        "same_split": job_sizes == sizes if job_sizes is not None else None,
        "output_dir": settings["output_dir"],
        **stamp(machine),
    }
    if smoke:
        result["smoke"] = f"schedule='fast', max_train_examples={SMOKE_TRAIN_EXAMPLES}"
    if result["same_split"] is False:
        warnings.warn(f"{name}/{row}: the job's split sizes {job_sizes} differ from the "
                      f"bench's {sizes}")
    _print_row(name, row, result)
    return result


# --------------------------------------------------------------------------- results


def read_results(path: Path) -> dict:
    if path.exists():
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            backup = path.with_suffix(f".corrupt-{int(time.time())}.json")
            path.rename(backup)
            print(f"warning: {path} was not valid JSON; moved to {backup}", flush=True)
    return {}


def merge_rows(path: Path, name: str, sizes: dict, rows: dict, machine: dict,
               settings: dict) -> dict:
    """Re-reads the file (another invocation may have written meanwhile), updates, writes."""
    results = read_results(path)
    results["benchmark"] = "defaults"
    results["machine"] = machine
    results.setdefault("settings", {}).update(settings)
    entry = results.setdefault("datasets", {}).setdefault(name, {"sizes": None, "rows": {}})
    entry["sizes"] = sizes
    entry.setdefault("rows", {}).update(rows)
    results["targets"] = evaluate_targets(results)
    results["when"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, (json.dumps(results, indent=2, default=str) + "\n").encode())
    return results


def _accuracy(row: dict | None, which: str = "test") -> float | None:
    return ((row or {}).get(which) or {}).get("accuracy")


def evaluate_targets(results: dict) -> dict:
    targets = {}
    for name, row, threshold in TARGETS:
        rows = ((results.get("datasets") or {}).get(name) or {}).get("rows") or {}
        if threshold == "best_pixel_baseline":
            pixel = [a for a in (_accuracy(rows.get(r)) for r in ("pixels_logreg",
                                                                  "pixels_svm_rbf"))
                     if a is not None]
            threshold = max(pixel) if pixel else None
            basis = "best pixel baseline"
        else:
            basis = "issue"
        value = _accuracy(rows.get(row))
        smoke = bool((rows.get(row) or {}).get("smoke"))
        if value is None:
            status = "not run"
        elif threshold is None:
            status = "no threshold (run the baselines)"
        else:
            status = ("met" if value >= threshold else "MISSED") + (" (smoke run)" if smoke else "")
        targets[f"{name}/{row}"] = {
            "dataset": name, "row": row, "threshold": threshold, "basis": basis,
            "test_accuracy": value, "test_tta_accuracy": _accuracy(rows.get(row), "test_tta"),
            "status": status}
    return targets


def _fmt(value, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def _print_row(name: str, row: str, result: dict) -> None:
    test = result.get("test") or {}
    print(f"[{name}/{row}] test accuracy {_fmt(test.get('accuracy'))}, macro-F1 "
          f"{_fmt(test.get('macro_f1'))} ({result.get('wall_s', 0):.1f} s)", flush=True)


def print_table(results: dict) -> None:
    print(f"\n{'dataset':<12} {'row':<20} {'test acc':>8} {'macro-F1':>8} {'TTA acc':>8} "
          f"{'frozen':>8} {'minutes':>8}  per-class recall")
    for name, entry in (results.get("datasets") or {}).items():
        for row, result in entry.get("rows", {}).items():
            test = result.get("test") or {}
            recall = " ".join(f"{v:.2f}" if v is not None else "-"
                              for v in (test.get("per_class_recall") or {}).values())
            minutes = result.get("minutes", (result.get("wall_s") or 0) / 60)
            print(f"{name:<12} {row:<20} {_fmt(test.get('accuracy')):>8} "
                  f"{_fmt(test.get('macro_f1')):>8} {_fmt(_accuracy(result, 'test_tta')):>8} "
                  f"{_fmt(_accuracy(result, 'frozen_features')):>8} {minutes:>8.1f}  {recall}"
                  + ("  [smoke]" if result.get("smoke") else ""))
    print("\ntargets (test accuracy of the model the job returns):")
    for key, target in (results.get("targets") or {}).items():
        tta = target.get("test_tta_accuracy")
        print(f"  {key:<22} >= {_fmt(target['threshold'])} ({target['basis']}): "
              f"{_fmt(target['test_accuracy'])} -> {target['status']}"
              + (f"  (with TTA {tta:.4f})" if tta is not None else ""))


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = [d for d in DATASETS if d in (results.get("datasets") or {})]
    datasets += [d for d in results.get("datasets", {}) if d not in datasets]
    if not datasets:
        return
    width = 0.8 / len(PLOT_METHODS)
    figure, axis = plt.subplots(figsize=(max(7, 3.2 * len(datasets)), 4.5))
    positions, colors = {}, plt.get_cmap("tab10")
    for m, (label, row, which) in enumerate(PLOT_METHODS):
        xs, heights = [], []
        for d, name in enumerate(datasets):
            x = d - 0.4 + width * (m + 0.5)
            positions[(name, row, which)] = x
            value = _accuracy(results["datasets"][name]["rows"].get(row), which)
            if value is not None:
                xs.append(x), heights.append(value)
        if not xs:  # not measured anywhere yet: no bar, no legend entry
            continue
        bars = axis.bar(xs, heights, width, label=label, color=colors(m % 10),
                        hatch="//" if which == "test_tta" else None, edgecolor="white")
        axis.bar_label(bars, fmt="%.3f", fontsize=6, rotation=90, padding=2)
    marked = False
    for target in (results.get("targets") or {}).values():
        x = positions.get((target["dataset"], target["row"], "test"))
        if x is None or target["threshold"] is None:
            continue
        axis.plot([x - width / 2, x + width / 2], [target["threshold"]] * 2, color="red", lw=2.5,
                  label=None if marked else "target")
        axis.plot(x, target["threshold"], marker="v", color="red", ms=5)
        marked = True
    low = min([v for v in (_accuracy(r, w) for n in datasets
                           for r in results["datasets"][n]["rows"].values()
                           for w in ("test", "test_tta")) if v is not None] or [0.5])
    axis.set(xticks=range(len(datasets)), xticklabels=datasets, ylabel="test accuracy",
             ylim=(max(0.0, low - 0.1), 1.02),
             title="Default training path vs baselines (same split per dataset)")
    axis.grid(axis="y", alpha=0.3)
    axis.legend(fontsize=7, ncol=2, loc="lower right")
    figure.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    figure.savefig(tmp, dpi=120)
    plt.close(figure)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- main


def _parse_list(text: str, allowed: tuple, what: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    unknown = [item for item in items if item not in allowed]
    if unknown:
        raise SystemExit(f"--{what}: unknown {unknown}; expected some of {list(allowed)}")
    return items


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--rows", default=",".join(ROW_GROUPS),
                        help="baselines (three rows), classic, default, long")
    parser.add_argument("--output", type=Path, default=None,
                        help="results JSON (default bench/results/defaults.json; with --smoke "
                             "a temporary folder); the PNG is written beside it")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="where the digits folder is built (default: the bench cache)")
    parser.add_argument("--runs-dir", type=Path, default=None,
                        help="training rows' job outputs (default bench/results/defaults_runs)")
    parser.add_argument("--smoke", action="store_true",
                        help=f"training rows with schedule='fast' on {SMOKE_TRAIN_EXAMPLES} "
                             "training images, baselines on as many; results to a temp folder")
    args = parser.parse_args(argv)
    datasets = _parse_list(args.datasets, DATASETS, "datasets")
    groups = _parse_list(args.rows, ROW_GROUPS, "rows")
    scratch = Path(tempfile.gettempdir()) / "keras_transfer_bench_defaults_smoke"
    output = args.output or (scratch / "defaults_smoke.json" if args.smoke
                             else RESULTS / "defaults.json")
    runs = args.runs_dir or (scratch / "runs" if args.smoke else RUNS)
    machine = machine_info()
    print(f"{machine['cpu']} ({machine['cores_usable']} cores; "
          f"{', '.join(k for k, v in machine['flags'].items() if v) or 'no AVX2'}); "
          f"datasets {datasets}, rows {groups} -> {output}", flush=True)
    settings = {"pixel_size": PIXEL_SIZE, "feature_size": FEATURE_SIZE, "logreg_C": LOGREG_C,
                "svm_C": SVM_C}
    failures, results = [], read_results(output)
    for name in datasets:
        source = dataset_source(name, args.data_dir)
        keras.utils.set_random_seed(1337)
        data_px = load_split_data(source, PIXEL_SIZE[name])
        sizes = dict(data_px.sizes)
        print(f"== {name}: {sizes} ({len(data_px.class_names)} classes: "
              f"{', '.join(data_px.class_names)})", flush=True)
        for group in groups:
            try:
                if group == "baselines":
                    rows = baseline_rows(name, source, data_px, args.smoke, machine)
                else:
                    row = training_row(name, source, group, sizes, runs, args.smoke, machine)
                    rows = {group: row} if row else {}
            except Exception:  # noqa: BLE001 - keep the other rows; fail at the end
                traceback.print_exc()
                failures.append(f"{name}/{group}")
                continue
            if rows:
                results = merge_rows(output, name, sizes, rows, machine, settings)
    if results:
        print_table(results)
        plot(results, output.with_suffix(".png"))
        print(f"\nwrote {output} and {output.with_suffix('.png')}")
    if failures:
        raise SystemExit(f"failed rows: {', '.join(failures)}")
    return results


if __name__ == "__main__":
    main()
