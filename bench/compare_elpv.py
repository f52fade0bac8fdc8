"""Which backbone for ELPV? Accuracy against on-device latency of every backbone that works offline.

    python bench/compare_elpv.py                 # frozen features: minutes per backbone
    python bench/compare_elpv.py --fine-tune --time-budget 12   # + a 12-minute fine-tune each
    python bench/compare_elpv.py --quick         # 64 training cells at 96 px, to a temp folder

ELPV 4-class, the training job's split (1,771 training / 197 validation / 656 test cells,
stratified, seed 1337), and for each backbone whose ImageNet weights ship offline
(`keras_transfer.compare.offline_backbones`: EfficientNet-Lite0, and Lite1 / Lite2 where they
are registered) at its own pretraining size unless ``--image-size``:
`keras_transfer.compare_backbones` trains the job's head on cached features (to convergence,
the imbalance treatment chosen on validation), scores the 656 test cells, optionally fine-tunes
within a per-backbone budget (the job's default recipe), exports float32 and int8 TFLite
(int8 calibrated on 64 training cells) and times every file in alternating rounds with the
TFLite interpreter. The recommendation is the fastest backbone (float32 TFLite latency)
within ``--tolerance`` points of the most accurate.

Writes bench/results/compare_elpv.json (every backbone's accuracy, macro-F1, parameters, file
sizes, latencies and times, the Pareto front, the recommendation and its rule, the machine with
its CPU flags) and bench/results/compare_elpv.png (accuracy against latency, one panel per
file kind). ``--quick`` writes to a temporary folder unless ``--output`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_transfer.compare import (  # noqa: E402
    PLOT_FILE,
    CompareConfig,
    compare_backbones,
    offline_backbones,
)
from keras_transfer.commands.image_job import read_cpu  # noqa: E402
from keras_transfer.utils.files import atomic_write_bytes  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
# The flags that decide CPU inference speed, float32 (AVX2/AVX-512) and int8 (VNNI, AMX).
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile",
             "amx_bf16", "amx_int8")
QUICK = dict(max_train_examples=64, image_size=96, head_epochs=30, latency_rounds=1,
             verify_images=8, calibration_images=8)


def cpu_info() -> dict:
    """CPU model name, the speed-deciding flags, cores and the load when the run started."""
    model, flags = read_cpu()
    return {"model": model, "flags": {name: name in flags for name in CPU_FLAGS},
            "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else os.cpu_count(),
            "cores_total": os.cpu_count(),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "platform": platform.platform()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", default=None,
                        help="comma-separated names (default: every backbone with offline "
                        f"ImageNet weights: {', '.join(offline_backbones())})")
    parser.add_argument("--fine-tune", action="store_true",
                        help="also fine-tune each backbone within --time-budget minutes")
    parser.add_argument("--time-budget", type=float, default=12.0,
                        help="training minutes per backbone with --fine-tune (default 12, the "
                        "main job's budget)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="one size for every backbone (default: each one's own)")
    parser.add_argument("--max-train-examples", type=int, default=None)
    parser.add_argument("--tolerance", type=float, default=1.0,
                        help="accuracy points below the best a recommendation may be")
    parser.add_argument("--quick", action="store_true",
                        help="64 training cells at 96 px, short head, one latency round; "
                        "results to a temporary folder")
    parser.add_argument("--output", default=None,
                        help="JSON path (default: bench/results/compare_elpv.json)")
    args = parser.parse_args()

    backbones = (tuple(name.strip() for name in args.backbones.split(",") if name.strip())
                 if args.backbones else offline_backbones())
    settings = dict(dataset="elpv", backbones=backbones, weights="imagenet",
                    fine_tune=args.fine_tune, time_budget=args.time_budget,
                    image_size=args.image_size, max_train_examples=args.max_train_examples,
                    tolerance=args.tolerance, seed=1337, validation_split=0.1)
    if args.quick:  # what the flags do not set
        settings.update({key: value for key, value in QUICK.items()
                         if settings.get(key) is None})
    results = Path(tempfile.mkdtemp(prefix="compare_elpv_quick_")) if args.quick else RESULTS
    output = Path(args.output) if args.output else results / "compare_elpv.json"
    # The comparison's own outputs (comparison.json / .png) go to its run folder (git-ignored).
    details = results / "compare_elpv" if args.quick else Path("runs") / "compare" / "elpv_bench"
    config = CompareConfig(**settings, output_dir=str(details))
    config.check()  # before the data is read
    machine = cpu_info()
    print(f"CPU: {machine['model']}; flags: "
          f"{', '.join(flag for flag, present in machine['flags'].items() if present)}; "
          f"{machine['cores_usable']} usable cores; load {machine['load_average']}", flush=True)

    started = time.perf_counter()
    summary = compare_backbones(config)
    atomic_write_bytes(output.with_suffix(".png"), (details / PLOT_FILE).read_bytes())
    what = "fine-tuned" if args.fine_tune else "frozen features"
    result = {
        "benchmark": "compare_elpv",
        "protocol": "ELPV 4-class, the training job's split (seed 1337, 10 % of the training "
                    f"cells validate), ImageNet weights, {what}; test accuracy on the "
                    f"{'656' if not args.quick else 'quick-run'} test cells; TFLite latency per "
                    "image at batch 1, files timed in alternating rounds",
        "quick": args.quick,
        "cpu": machine,
        "wall_minutes": round((time.perf_counter() - started) / 60, 2),
        **summary,
    }
    atomic_write_bytes(output, json.dumps(result, indent=2, default=str).encode())
    rows = [row for row in summary["backbones"] if row["status"] == "ok"]
    print(f"\n| ELPV 4-class, {rows[0]['num_test'] if rows else '?'} test cells, {what} | px | "
          "params | test accuracy | macro-F1 | float32 .tflite | int8 .tflite | minutes |\n"
          "|---|---|---|---|---|---|---|---|")
    for row in rows:
        files = row["tflite"]
        cells = [f"{files[k]['size_bytes'] / 1e6:.1f} MB, {files[k]['latency_ms']:.1f} ms"
                 if k in files else "" for k in ("float32", "int8")]
        name = f"**{row['backbone']}**" if row["recommended"] else row["backbone"]
        print(f"| {name} | {row['image_size']} | {row['params'] / 1e6:.2f} M | "
              f"{row['accuracy']:.2%} | {row['macro_f1']:.3f} | {cells[0]} | {cells[1]} | "
              f"{row['timings']['total_s'] / 60:.1f} |")
    for row in summary["backbones"]:
        if row["status"] != "ok":
            print(f"| {row['backbone']} | failed: {row['error']} |")
    print(f"\nTotal {result['wall_minutes']:.1f} min. Wrote {output} and "
          f"{output.with_suffix('.png')}.", flush=True)


if __name__ == "__main__":
    main()
