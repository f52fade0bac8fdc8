"""Detection benchmark: ImageNet EfficientNet-Lite0 vs the same from scratch, per detector kind.

Each run trains on synthetic shapes (128 px, 3 classes, textured backgrounds) for the same
wall-clock budget (the first step, which traces the graph, is not counted), then reports mAP@0.5
and mAP@0.5:0.95 on held-out images, parameters and the float32 TFLite size.

    python bench/detection.py                       # defaults: ≈ 20 min on 2 CPU cores
    python bench/detection.py --kinds ssd --budget 120

Writes bench/results/detection.json and bench/results/detection.png (detections of the best run).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from keras_transfer.backbones.blocks import format_table  # noqa: E402
from keras_transfer.detection import (  # noqa: E402
    build_detector,
    detect,
    export_detector,
    mean_average_precision,
    pad_boxes,
    plot_detections,
    synthetic_detection,
)
from keras_transfer.detection.synthetic import SHAPES  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
LEARNING_RATES = {"yolov8": 1e-3, "retinanet": 1e-3, "ssd": 2e-3, "faster_rcnn": 1e-3}


class TimeBudget(keras.callbacks.Callback):
    """Stops training once `seconds` of training time (after the first, tracing, step) pass."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds, self.start, self.steps = seconds, None, 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.start is None:
            self.start = time.perf_counter()
        elif time.perf_counter() - self.start >= self.seconds:
            self.model.stop_training = True


def run(kind, weights, data, args):
    x_train, y_train, x_val, val_truth = data
    keras.utils.set_random_seed(args.seed)
    started = time.perf_counter()
    model = build_detector(kind, "efficientnet_lite0", num_classes=args.classes, weights=weights,
                           input_shape=(args.size, args.size, 3),
                           learning_rate=LEARNING_RATES[kind])
    budget = TimeBudget(args.budget)
    history = model.fit(x_train, y_train, batch_size=args.batch_size, epochs=1000, shuffle=True,
                        callbacks=[budget], verbose=0)
    detections = detect(model, x_val, score_threshold=0.05)
    result = mean_average_precision(detections, val_truth, num_classes=args.classes)
    losses = history.history["loss"]
    return model, detections, {
        "kind": kind, "backbone": "imagenet" if weights else "scratch",
        "map50": round(result["map50"], 4), "map": round(result["map"], 4),
        "steps": budget.steps, "epochs": len(losses),
        "first_loss": round(float(losses[0]), 3), "last_loss": round(float(losses[-1]), 3),
        "params": int(model.count_params()),
        "wall_s": round(time.perf_counter() - started, 1),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", nargs="+",
                        default=["ssd", "retinanet", "yolov8", "faster_rcnn"])
    parser.add_argument("--budget", type=float, default=75.0,
                        help="training seconds per run (equal for both backbones)")
    parser.add_argument("--train", type=int, default=384)
    parser.add_argument("--val", type=int, default=64)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-tflite", action="store_true", help="skip the TFLite size")
    args = parser.parse_args(argv)

    images, boxes, classes = synthetic_detection(args.train + args.val, args.size, args.classes,
                                                 min_size=0.15, max_size=0.4, seed=args.seed)
    b, c = pad_boxes(boxes[:args.train], classes[:args.train], 8)
    val_truth = [{"boxes": bx, "classes": cl}
                 for bx, cl in zip(boxes[args.train:], classes[args.train:])]
    data = (images[:args.train], {"boxes": b, "classes": c}, images[args.train:], val_truth)
    print(f"synthetic shapes: {args.train} train / {args.val} val images, {args.size} px, "
          f"{args.classes} classes; {args.budget:.0f} s of training per run", flush=True)

    rows, best = [], None
    for kind in args.kinds:
        tflite_size = None
        for weights in ("imagenet", None):
            model, detections, row = run(kind, weights, data, args)
            if tflite_size is None and not args.no_tflite:
                with tempfile.TemporaryDirectory() as tmp:
                    info = export_detector(model, Path(tmp) / "export", formats=("tflite",),
                                           verify_images=images[args.train:args.train + 2])
                    tflite_size = info["files"]["model.tflite"]
            row["tflite_mb"] = round(tflite_size / 2**20, 2) if tflite_size else None
            rows.append(row)
            print(json.dumps(row), flush=True)
            if best is None or row["map50"] > best[0]["map50"]:
                best = (row, detections)
            keras.backend.clear_session()

    print()
    print(format_table(rows, ["kind", "backbone", "map50", "map", "steps", "first_loss",
                              "last_loss", "params", "tflite_mb", "wall_s"]))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "detection.json").write_text(json.dumps(
        {"settings": vars(args), "machine": f"{os.cpu_count()} CPU cores", "runs": rows},
        indent=2))
    if best is not None:
        row, detections = best
        count = min(8, args.val)
        plot_detections(images[args.train:args.train + count], detections[:count],
                        RESULTS / "detection.png", class_names=list(SHAPES[:args.classes]),
                        ground_truth=val_truth[:count])
        print(f"detections of {row['kind']} ({row['backbone']}) → {RESULTS / 'detection.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
