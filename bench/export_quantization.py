"""Size, latency and accuracy of every TFLite quantization of the ELPV EfficientNet-Lite0 model.

Run the main job first (`keras-transfer train`), then:
    python bench/export_quantization.py [--model saved_models/elpv_efficientnet_lite0/model.keras]
Exports float32, float16, dynamic-range and int8 (calibrated on 200 training images, exact
activation ranges: keras_transfer.export.calibration) to a temporary folder, verifies each on
the 656 labelled ELPV test cells with the TFLite interpreter, prints a table and writes
bench/results/export_quantization.json. Ratios (size, latency) are measured in the same run, so
machine noise cancels out as far as it can; the latencies are also re-measured with the files
timed in turn (alternating rounds), the fairest ratio on a busy machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_transfer.backbones.blocks import format_table  # noqa: E402
from keras_transfer.data import elpv_arrays  # noqa: E402
from keras_transfer.export import export  # noqa: E402
from keras_transfer.export.interpreter import TFLiteRunner  # noqa: E402
from keras_transfer.utils.files import atomic_write_bytes  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "export_quantization.json"


def alternating_latency_ms(directory: Path, images: np.ndarray, rounds: int) -> dict[str, float]:
    """Median batch-1 latency per file, the files timed in turn, round after round.

    On a shared machine the load of other processes then falls on every file alike, so the
    latency ratios stay fair even when the absolute numbers drift.
    """
    runners = {p.name: TFLiteRunner(p) for p in sorted(directory.glob("*.tflite"))}
    for runner in runners.values():
        runner(images[:1])  # warm-up, not timed
        runner.latencies_ms.clear()
    for round_ in range(rounds):
        chunk = images[(round_ * 20) % len(images):][:20]
        for runner in runners.values():
            runner(chunk)
    return {name: float(np.median(r.latencies_ms)) for name, r in runners.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="saved_models/elpv_efficientnet_lite0/model.keras")
    parser.add_argument("--calibration", type=int, default=200)
    parser.add_argument("--output", default=str(RESULTS))
    parser.add_argument("--rounds", type=int, default=10,
                        help="alternating latency rounds (20 images per file per round)")
    args = parser.parse_args()

    model = keras.models.load_model(args.model, safe_mode=True)
    size = tuple(model.input_shape[1:3])
    x_train, _, x_test, y_test, class_names = elpv_arrays("4class", image_size=size)
    rng = np.random.default_rng(0)
    calibration = x_train[rng.choice(len(x_train), args.calibration, replace=False)]
    with tempfile.TemporaryDirectory() as tmp:
        info = export(
            model, Path(tmp) / "export", formats="tflite",
            quantization=("float32", "float16", "dynamic", "int8"), labels=class_names,
            representative_data=calibration.astype("float32"),
            verify_data=(x_test.astype("float32"), y_test), num_verify=len(x_test),
            num_calibration=args.calibration,
        )
        alternating = alternating_latency_ms(Path(tmp) / "export", x_test, args.rounds)
    verification = info["verification"]
    float32 = verification["tflite"]["model.tflite"]
    rows = []
    for name, result in verification["tflite"].items():
        rows.append(dict(
            file=name,
            size_kib=round(result["size_bytes"] / 1024),
            size_vs_float32=round(result["size_bytes"] / float32["size_bytes"], 3),
            latency_ms=round(result["latency_ms_median"], 2),
            latency_vs_float32=round(result["latency_ms_median"] / float32["latency_ms_median"], 3),
            alternating_latency_ms=round(alternating[name], 2),
            alternating_latency_vs_float32=round(alternating[name] / alternating["model.tflite"], 3),
            accuracy=round(result["accuracy"], 4),
            top1_agreement=round(result["top1_agreement"], 4),
            max_abs_diff=float(f"{result['max_abs_diff']:.3g}"),
        ))
    print(format_table(rows))
    print(f"Keras model accuracy on the same {len(x_test)} test images: "
          f"{verification['keras']['accuracy']:.4f}; interpreter threads: {verification['threads']}")
    result = dict(
        benchmark="export_quantization", model=args.model, test_images=len(x_test),
        calibration_images=args.calibration, keras_accuracy=verification["keras"]["accuracy"],
        threads=verification["threads"], interpreter=verification["interpreter"], rows=rows,
        machine=dict(platform=platform.platform(), cpu_count=os.cpu_count()),
    )
    atomic_write_bytes(args.output, json.dumps(result, indent=2).encode())
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
