"""Which lever moves the default ELPV 4-class job? One variant of the default recipe per run.

    python bench/defaults_variants.py                          # every variant, ~13 min each
    python bench/defaults_variants.py --variants default,size160

Each variant is the default job (`run_image_classification`, schedule "default", its 12-minute
budget, the job's own split) with a few settings changed: job settings (`ImageJobConfig`
fields) and, for levers the job has no setting for, keyword arguments forced into the recipe's
fine-tuning stage (`keras_transfer.recipes.auto.fine_tune`). Rows record test accuracy with and
without TTA, the frozen-features accuracy, the fine-tuning plan and epochs, the CPU and date, and
are merged into bench/results/defaults_variants.json (read, update, atomic write).

Variants (data, not code):
* ``default``           the job as shipped (224 px on Lite0: the planner's choice)
* ``size160``/``size288`` the input size fixed: more epochs at 160 px, fewer (or fewer blocks)
  at 288 px, in the same budget
* ``train_batchnorm``   BatchNorm statistics and scales train while fine-tuning (fastai's
  default) instead of staying frozen
* ``faster_rates``      fine-tuning peak 1e-3 instead of 5e-4, block decay 0.8 instead of 0.6
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from defaults import machine_info, read_results, stamp  # noqa: E402

from keras_transfer.commands import image_job as jobs  # noqa: E402
from keras_transfer.utils.files import atomic_write_bytes  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS = {  # name: (ImageJobConfig settings, keyword arguments forced into fine_tune)
    "default": ({}, {}),
    "size160": ({"image_size": 160}, {}),
    "size288": ({"image_size": 288}, {}),
    "train_batchnorm": ({}, {"train_batchnorm": True}),
    "faster_rates": ({"fine_tune_learning_rate": 1e-3}, {"discriminative": 0.8}),
}


@functools.lru_cache(maxsize=1)
def _original_fine_tune():
    import keras_transfer.recipes.auto as auto

    return auto.fine_tune


def _force_fine_tune(forced: dict) -> None:
    """Makes the recipe's fine-tuning stage run with `forced` keyword arguments (or as is)."""
    import keras_transfer.recipes.auto as auto

    original = _original_fine_tune()
    auto.fine_tune = (functools.partial(_forced, original, forced) if forced else original)


def _forced(original, forced: dict, *args, **kwargs):
    return original(*args, **{**kwargs, **forced})


def _accuracy(report: dict | None) -> float | None:
    return None if not report else report.get("accuracy")


def run_variant(name: str, dataset: str, runs: Path, machine: dict) -> dict:
    settings, forced = VARIANTS[name]
    _force_fine_tune(forced)
    config = jobs.ImageJobConfig(dataset=dataset, output_dir=str(runs / name), **settings)
    print(f"[{name}] settings {settings}, fine-tuning forced with {forced}", flush=True)
    started = time.perf_counter()
    report = jobs.run_image_classification(config)
    plan = (report.get("decisions") or {}).get("plan") or {}
    validation = [v for stage in (report.get("history") or {}).values()
                  for v in stage.get("val_accuracy", [])]
    row = {
        "settings": settings, "fine_tune_forced": forced,
        "test_accuracy": _accuracy(report.get("test")),
        "test_macro_f1": (report.get("test") or {}).get("macro_avg", {}).get("f1"),
        "test_tta_accuracy": _accuracy(report.get("test_tta")),
        "frozen_features_accuracy": _accuracy(report.get("test_frozen_features")),
        "kept": ((report.get("decisions") or {}).get("fine_tune") or {}).get("kept"),
        "plan": {k: plan.get(k) for k in ("image_size", "unfreeze_blocks", "epochs",
                                          "epochs_run", "reason")},
        "last_validation_accuracy": validation[-1] if validation else None,
        "minutes": round((time.perf_counter() - started) / 60, 2),
        **stamp(machine),
    }
    print(f"[{name}] test accuracy {row['test_accuracy']}, TTA {row['test_tta_accuracy']}, "
          f"frozen features {row['frozen_features_accuracy']}, kept {row['kept']}", flush=True)
    return row


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--dataset", default="elpv")
    parser.add_argument("--output", type=Path, default=RESULTS / "defaults_variants.json")
    parser.add_argument("--runs-dir", type=Path, default=RESULTS / "defaults_variants_runs")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        parser.error(f"--variants: unknown {unknown}; known: {sorted(VARIANTS)}")
    machine = machine_info()
    for name in names:
        row = run_variant(name, args.dataset, args.runs_dir, machine)
        results = read_results(args.output)
        results.update(benchmark="defaults_variants", dataset=args.dataset, machine=machine)
        results.setdefault("rows", {})[name] = row
        atomic_write_bytes(args.output, (json.dumps(results, indent=2) + "\n").encode())
    return read_results(args.output)


if __name__ == "__main__":
    main()
