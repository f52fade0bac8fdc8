"""PNG of predicted (and optionally true) boxes on sample images."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from keras_transfer.evaluation.plots import _figure, _save


def plot_detections(
    images: Sequence[np.ndarray],
    detections: Sequence[Mapping[str, np.ndarray]],
    path: str | Path,
    *,
    class_names: Sequence[str] | None = None,
    ground_truth: Sequence[Mapping[str, np.ndarray]] | None = None,
    columns: int = 4,
) -> Path:
    """Draws detections (solid, labelled with class and score) and ground truth (dashed white)
    on a grid of images and writes a PNG.

    Example:
    >>> import tempfile, pathlib
    >>> det = [{"boxes": np.array([[2, 2, 20, 20]]), "scores": np.array([0.9]),
    ...         "classes": np.array([0])}]
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "det.png"
    >>> plot_detections([np.zeros((32, 32, 3))], det, p, class_names=["cat"]).exists()
    True
    """
    plt = _figure()
    from matplotlib.patches import Rectangle

    count = len(images)
    columns = max(1, min(columns, count))
    rows = -(-count // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3 * columns, 3 * rows), squeeze=False)
    colours = plt.get_cmap("tab10")
    for index, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if index >= count:
            continue
        ax.imshow(np.clip(np.asarray(images[index]), 0, 255).astype(np.uint8))
        if ground_truth is not None:
            for box in np.asarray(ground_truth[index]["boxes"]).reshape(-1, 4):
                ax.add_patch(Rectangle(box[:2], box[2] - box[0], box[3] - box[1], fill=False,
                                       ec="white", ls="--", lw=1))
        det = detections[index]
        for box, score, cls in zip(np.asarray(det["boxes"]).reshape(-1, 4), det["scores"],
                                   det["classes"]):
            colour = colours(int(cls) % 10)
            ax.add_patch(Rectangle(box[:2], box[2] - box[0], box[3] - box[1], fill=False,
                                   ec=colour, lw=1.5))
            name = class_names[int(cls)] if class_names is not None else str(int(cls))
            ax.text(box[0], box[1], f"{name} {float(score):.2f}", color="white", fontsize=7,
                    va="bottom", bbox=dict(facecolor=colour, alpha=0.7, pad=1, lw=0))
    return _save(fig, path)
