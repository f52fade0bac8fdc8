"""An orientation-sensitive image folder from scikit-learn's bundled digits (offline).

`build_digits_folder()` writes the 1,797 8x8 grayscale digits of `sklearn.datasets.load_digits`
as ``<root>/<class>/<index>.png`` (class folders "0".."9"), once, atomically: a temporary
folder beside ``<root>`` is filled, then renamed into place, so a crashed or concurrent build
never leaves a half-written folder that a training job would read.

Orientation carries the class here (a mirrored 6 or 9 changes or loses its meaning, a flipped
2 or 5 is no digit at all), which is the point: a recipe that flips such images blindly pays
for it.

    python bench/digits_folder.py [ROOT]     # prints the folder (default: the bench cache)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

NUM_IMAGES = 1797
# Native 8x8, not upscaled: the PNGs then hold exactly scikit-learn's pixels (0..16 scaled to
# 0..255), the pixel baselines read them back through the job's loader at 8x8 with no
# resampling at all, and the training job resizes to its own image_size anyway (a nearest
# upscale to 32x32 first would only add block edges for its bilinear resize to smear).
IMAGE_SIZE = 8


def default_root() -> Path:
    """``<keras-transfer cache>/bench/digits`` (``$KERAS_TRANSFER_CACHE`` is honoured)."""
    from keras_transfer.weights.cache import cache_dir

    return cache_dir("bench") / "digits"


def _complete(root: Path) -> bool:
    """A finished folder: ten class folders holding all 1,797 PNGs."""
    if not root.is_dir():
        return False
    folders = [root / str(label) for label in range(10)]
    return (all(f.is_dir() for f in folders)
            and sum(len(list(f.glob("*.png"))) for f in folders) == NUM_IMAGES)


def digits_pixels() -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (1797, 8, 8) in 0..255, int labels (1797,)) from scikit-learn."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    return images, digits.target.astype(np.int64)


def build_digits_folder(root: str | Path | None = None) -> Path:
    """The digits as a folder of class folders; built on first use, reused afterwards.

    Example:
    >>> import tempfile, pathlib
    >>> root = build_digits_folder(pathlib.Path(tempfile.mkdtemp()) / "digits")
    >>> sorted(p.name for p in root.iterdir())[:3], len(list(root.glob("*/*.png")))
    (['0', '1', '2'], 1797)
    """
    from PIL import Image

    from keras_transfer.utils.files import atomic_directory

    root = Path(root) if root is not None else default_root()
    if _complete(root):
        return root
    images, labels = digits_pixels()
    # keep_existing: a concurrent build that finished first wins; ours is dropped.
    with atomic_directory(root, keep_existing=_complete) as tmp:
        for label in range(10):
            (tmp / str(label)).mkdir()
        for index, (image, label) in enumerate(zip(images, labels)):
            Image.fromarray(image).save(tmp / str(label) / f"{index}.png")
    return root


if __name__ == "__main__":
    print(build_digits_folder(sys.argv[1] if len(sys.argv) > 1 else None))
