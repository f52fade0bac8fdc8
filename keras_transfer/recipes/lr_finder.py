"""Learning-rate range test (Smith 2015, fastai's `lr_find`): one short exponential sweep.

The model trains for a few mini-batches while the learning rate grows exponentially from
`min_lr` to `max_lr`; the smoothed loss against the learning rate shows where training is fast
and where it diverges. The model's weights and its optimizer are left exactly as they were.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Iterable

import keras
import numpy as np


@dataclasses.dataclass
class LRFinderResult:
    """The sweep: learning rates tried, losses (smoothed and raw) and the suggested rate.

    `suggestion` is the rate of steepest descent of the smoothed loss (before its minimum);
    `min_loss_learning_rate` the rate at the minimum, whose tenth is the other classic choice
    (and the suggestion when the curve has no descent to speak of).

    Example:
    >>> result = LRFinderResult([1e-3, 1e-2, 1e-1], [1.0, 0.5, 2.0], [1.0, 0.5, 2.0], 1e-2,
    ...                         1e-2, True)
    >>> result.suggestion
    0.01
    """

    learning_rates: list[float]
    losses: list[float]
    raw_losses: list[float]
    suggestion: float
    min_loss_learning_rate: float
    diverged: bool

    def plot(self, path: str | Path) -> Path:
        """Writes a PNG of the loss against the learning rate (log scale), suggestion marked.

        Example:
        >>> import tempfile, pathlib
        >>> result = LRFinderResult([1e-3, 1e-2, 1e-1], [1.0, 0.5, 2.0], [1.0, 0.6, 2.1],
        ...                         1e-2, 1e-2, True)
        >>> result.plot(pathlib.Path(tempfile.mkdtemp()) / "lr.png").exists()
        True
        """
        from keras_transfer.evaluation.plots import _figure, _save

        plt = _figure()
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(self.learning_rates, self.raw_losses, color="lightgrey", lw=1, label="loss")
        ax.plot(self.learning_rates, self.losses, lw=2, label="smoothed loss")
        best = int(np.argmin(np.abs(np.log(self.learning_rates) - math.log(self.suggestion))))
        ax.plot(self.suggestion, self.losses[best], "o", color="tab:red",
                label=f"suggestion {self.suggestion:.2e}")
        ax.set_xscale("log")
        finite = np.array([v for v in self.losses if np.isfinite(v)])
        if finite.size:  # keep a divergent tail from squashing the part that matters
            low, start = finite.min(), finite[0]
            top = min(finite.max(), start + (start - low)) if start > low else finite.max()
            if top > low:
                ax.set_ylim(low - 0.05 * (top - low), top + 0.05 * (top - low))
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        ax.set_title("Learning-rate range test")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
        return _save(fig, path)


def _with_learning_rate(config: Any, learning_rate: float) -> Any:
    """The optimizer config with every (nested, e.g. wrapped) learning rate set to a constant."""
    if isinstance(config, dict):
        return {k: learning_rate if k == "learning_rate" else _with_learning_rate(v, learning_rate)
                for k, v in config.items()}
    return config


def _batches(dataset: Iterable):
    while True:
        empty = True
        for batch in dataset:
            empty = False
            yield batch
        if empty:
            raise ValueError("find_learning_rate: the dataset yields no batches.")


def _suggest(learning_rates: np.ndarray, smoothed: np.ndarray,
             min_lr: float) -> tuple[float, float]:
    finite = np.isfinite(smoothed)
    lowest = int(np.nanargmin(np.where(finite, smoothed, np.inf)))
    min_loss_lr = float(learning_rates[lowest])
    fallback = max(min_loss_lr / 10.0, min_lr)
    if lowest < 2:  # no descent before the minimum: nothing to measure a slope on
        return fallback, min_loss_lr
    slope = np.gradient(smoothed[: lowest + 1], np.log(learning_rates[: lowest + 1]))
    steepest = int(np.argmin(slope))
    if not slope[steepest] < 0:
        return fallback, min_loss_lr
    return float(learning_rates[steepest]), min_loss_lr


def find_learning_rate(
    model: keras.Model,
    dataset: Iterable,
    *,
    min_lr: float = 1e-7,
    max_lr: float = 1.0,
    steps: int = 100,
    smoothing: float = 0.98,
    divergence: float = 4.0,
) -> LRFinderResult:
    """Sweeps the learning rate exponentially over `steps` mini-batches; restores the model.

    The compiled model trains one batch per learning rate (the dataset is cycled if short),
    with a constant-rate copy of its own optimizer (same class and settings, wrappers such as
    `DiscriminativeOptimizer` and `LossScaleOptimizer` included), so the optimizer you compiled
    with is untouched. The loss is smoothed by an exponential moving average (bias-corrected)
    and the sweep stops early once it exceeds `divergence` × its best value or is not finite.
    Afterwards every weight (BatchNorm statistics included) is restored bit for bit.

    Args:
        model: a compiled model.
        dataset: batches ``(x, y)`` or ``(x, y, sample_weight)``, e.g. a `tf.data.Dataset`.
        min_lr, max_lr: the range swept.
        steps: the number of mini-batches (and learning rates).
        smoothing: the moving-average factor of the loss (0 disables smoothing).
        divergence: stop when the smoothed loss exceeds this multiple of the best one.

    Example:
    >>> import numpy as np, tensorflow as tf
    >>> from keras_transfer import build_image_classifier
    >>> model = build_image_classifier("vgg16", num_classes=2, weights=None,
    ...                                input_shape=(32, 32, 3))
    >>> data = tf.data.Dataset.from_tensor_slices(
    ...     (np.random.uniform(0, 255, (8, 32, 32, 3)), np.arange(8) % 2)).batch(4)
    >>> result = find_learning_rate(model, data, min_lr=1e-5, max_lr=1e-1, steps=6)
    >>> 1e-5 <= result.suggestion <= 1e-1
    True
    """
    if not 0 < min_lr < max_lr:
        raise ValueError(f"min_lr={min_lr!r}, max_lr={max_lr!r}: expected 0 < min_lr < max_lr.")
    if steps < 2:
        raise ValueError(f"steps={steps!r}: expected at least 2.")
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing={smoothing!r}: expected a factor in [0, 1).")
    if getattr(model, "optimizer", None) is None or not getattr(model, "compiled", False):
        raise ValueError("find_learning_rate: compile the model first (loss and optimizer).")

    saved_weights = [np.array(keras.ops.convert_to_numpy(w), copy=True) for w in model.weights]
    original = model.optimizer
    sweep = type(original).from_config(_with_learning_rate(original.get_config(), float(min_lr)))
    rates = min_lr * (max_lr / min_lr) ** (np.arange(steps) / (steps - 1))

    learning_rates: list[float] = []
    raw: list[float] = []
    smoothed: list[float] = []
    average, best, diverged = 0.0, math.inf, False
    model.optimizer = sweep
    model.make_train_function(force=True)  # the traced step holds the optimizer it was traced with
    try:
        batches = _batches(dataset)
        for i, rate in enumerate(rates):
            sweep.learning_rate = float(rate)
            batch = next(batches)
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(
                tuple(batch) if isinstance(batch, (tuple, list)) else batch)
            logs = model.train_on_batch(x, y, sample_weight=sample_weight, return_dict=True)
            loss = float(logs["loss"])
            average = smoothing * average + (1.0 - smoothing) * loss
            value = average / (1.0 - smoothing ** (i + 1))
            learning_rates.append(float(rate))
            raw.append(loss)
            smoothed.append(value)
            if not math.isfinite(value) or value > divergence * best:
                diverged = True
                break
            best = min(best, value)
    finally:
        model.optimizer = original
        model.make_train_function(force=True)
        for weight, value in zip(model.weights, saved_weights):
            weight.assign(value)

    suggestion, min_loss_lr = _suggest(np.array(learning_rates), np.array(smoothed), min_lr)
    return LRFinderResult(learning_rates, smoothed, raw, suggestion, min_loss_lr, diverged)
