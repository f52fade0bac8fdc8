"""Hyperparameter search on ELPV with EfficientNet-Lite0 in a fixed time budget, vs the default.

    python bench/tune_elpv.py              # ≈ 15 min on 2 CPU cores (search budget 8 min)
    python bench/tune_elpv.py --smoke      # 1 trial on a 96-image subset at 96 px (~2 min)

ELPV 4-class (paper protocol: 1,968 training / 656 test cells, stratified, seed 1337; 10 % of
the training cells validate the trials), ImageNet EfficientNet-Lite0 at 224 px (offline asset).

1. The untuned default: the main job's head (learning rate 1e-3, dropout 0.2, no hidden layer,
   flips, 25 epochs) on the frozen backbone: the job's "frozen-features baseline". Its trial
   computes the backbone features once; every later trial with the same frozen backbone and
   augmentation reuses them, so feature-extraction trials take seconds.
2. A Bayesian-optimisation search (KerasTuner) over the head learning rate, dropout, head width,
   augmentation strength and recipe (feature extraction, or fine-tuning the last 1–2 blocks for
   one epoch after the head) until the time budget is spent (a running trial finishes).
3. Both models evaluated on the 656 test cells (`keras_transfer.evaluation.classification` reports).

Writes bench/results/tune_elpv.json (both test reports, every trial, timings, the best config
that `keras-transfer train --config` re-runs), bench/results/tune_elpv.png (the search) and
bench/results/tune_elpv/ (best_config.json, trials.csv, tuning.json, the best model's
confusion matrix, reliability diagram and most confidently wrong cells).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import numpy as np  # noqa: E402

from keras_transfer.evaluation.classification import Evaluation, classification_report, evaluate  # noqa: E402
from keras_transfer.commands.image_job import ImageJobConfig  # noqa: E402
from keras_transfer.evaluation.plots import plot_search_results  # noqa: E402
from keras_transfer.recipes import extract_features, split_at  # noqa: E402
from keras_transfer.tuning import ImageTrainer, SearchSpace, tune  # noqa: E402
from keras_transfer.utils.files import atomic_write_bytes  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def test_report(model: keras.Model, data, recipe: str, folder: Path | None = None) -> dict:
    """The test-split report; a frozen-backbone model is scored on test features computed once
    for every such model (they share the backbone), a fine-tuned one by a full pass."""
    if recipe == "fine_tune":
        return evaluate(model, data, split="test", output_dir=folder, name="ELPV tuned")
    features, head = split_at(model)
    x, y = extract_features(features, data.test, cache="memory", description="test features")
    outputs = keras.ops.convert_to_numpy(head(x, training=False))
    report = classification_report(y, outputs, data.class_names)
    if folder is not None:  # the plots need the images of the confidently wrong cells
        wanted = [row["index"] for row in report["confidently_wrong"]]
        images = np.concatenate([np.asarray(batch) for batch, _ in data.test])[wanted]
        Evaluation(report, y, outputs, list(images), name="ELPV tuned").write(folder)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=8.0,
                        help="search budget; no trial starts after it (default 8)")
    parser.add_argument("--algorithm", default="bayesian",
                        choices=["bayesian", "hyperband", "random"])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--no-fine-tune", action="store_true",
                        help="search feature-extraction trials only")
    parser.add_argument("--smoke", action="store_true",
                        help="1 trial, 96 training images at 96 px, results to a temp folder")
    parser.add_argument("--output", default=None, help="JSON path (default: bench/results/)")
    args = parser.parse_args()

    base = ImageJobConfig(dataset="elpv", backbone="efficientnet_lite0", weights="imagenet",
                          image_size=args.image_size, batch_size=32, validation_split=0.1,
                          seed=1337)
    space = SearchSpace(
        learning_rate=(1e-4, 1e-2), dropout=(0.0, 0.2, 0.4), hidden_units=(0, 256, 512),
        augment_strength=(0.0, 0.5),
        recipes=("feature_extraction",) if args.no_fine_tune else ("feature_extraction",
                                                                   "fine_tune"),
        unfreeze_blocks=(1, 2), fine_tune_learning_rate=(1e-5, 1e-3), head_epochs=40,
        fine_tune_epochs=1)
    max_trials = None
    if args.smoke:
        base = dataclasses.replace(base, image_size=96, max_train_examples=96)
        space = dataclasses.replace(space, head_epochs=3, recipes=("feature_extraction",))
        max_trials = 1
    results = Path(tempfile.mkdtemp(prefix="tune_elpv_smoke_")) if args.smoke else RESULTS
    output = Path(args.output) if args.output else results / "tune_elpv.json"
    folder = output.with_suffix("")
    started = time.perf_counter()
    trainer = ImageTrainer(base, space, early_stopping=5)

    print(f"[1/3] Untuned default: the job's head ({space.head_epochs if args.smoke else 25} "
          "epochs) on frozen Lite0 features (computes the feature cache) …", flush=True)
    default_config = dataclasses.replace(base, head_epochs=3 if args.smoke else 25, epochs=0,
                                         unfreeze_blocks=0)
    trainer.early_stopping = None  # the job's head trains all its epochs
    default = trainer.train(default_config)
    default_model = trainer.last_model
    trainer.early_stopping = 5
    first_trial_s = time.perf_counter() - started
    print(f"      validation accuracy {default.score:.4f} ({first_trial_s:.0f} s incl. data "
          "loading and feature extraction)", flush=True)

    print(f"[2/3] {args.algorithm} search for {args.minutes:g} min …", flush=True)
    trainer.best_model, trainer.best_score = None, float("-inf")  # the search's own best
    t = time.perf_counter()
    result = tune(trainer, algorithm=args.algorithm, max_trials=max_trials,
                  max_minutes=args.minutes, output_dir=folder, seed=base.seed, verbose=1)
    search_s = time.perf_counter() - t
    print(result.table(), flush=True)

    print("[3/3] Test accuracy of the default and the best trial (656 cells) …", flush=True)
    data, _ = trainer.data(base)
    t = time.perf_counter()
    default_test = test_report(default_model, data, "feature_extraction")
    best_recipe = next(row["recipe"] for row in result.rows if row["trial"] == result.best_trial)
    best_test = test_report(trainer.best_model, data, best_recipe, folder)
    evaluate_s = time.perf_counter() - t
    plot_search_results(result.rows, output.with_suffix(".png"), objective=result.objective,
                        baseline=("untuned default", default.score))

    recipes = [row.get("recipe") for row in result.rows if row["score"] is not None]
    summary = {
        "benchmark": "tune_elpv",
        "protocol": "ELPV 4-class, 1,968 train (10% validates trials) / 656 test, seed 1337; "
                    f"EfficientNet-Lite0 ImageNet at {base.image_size} px",
        "smoke": args.smoke,
        "algorithm": args.algorithm,
        "budget_minutes": args.minutes,
        "default": {"config": dataclasses.asdict(default.config),
                    "validation_accuracy": default.score,
                    "test_accuracy": default_test["accuracy"], "test": default_test},
        "tuned": {"config": result.best_config, "validation_accuracy": result.best_score,
                  "test_accuracy": best_test["accuracy"], "test": best_test,
                  "trial": result.best_trial},
        "trials": result.rows,
        "trials_by_recipe": {r: recipes.count(r) for r in sorted(set(recipes))},
        "feature_store": trainer.store.stats(),
        "timings_s": {"default_with_feature_extraction": round(first_trial_s, 1),
                      "search": round(search_s, 1), "test_evaluation": round(evaluate_s, 1),
                      "total": round(time.perf_counter() - started, 1)},
        "rerun": f"keras-transfer train --config {folder / 'best_config.json'}",
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "keras": keras.__version__},
    }
    by_recipe = ", ".join(f"{n} {r.replace('_', ' ')}" for r, n in
                          summary["trials_by_recipe"].items())
    atomic_write_bytes(output, json.dumps(summary, indent=2, default=str).encode())
    print(f"\n| ELPV 4-class, 656 test cells | validation | test |\n|---|---|---|\n"
          f"| untuned default head on frozen features | {default.score:.2%} | "
          f"{default_test['accuracy']:.2%} |\n"
          f"| best of {len(recipes)} trials ({args.algorithm}, {args.minutes:g} min; "
          f"{by_recipe}) | {result.best_score:.2%} | "
          f"{best_test['accuracy']:.2%} |")
    print(f"\nFeature store: {trainer.store.stats()}. Total "
          f"{summary['timings_s']['total'] / 60:.1f} min. Wrote {output}, "
          f"{output.with_suffix('.png')} and {folder}/. Re-run the best: {summary['rerun']}")


if __name__ == "__main__":
    main()
