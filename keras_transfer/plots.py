"""PNG plots people would rather look at than read: learning curves, confusion matrices."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from keras_transfer.weights.cache import atomic_write_bytes


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    _figure().close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def plot_learning_curves(stages: Sequence[tuple[str, Mapping[str, Sequence[float]]]],
                         path: str | Path) -> Path:
    """Loss and accuracy per epoch over all training stages (stage boundaries marked).

    Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "curves.png"
    >>> plot_learning_curves([("head", {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7]})], p).exists()
    True
    """
    plt = _figure()
    metrics = [m for m in ("loss", "accuracy") if any(m in logs for _, logs in stages)]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        start = 0
        for stage, logs in stages:
            n = len(logs.get(metric, []))
            epochs = np.arange(start + 1, start + n + 1)
            for key, style in ((metric, "-"), (f"val_{metric}", "--")):
                if key in logs:
                    ax.plot(epochs, logs[key], style, marker="o", ms=3, label=f"{stage} {key}")
            if start:
                ax.axvline(start + 0.5, color="grey", lw=0.8)
            start += n
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


def plot_confusion_matrix(matrix: Sequence[Sequence[int]], class_names: Sequence[str],
                          path: str | Path, title: str = "Confusion matrix") -> Path:
    """A confusion matrix with counts and row-normalised colours (true label on the rows).

    Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "cm.png"
    >>> plot_confusion_matrix([[3, 1], [0, 4]], ["a", "b"], p).exists()
    True
    """
    plt = _figure()
    matrix = np.asarray(matrix)
    rows = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, rows, out=np.zeros(matrix.shape), where=rows > 0)
    size = 1.2 + 0.9 * len(class_names)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center",
                color="white" if normalised[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(class_names)), class_names, rotation=30, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046, label="fraction of true class")
    return _save(fig, path)
