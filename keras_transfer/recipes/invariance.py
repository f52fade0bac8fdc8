"""Which flips and quarter turns keep the label: decided from the data, on cached features.

A head trained on the original training images classifies the validation images once as they
are and once per candidate transform. A transform the labels tolerate costs (almost) no
accuracy; one that turns a 6 into a 9 costs a lot. Only tolerated transforms are kept for
augmentation and test-time augmentation. The whole probe is a few forward passes over the
validation split and no training.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Sequence

import numpy as np

from keras_transfer.data.symmetry import GENERATORS, apply_view

# A transform may cost this much validation accuracy (or one standard error of the paired
# difference, whichever is larger) and still count as label-preserving: features of a flipped
# image differ a little even when the label does not.
TOLERANCE = 0.02


@dataclasses.dataclass
class SymmetryProbe:
    """The probe's verdict: kept generators, and per candidate the accuracy it measured."""

    kept: tuple[str, ...]
    baseline_accuracy: float
    candidates: dict[str, dict]
    num_examples: int

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        parts = [f"{name} {'kept' if c['kept'] else 'dropped'} ({c['accuracy']:.3f} vs "
                 f"{self.baseline_accuracy:.3f})" for name, c in self.candidates.items()]
        return "; ".join(parts) or "no candidate"


def paired_drop(correct: np.ndarray, correct_transformed: np.ndarray) -> tuple[float, float]:
    """Accuracy lost under a transform, and the standard error of that paired difference.

    Example:
    >>> drop, se = paired_drop(np.array([1, 1, 1, 0]), np.array([1, 0, 1, 1]))
    >>> drop, round(se, 3)
    (0.0, 0.354)
    """
    correct, transformed = correct.astype(bool), correct_transformed.astype(bool)
    n = max(len(correct), 1)
    lost, gained = int(np.sum(correct & ~transformed)), int(np.sum(~correct & transformed))
    return (lost - gained) / n, math.sqrt(lost + gained) / n


def probe_symmetries(
    predict_fn: Callable[[np.ndarray], np.ndarray],
    images: np.ndarray,
    labels: np.ndarray,
    *,
    candidates: Sequence[str] = tuple(GENERATORS),
    tolerance: float = TOLERANCE,
) -> SymmetryProbe:
    """Keeps each candidate transform whose accuracy drop stays within the tolerance.

    Args:
        predict_fn: images (N, H, W, C) → class probabilities (N, C); a model trained on
            untransformed images (e.g. the frozen backbone + the head trained on cached features).
        images, labels: a held-out split (validation), untransformed.
        candidates: names from `keras_transfer.data.symmetry.GENERATORS`; ``rot90`` is skipped
            for non-square images.
        tolerance: the largest accuracy drop still called label-preserving (a paired standard
            error larger than it is used instead, so a tiny split does not reject by chance).

    Example:
    >>> x = np.random.default_rng(0).uniform(size=(40, 4, 4, 1))
    >>> x[:20, :, :2] += 2.0; x[20:, :, 2:] += 2.0   # class = which half is bright
    >>> y = np.repeat([0, 1], 20)
    >>> def predict(images):
    ...     left = images[:, :, :2].mean(axis=(1, 2, 3)) > images[:, :, 2:].mean(axis=(1, 2, 3))
    ...     return np.stack([left, ~left], axis=1).astype(float)
    >>> probe = probe_symmetries(predict, x, y, candidates=("hflip", "vflip"))
    >>> probe.kept
    ('vflip',)
    """
    labels = np.asarray(labels).reshape(-1)
    correct = np.argmax(predict_fn(images), axis=-1) == labels
    baseline = float(np.mean(correct))
    results: dict[str, dict] = {}
    for name in candidates:
        view = GENERATORS[name]
        if view.turns % 2 and images.shape[1] != images.shape[2]:
            results[name] = {"kept": False, "accuracy": None, "reason": "non-square images"}
            continue
        transformed = np.asarray(apply_view(images, view))
        correct_t = np.argmax(predict_fn(transformed), axis=-1) == labels
        drop, se = paired_drop(correct, correct_t)
        allowed = max(tolerance, se)
        results[name] = {"kept": bool(drop <= allowed), "accuracy": round(float(np.mean(correct_t)), 4),
                         "drop": round(drop, 4), "allowed_drop": round(allowed, 4)}
    kept = tuple(name for name, result in results.items() if result["kept"])
    return SymmetryProbe(kept, round(baseline, 4), results, int(len(labels)))
