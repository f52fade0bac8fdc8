"""Segmentation with an ImageNet EfficientNet-Lite0 backbone vs the same network from scratch.

Synthetic shapes (circles, squares, triangles of random colours on noisy gradients, see
`keras_transfer.data.masks.synthetic_shapes`): the class is the form, not the colour. Each model
gets the same wall-clock training budget, counted after its first step (graph tracing, timed
apart); the steps each one managed are recorded, since other processes on a shared machine slow
runs unevenly. Settings follow common practice for each start:

* ``imagenet``: offline ImageNet weights (keras_transfer.weights.assets), every block fine-tuned,
  BatchNorm kept frozen (inference mode, the pretrained statistics);
* ``scratch``: random weights, every block and BatchNorm trained (BatchNorm momentum 0.9, as
  in the head, so its moving statistics settle within a short budget).

Both use the same head, optimizer (Adam), learning rate, batch size and joint flip/zoom
augmentation. Scores are mean IoU / per-class IoU / pixel accuracy on a held-out synthetic set.
The ImageNet model is then exported to TFLite (``--export-formats saved_model tflite`` adds the
SavedModel) with the export parity checks.

Usage:
    python bench/segmentation.py                   # defaults: about 10 minutes on 2 busy cores
    python bench/segmentation.py --kinds unet deeplab_v3_plus --budget 300
Writes bench/results/segmentation.json and bench/results/segmentation.png (overlays).
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

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_transfer.backbones import blocks_of  # noqa: E402
from keras_transfer.backbones.blocks import format_table  # noqa: E402
from keras_transfer.data.masks import (  # noqa: E402
    segmentation_augmentation,
    segmentation_from_arrays,
    synthetic_shapes,
)
from keras_transfer.export import export  # noqa: E402
from keras_transfer.heads import build_segmenter  # noqa: E402
from keras_transfer.evaluation.segmentation import evaluate_segmenter, save_overlays  # noqa: E402
from keras_transfer.utils.files import atomic_write_bytes  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
CLASS_NAMES = ["background", "circle", "square", "triangle"]
STARTS = {
    # start: (weights, train_batchnorm)
    "imagenet": ("imagenet", False),
    "scratch": (None, True),
}


class WallClockBudget(keras.callbacks.Callback):
    """Stops training once `seconds` have passed after the first step; counts the steps.

    The first step (graph tracing, a minute or more for Lite0 on a busy CPU) is timed apart and
    not charged to the budget: it says nothing about how fast either start learns.
    """

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds, self.steps, self.elapsed, self.first_step_s = seconds, 0, 0.0, 0.0

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        now = time.perf_counter()
        if self.steps == 1:
            self.first_step_s, self.start = now - self.start, now
            return
        self.elapsed = now - self.start
        if self.elapsed >= self.seconds:
            self.model.stop_training = True


def train_one(kind: str, start: str, data, args) -> tuple[keras.Model, dict]:
    weights, train_batchnorm = STARTS[start]
    keras.utils.set_random_seed(args.seed)
    model = build_segmenter(
        kind, "efficientnet_lite0", len(CLASS_NAMES), weights=weights,
        input_shape=(args.image_size, args.image_size, 3), trainable_blocks="all",
        train_batchnorm=train_batchnorm, filters=args.filters, learning_rate=args.learning_rate,
    )
    if train_batchnorm:  # from scratch: backbone BatchNorm statistics settle as fast as the head's
        for block in blocks_of(model):
            for layer in block.layers:
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.momentum = 0.9
    budget = WallClockBudget(args.budget)
    print(f"\n[{kind} / {start}] training for {args.budget:.0f} s", flush=True)
    history = model.fit(data.train, epochs=10_000, callbacks=[budget], verbose=2)
    began = time.perf_counter()
    scores = evaluate_segmenter(model, data.validation, class_names=CLASS_NAMES)
    row = dict(
        kind=kind, start=start, weights=weights or "random", train_batchnorm=train_batchnorm,
        budget_s=args.budget, first_step_s=round(budget.first_step_s, 1),
        train_s=round(budget.elapsed, 1), steps=budget.steps,
        images_seen=budget.steps * args.batch_size,
        final_train_loss=round(float(history.history["loss"][-1]), 4),
        val_mean_iou=round(scores["mean_iou"], 4),
        val_pixel_accuracy=round(scores["pixel_accuracy"], 4),
        val_per_class_iou={k: (round(v, 4) if v is not None else None)
                           for k, v in scores["per_class_iou"].items()},
        eval_s=round(time.perf_counter() - began, 1),
    )
    print(f"[{kind} / {start}] {budget.steps} steps, val mean IoU {row['val_mean_iou']:.3f}",
          flush=True)
    return model, row


def export_parity(model: keras.Model, images: np.ndarray, masks: np.ndarray,
                  formats: list[str]) -> dict:
    """Exports with `keras_transfer.export.export` and keeps its parity checks."""
    with tempfile.TemporaryDirectory() as tmp:
        info = export(model, Path(tmp) / "export", formats=formats,
                      verify_data=(images, masks), num_verify=len(images))
    verification = info["verification"]
    pick = ("max_abs_diff", "pixel_agreement", "mean_iou", "pixel_accuracy", "size_bytes",
            "latency_ms_median")
    result = dict(keras={k: verification["keras"][k] for k in ("mean_iou", "pixel_accuracy")},
                  tflite={k: verification["tflite"]["model.tflite"][k] for k in pick},
                  num_images=len(images))
    if "saved_model" in verification:
        result["saved_model"] = {k: verification["saved_model"][k] for k in pick[:2]}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", nargs="+", default=["unet"],
                        choices=["unet", "deeplab_v3_plus"])
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--train", type=int, default=640, help="training images")
    parser.add_argument("--validation", type=int, default=160, help="held-out images")
    parser.add_argument("--budget", type=float, default=120.0,
                        help="training seconds per model, after its first step")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--filters", type=int, default=64, help="head width")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--export-formats", nargs="*", default=["tflite"],
                        choices=["saved_model", "tflite"],
                        help="export the ImageNet model and check parity (none: skip); the "
                        "SavedModel's two signatures take minutes to trace on a busy CPU")
    parser.add_argument("--output", default=str(RESULTS / "segmentation.json"))
    args = parser.parse_args()
    started, load_before = time.perf_counter(), os.getloadavg()

    size = (args.image_size, args.image_size)
    images, masks = synthetic_shapes(args.train + args.validation, size, seed=args.seed)
    data = segmentation_from_arrays(
        images, masks, class_names=CLASS_NAMES, batch_size=args.batch_size,
        validation_split=args.validation / (args.train + args.validation), seed=args.seed,
        augment=segmentation_augmentation(flip="horizontal", zoom=0.1, seed=args.seed),
    )
    val_images = np.concatenate([x.numpy() for x, _ in data.validation])
    val_masks = np.concatenate([m.numpy() for _, m in data.validation])

    rows, overlays, parity = [], {}, {}
    for kind in args.kinds:
        for start in STARTS:
            model, row = train_one(kind, start, data, args)
            rows.append(row)
            overlays[f"{kind}\n{start}"] = model.predict(val_images[:4], verbose=0)
            if start == "imagenet" and args.export_formats:
                formats = sorted(set(args.export_formats) | {"tflite"})
                parity[kind] = export_parity(model, val_images[:16], val_masks[:16], formats)
            keras.backend.clear_session()

    columns = ["kind", "start", "first_step_s", "train_s", "steps", "images_seen",
               "final_train_loss", "val_mean_iou", "val_pixel_accuracy"]
    print()
    print(format_table(rows, columns))
    for kind, result in parity.items():
        lite = result["tflite"]
        print(f"export ({kind}, imagenet): TFLite max|diff| {lite['max_abs_diff']:.2e}, pixel "
              f"agreement {lite['pixel_agreement']:.4f}, mean IoU {lite['mean_iou']:.3f} "
              f"(Keras {result['keras']['mean_iou']:.3f})"
              + (f"; SavedModel pixel agreement {result['saved_model']['pixel_agreement']:.4f}"
                 if "saved_model" in result else ""))
    png = Path(args.output).with_suffix(".png")
    save_overlays(png, val_images[:4], overlays, masks=val_masks[:4], class_names=CLASS_NAMES,
                  title=f"validation images, {args.budget:.0f} s of training per model")
    result = dict(
        benchmark="segmentation", backbone="efficientnet_lite0", config=vars(args),
        dataset=dict(source="synthetic_shapes", classes=CLASS_NAMES, sizes=data.sizes,
                     image_size=list(size)),
        rows=rows, export=parity, overlay_png=str(png),
        total_s=round(time.perf_counter() - started, 1),
        machine=dict(platform=platform.platform(), cpu_count=os.cpu_count(),
                     load_average_before=[round(v, 2) for v in load_before],
                     load_average_after=[round(v, 2) for v in os.getloadavg()]),
    )
    atomic_write_bytes(args.output, json.dumps(result, indent=2).encode())
    print(f"wrote {args.output} and {png} in {result['total_s']:.0f} s")


if __name__ == "__main__":
    main()
