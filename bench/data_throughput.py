"""Is the input pipeline fast enough to feed a backbone? ELPV loader vs raw forward speed.

Measures images/s through the ELPV pipeline (resize to 224x224, uint8 cache, shuffle, batch 32,
float RGB, prefetch): the first epoch (decode/resize, fills the cache), later epochs (from the
cache) and later epochs with the default augmentation; then the raw forward speed of a backbone
(MobileNetV2, random weights, as a stand-in) on tensors already in memory. If the cached loader
is well above the forward speed, the pipeline is not the bottleneck.

Usage:
    python bench/data_throughput.py                    # whole ELPV train split (1,968 images)
    python bench/data_throughput.py --limit 256 --forward-images 64   # a quick check
Writes bench/results/data_throughput.json.
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
import tensorflow as tf  # noqa: E402

from keras_transfer.data import elpv_arrays, from_arrays, load_elpv  # noqa: E402
from keras_transfer.weights.cache import atomic_write_bytes  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "data_throughput.json"


def timed_epoch(dataset: tf.data.Dataset) -> tuple[int, float]:
    """(images, seconds) for one full pass; the batches are materialised, nothing else."""
    start, count = time.perf_counter(), 0
    for images, _ in dataset:
        count += int(images.shape[0])
    return count, time.perf_counter() - start


def elpv_train_split(
    limit: int | None, image_size: tuple[int, int], batch_size: int, augment: bool
):
    """The ELPV train pipeline; with ``limit``, the same pipeline over the first ``limit`` cells."""
    if limit is None:
        return load_elpv(
            image_size=image_size, batch_size=batch_size, augment=augment or None, verbose=False
        ).train
    x_train, y_train, _, _, _ = elpv_arrays("4class", channels=1)  # native 300x300 gray
    return from_arrays(
        x_train[:limit],
        y_train[:limit],
        image_size=image_size,
        batch_size=batch_size,
        augment=augment or None,
        verbose=False,
    ).train


def loader_rows(limit: int | None, image_size, batch_size: int, epochs: int) -> list[dict]:
    rows = []
    for augment in (False, True):
        train = elpv_train_split(limit, image_size, batch_size, augment)
        count, seconds = timed_epoch(train)
        if not augment:
            rows.append(
                {
                    "what": "loader, epoch 1 (resize + fill cache)",
                    "images": count,
                    "seconds": seconds,
                    "images_per_s": count / seconds,
                }
            )
        later = [timed_epoch(train) for _ in range(max(epochs - 1, 1))]
        images, seconds = sum(c for c, _ in later), sum(s for _, s in later)
        rows.append(
            {
                "what": f"loader, cached epochs{' + augmentation' if augment else ''}",
                "images": images,
                "seconds": seconds,
                "images_per_s": images / seconds,
            }
        )
    return rows


def forward_row(images: int, image_size, batch_size: int) -> dict:
    model = keras.applications.MobileNetV2(weights=None, input_shape=(*image_size, 3))
    batch = tf.random.uniform((batch_size, *image_size, 3), 0, 255)
    forward = tf.function(lambda x: model(x, training=False), jit_compile=False)
    forward(batch)  # trace and warm up
    steps = max(images // batch_size, 1)
    start = time.perf_counter()
    for _ in range(steps):
        forward(batch).numpy()
    seconds = time.perf_counter() - start
    return {
        "what": "MobileNetV2 forward (random weights, preloaded)",
        "images": steps * batch_size,
        "seconds": seconds,
        "images_per_s": steps * batch_size / seconds,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--limit", type=int, default=None, help="ELPV train cells to use (default: all 1,968)"
    )
    parser.add_argument("--forward-images", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--epochs", type=int, default=3, help="epochs per loader row (first fills the cache)"
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    size = (args.image_size, args.image_size)
    elpv_arrays("4class", channels=1)  # read the package's PNGs once, outside the timings
    rows = loader_rows(args.limit, size, args.batch_size, args.epochs)
    rows.append(forward_row(args.forward_images, size, args.batch_size))
    print(f"{'what':<52} {'images':>7} {'seconds':>8} {'images/s':>9}")
    for row in rows:
        numbers = f"{row['images']:>7} {row['seconds']:>8.2f} {row['images_per_s']:>9.1f}"
        print(f"{row['what']:<52} {numbers}")
    result = {
        "benchmark": "data_throughput",
        "dataset": "elpv 4class train split",
        "image_size": list(size),
        "batch_size": args.batch_size,
        "limit": args.limit,
        "rows": rows,
        "loader_over_forward": rows[1]["images_per_s"] / rows[-1]["images_per_s"],
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
        },
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    print(f"cached loader / forward = {result['loader_over_forward']:.1f}x")
    atomic_write_bytes(args.output, (json.dumps(result, indent=2) + "\n").encode())
    print(f"wrote {args.output}")
    return result


if __name__ == "__main__":
    main()
