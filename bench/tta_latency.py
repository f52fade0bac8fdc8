"""What test-time augmentation costs at inference: EfficientNet-Lite0 float32 TFLite, batch 1.

    python bench/tta_latency.py [--repeats 40]

Builds the ImageNet EfficientNet-Lite0 classifier (4 classes, the weights ship offline), exports
float32 TFLite to a temporary folder and times `predict` on one 224x224 image per call with the
TFLite interpreter: single view, then TTA over 2 (hflip), 4 (flips) and 8 (dihedral) views. The
settings are timed in turn, round after round, so the load of a shared machine falls on all of
them alike. Reports the median end-to-end time per image (views made from the decoded pixels,
one interpreter run per view, mean, top-k) and the median interpreter `invoke` alone; writes
bench/results/tta_latency.json with the CPU model and its SIMD/AMX flags.
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

import numpy as np  # noqa: E402

import keras_transfer as kt  # noqa: E402
from keras_transfer.data.symmetry import group_views  # noqa: E402
from keras_transfer.export import export  # noqa: E402
from keras_transfer.export.predict import load_artifact, predict  # noqa: E402
from keras_transfer.utils.files import atomic_write_bytes  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "tta_latency.json"
SETTINGS = {"single view": None, "hflip": "hflip", "flips": "flips", "dihedral": "dihedral"}
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8")


def cpu_info() -> dict:
    """CPU model name and whether the flags that decide TFLite CPU speed are present."""
    from keras_transfer.commands.image_job import read_cpu

    model, flags = read_cpu()
    return {"model": model, "flags": {name: name in flags for name in CPU_FLAGS},
            "amx": any(name.startswith("amx") for name in flags),
            "cores_usable": len(os.sched_getaffinity(0)), "cores_total": os.cpu_count(),
            "load_average": list(os.getloadavg())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40, help="timed calls per setting")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()

    model = kt.build_image_classifier("efficientnet_lite0", 4, weights="imagenet")
    image = np.random.default_rng(0).uniform(0, 255, (1, 224, 224, 3)).astype("float32")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "export"
        export(model, folder, formats="tflite", labels=list("abcd"), num_verify=4,
               metadata={"symmetries": ["hflip", "vflip", "rot90"]}, verbose=False)
        artifact = load_artifact(folder / "model.tflite")
        runner = artifact.run  # the TFLiteRunner: its latencies_ms are the invokes
        for tta in SETTINGS.values():  # warm-up, not timed
            predict(artifact, image, tta=tta)
        wall: dict[str, list[float]] = {name: [] for name in SETTINGS}
        invoke: dict[str, list[float]] = {name: [] for name in SETTINGS}
        for _ in range(args.repeats):
            for name, tta in SETTINGS.items():
                runner.latencies_ms.clear()
                start = time.perf_counter()
                predict(artifact, image, tta=tta)
                wall[name].append((time.perf_counter() - start) * 1000.0)
                invoke[name].append(float(np.median(runner.latencies_ms)))
        threads = runner.threads
    single = float(np.median(wall["single view"]))
    rows = []
    for name, tta in SETTINGS.items():
        median = float(np.median(wall[name]))
        rows.append({
            "setting": name, "symmetries": tta, "views": len(group_views(tta)),
            "ms_per_image": round(median, 2),
            "ms_per_image_p90": round(float(np.percentile(wall[name], 90)), 2),
            "vs_single_view": round(median / single, 2),
            "invoke_ms_median": round(float(np.median(invoke[name])), 2),
        })
        print(f"{name:12s} {rows[-1]['views']} view(s): {median:7.2f} ms/image "
              f"(x{median / single:.2f}; invoke {rows[-1]['invoke_ms_median']:.2f} ms)")
    result = {
        "benchmark": "tta_latency", "model": "efficientnet_lite0 (ImageNet), 4 classes, 224x224",
        "artifact": "model.tflite (float32)", "batch": 1, "repeats": args.repeats,
        "interpreter_threads": threads, "rows": rows, "cpu": cpu_info(),
        "platform": platform.platform(), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic_write_bytes(args.output, json.dumps(result, indent=2).encode())
    print(f"CPU: {result['cpu']['model']}, flags {result['cpu']['flags']}; wrote {args.output}")


if __name__ == "__main__":
    main()
