"""Is the input pipeline fast enough to feed a backbone? ELPV loader vs raw forward speed.

Measures images/s through the ELPV pipeline (resize to 224x224, uint8 cache, shuffle, batch 32,
float RGB, prefetch): the first epoch (decode/resize, fills the cache), later epochs (from the
cache) and later epochs with the default augmentation; then the ImageNet EfficientNet-Lite0
backbone (the offline weights) forward on tensors already in memory, and the same forward fed by
the loader. ``fed / preloaded`` near 1 means the pipeline is not the bottleneck (target >= 0.9).

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

import keras_transfer as kt  # noqa: E402

from keras_transfer.data import augmentation, elpv_arrays, from_arrays, load_elpv  # noqa: E402
from keras_transfer.utils.files import atomic_write_bytes  # noqa: E402

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


AUGMENT_NAMES = {"none": "", "flips": " + flips (main job)", "default": " + default augmentation"}


def _kind(augment) -> str:
    return "none" if augment is False else "default" if augment is True else "flips"


def lite0_forward(image_size):
    """The ImageNet Lite0 backbone (offline weights) with its pooled output, as one tf.function."""
    model = kt.build_backbone("efficientnet_lite0", input_shape=(*image_size, 3))
    return tf.function(lambda x: model(x, training=False), jit_compile=False)


def forward_rows(
    limit: int | None, images: int, image_size, batch_size: int, rounds: int = 4
) -> list[dict]:
    """Lite0 forward on a preloaded batch vs fed by the cached loader (none / flips / default).

    The variants are timed in alternating rounds, so load from other processes on a shared
    machine falls on all of them alike and the ratios stay fair.
    """
    forward = lite0_forward(image_size)
    preloaded = tf.random.uniform((batch_size, *image_size, 3), 0, 255)
    flips = augmentation(image_size, flip="horizontal_and_vertical", rotation=0, zoom=0, contrast=0)
    feeds = {"preloaded": None}
    for augment in (False, flips, True):
        train = elpv_train_split(limit, image_size, batch_size, augment)
        timed_epoch(train)  # fill the cache
        feeds[_kind(augment)] = iter(train.repeat())
    steps = max(images // (batch_size * rounds), 1)
    totals = {name: [0, 0.0] for name in feeds}
    for name, feed in feeds.items():  # trace and warm up every variant
        forward(preloaded if feed is None else next(feed)[0]).numpy()
    for _ in range(rounds):
        for name, feed in feeds.items():
            start = time.perf_counter()
            for _ in range(steps):
                x = preloaded if feed is None else next(feed)[0]
                forward(x).numpy()
                totals[name][0] += int(x.shape[0])
            totals[name][1] += time.perf_counter() - start
    rows = []
    for name, (count, seconds) in totals.items():
        what = ("Lite0 forward, preloaded tensors" if name == "preloaded"
                else "Lite0 forward fed by the cached loader" + AUGMENT_NAMES[name])
        rows.append({"what": what, "images": count, "seconds": seconds,
                     "images_per_s": count / seconds})
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--limit", type=int, default=None, help="ELPV train cells to use (default: all 1,968)"
    )
    parser.add_argument("--forward-images", type=int, default=512)
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
    rows.extend(forward_rows(args.limit, args.forward_images, size, args.batch_size))
    print(f"{'what':<66} {'images':>7} {'seconds':>8} {'images/s':>9}")
    for row in rows:
        numbers = f"{row['images']:>7} {row['seconds']:>8.2f} {row['images_per_s']:>9.1f}"
        print(f"{row['what']:<66} {numbers}")
    result = {
        "benchmark": "data_throughput",
        "dataset": "elpv 4class train split",
        "image_size": list(size),
        "batch_size": args.batch_size,
        "limit": args.limit,
        "rows": rows,
        "loader_over_forward": rows[1]["images_per_s"] / rows[3]["images_per_s"],
        "fed_over_preloaded": rows[4]["images_per_s"] / rows[3]["images_per_s"],
        "fed_flips_over_preloaded": rows[5]["images_per_s"] / rows[3]["images_per_s"],
        "fed_default_augmentation_over_preloaded": rows[6]["images_per_s"] / rows[3]["images_per_s"],
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
    print(f"cached loader alone / Lite0 forward = {result['loader_over_forward']:.1f}x")
    print(f"Lite0 fed by the loader / preloaded = {result['fed_over_preloaded']:.2f}x "
          f"(+ flips {result['fed_flips_over_preloaded']:.2f}x, + default augmentation "
          f"{result['fed_default_augmentation_over_preloaded']:.2f}x; target >= 0.9)")
    atomic_write_bytes(args.output, (json.dumps(result, indent=2) + "\n").encode())
    print(f"wrote {args.output}")
    return result


if __name__ == "__main__":
    main()
