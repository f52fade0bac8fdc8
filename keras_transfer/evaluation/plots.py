"""PNG plots people would rather look at than read: learning curves, confusion matrices,
reliability diagrams, confidently wrong examples, regression fits and search results."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from keras_transfer.utils.files import atomic_write_bytes


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


def plot_reliability_diagram(calibration: Mapping, path: str | Path,
                             title: str = "Calibration") -> Path:
    """A reliability diagram: accuracy against confidence per bin (the diagonal is perfect
    calibration), gaps shaded, and how many predictions fall in each bin underneath.

    `calibration` is the ``"calibration"`` entry of an evaluation report.

    Example:
    >>> import tempfile, pathlib
    >>> from keras_transfer.evaluation.classification import calibration
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "reliability.png"
    >>> plot_reliability_diagram(calibration([0.2, 0.9, 0.7], [0, 1, 0], 5), p).exists()
    True
    """
    plt = _figure()
    bins = calibration["bins"]
    width = 1.0 / max(len(bins), 1)
    centers = np.array([(b["lower"] + b["upper"]) / 2 for b in bins])
    filled = np.array([b["count"] > 0 for b in bins])
    accuracy = np.array([b["accuracy"] or 0.0 for b in bins])
    confidence = np.array([b["confidence"] if b["confidence"] is not None else c
                           for b, c in zip(bins, centers)])
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5, 6), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], "--", color="grey", lw=1, label="perfectly calibrated")
    top.bar(centers[filled], accuracy[filled], width=width * 0.95, color="tab:blue",
            edgecolor="white", label="accuracy")
    top.bar(centers[filled], (confidence - accuracy)[filled], bottom=accuracy[filled],
            width=width * 0.95, color="tab:red", alpha=0.3, label="gap to confidence")
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy (fraction positive)")
    top.set_title(f"{title}: ECE {calibration['ece']:.3f}")
    top.legend(fontsize=8, loc="upper left")
    bottom.bar(centers, [b["count"] for b in bins], width=width * 0.95, color="grey")
    bottom.set_xlim(0, 1)
    bottom.set_xlabel("confidence")
    bottom.set_ylabel("count")
    return _save(fig, path)


def plot_confidently_wrong(examples: Sequence, rows: Sequence[Mapping], path: str | Path,
                           columns: int = 4, title: str = "Most confidently wrong") -> Path:
    """A grid of the most confidently wrong examples, each titled true → predicted (confidence).

    `examples` are images (H, W, C arrays in [0, 255]) or texts, `rows` the matching
    ``report["confidently_wrong"]`` entries; entries without a displayable input are skipped.
    The evaluation also draws their Grad-CAM overlays with it (`title` says so).

    Example:
    >>> import tempfile, pathlib, numpy as np
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "wrong.png"
    >>> row = {"index": 3, "label": "a", "predicted": "b", "confidence": 0.9}
    >>> plot_confidently_wrong([np.zeros((8, 8, 3))], [row], p).exists()
    True
    """
    plt = _figure()
    pairs = [(e, r) for e, r in zip(examples, rows) if e is not None] or [(None, None)]
    columns = min(columns, len(pairs))
    count_rows = -(-len(pairs) // columns)
    fig, axes = plt.subplots(count_rows, columns, figsize=(3.0 * columns, 2.9 * count_rows),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (example, row) in zip(axes.flat, pairs):
        if row is None:
            ax.text(0.5, 0.5, "no wrong predictions", ha="center", va="center")
            continue
        if isinstance(example, str):
            text = example if len(example) <= 240 else example[:237] + "…"
            ax.text(0, 1, text, va="top", ha="left", wrap=True, fontsize=7)
        else:
            image = np.clip(np.asarray(example, np.float64), 0, 255) / 255.0
            ax.imshow(image[..., 0] if image.shape[-1] == 1 else image,
                      cmap="gray" if image.shape[-1] == 1 else None)
        ax.set_title(f"#{row['index']}: {row['label']} → {row['predicted']}\n"
                     f"confidence {row['confidence']:.2f}", fontsize=7)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def plot_regression(targets: np.ndarray, predictions: np.ndarray, path: str | Path,
                    title: str = "") -> Path:
    """Predicted against true values (one panel per target), with the identity line.

    Example:
    >>> import tempfile, pathlib, numpy as np
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "pred.png"
    >>> plot_regression(np.arange(4.0), np.arange(4.0) + 0.1, p).exists()
    True
    """
    plt = _figure()
    targets = np.asarray(targets, np.float64).reshape(len(targets), -1)
    predictions = np.asarray(predictions, np.float64).reshape(targets.shape)
    count = targets.shape[1]
    fig, axes = plt.subplots(1, count, figsize=(4.5 * count, 4), squeeze=False)
    for i, ax in enumerate(axes[0]):
        low = min(targets[:, i].min(), predictions[:, i].min())
        high = max(targets[:, i].max(), predictions[:, i].max())
        ax.plot([low, high], [low, high], "--", color="grey", lw=1)
        ax.scatter(targets[:, i], predictions[:, i], s=8, alpha=0.6)
        ax.set_xlabel("true")
        ax.set_ylabel("predicted")
        ax.set_title(f"{title} target {i}".strip())
        ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_search_results(rows: Sequence[Mapping], path: str | Path, objective: str = "score",
                        parameter: str = "learning_rate",
                        baseline: tuple[str, float] | None = None) -> Path:
    """Hyperparameter search results: each trial's score in run order with the best so far, and
    the score against `parameter` (log scale), coloured by recipe; `baseline` is a
    ``(label, score)`` drawn as a horizontal line (e.g. the untuned default).

    `rows` are the trial rows of a `TuneResult` (keys ``trial``, ``score``, ``recipe`` and the
    hyperparameters); failed trials (score None) are left out.

    Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "search.png"
    >>> rows = [{"trial": 0, "score": 0.5, "learning_rate": 1e-3, "recipe": "feature_extraction"},
    ...         {"trial": 1, "score": 0.7, "learning_rate": 1e-2, "recipe": "fine_tune"}]
    >>> plot_search_results(rows, p).exists()
    True
    """
    plt = _figure()
    done = [r for r in rows if r.get("score") is not None]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    order = np.arange(1, len(done) + 1)
    scores = np.array([r["score"] for r in done], np.float64)
    recipes = sorted({str(r.get("recipe", "")) for r in done})
    colours = {name: f"C{i}" for i, name in enumerate(recipes)}
    for name in recipes:
        chosen = [i for i, r in enumerate(done) if str(r.get("recipe", "")) == name]
        left.scatter(order[chosen], scores[chosen], color=colours[name], label=name or "trial")
        values = [done[i].get(parameter) for i in chosen]
        keep = [i for i, v in zip(chosen, values) if isinstance(v, (int, float)) and v > 0]
        right.scatter([done[i][parameter] for i in keep], scores[keep], color=colours[name],
                      label=name or "trial")
    if len(done):
        left.step(order, np.maximum.accumulate(scores), where="post", color="black", lw=1,
                  label="best so far")
    if baseline is not None:
        for ax in (left, right):
            ax.axhline(baseline[1], color="grey", ls="--", lw=1, label=baseline[0])
    left.set_xlabel("trial (run order)")
    left.set_ylabel(objective)
    left.set_title("Search progress")
    left.legend(fontsize=8)
    right.set_xscale("log")
    right.set_xlabel(parameter)
    right.set_ylabel(objective)
    right.set_title(f"{objective} against {parameter}")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_accuracy_latency(points: Mapping[str, Mapping[str, tuple[float, float]]],
                          path: str | Path, *, fronts: Mapping[str, Sequence[str]] | None = None,
                          recommended: str | None = None, rank_by: str | None = None,
                          title: str = "Accuracy against latency") -> Path:
    """Test accuracy (y) against TFLite latency per image (x), one panel per file kind, one
    labelled marker per backbone.

    `points` maps a file kind (``"float32"``, ``"int8"``) to ``{backbone: (accuracy, latency in
    ms)}``; `fronts` maps the same kinds to the Pareto front's backbones, fastest first (drawn
    connected); `recommended` is circled in the `rank_by` panel (default: the first kind). An
    x axis turns logarithmic past a 10x spread.

    Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "comparison.png"
    >>> points = {"float32": {"a": (0.80, 10.0), "b": (0.85, 20.0)},
    ...           "int8": {"a": (0.79, 8.0), "b": (0.84, 15.0)}}
    >>> plot_accuracy_latency(points, p, fronts={"float32": ["a", "b"]}, recommended="b",
    ...                       rank_by="float32").exists()
    True
    """
    from matplotlib.ticker import FormatStrFormatter

    plt = _figure()
    kinds = list(points)
    fig, axes = plt.subplots(1, len(kinds), figsize=(6 * len(kinds), 4.8), sharey=True,
                             squeeze=False)
    for i, (ax, kind) in enumerate(zip(axes[0], kinds)):
        named, colour = points[kind], f"C{i}"
        for name, (accuracy, latency) in named.items():
            ax.scatter(latency, 100 * accuracy, color=colour, s=45, zorder=3)
            ax.annotate(name, (latency, 100 * accuracy), textcoords="offset points",
                        xytext=(6, 4), fontsize=8)
            if name == recommended and kind == (rank_by or kinds[0]):
                ax.scatter(latency, 100 * accuracy, s=260, facecolors="none", zorder=2,
                           edgecolors="black", linewidths=1.2, label="recommended")
        front = [name for name in (fronts or {}).get(kind, ()) if name in named]
        if front:
            ax.plot([named[name][1] for name in front], [100 * named[name][0] for name in front],
                    "--", color=colour, lw=1.2, zorder=1, label="Pareto front")
        latencies = [latency for _, latency in named.values()]
        if latencies and max(latencies) > 10 * max(min(latencies), 1e-9):
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
            ax.xaxis.set_minor_formatter(FormatStrFormatter("%g"))
        ax.set_xlabel(f"{kind} TFLite latency per image (ms, batch 1)")
        ax.set_title(f"{kind} .tflite")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="best")
    axes[0][0].set_ylabel("test accuracy (%)")
    fig.suptitle(title)
    return _save(fig, path)
