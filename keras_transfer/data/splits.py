"""Stratified, seeded train/validation/test splits and balanced class weights, for every source."""

from __future__ import annotations

from typing import Hashable, Sequence

import numpy as np

from keras_transfer.errors import BadInputError

DEFAULT_SEED = 1337


def stratified_holdout(
    strata: Sequence[Hashable], fraction: float, seed: int = DEFAULT_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Splits ``range(len(strata))`` into (kept, held_out), holding out each stratum in proportion.

    ``held_out`` has exactly ``round(len(strata) * fraction)`` items and every stratum gives
    floor or ceil of its proportional share. The same strata and seed always give the same split.

    Example:
    >>> kept, held = stratified_holdout(["a"] * 8 + ["b"] * 4, 0.25, seed=0)
    >>> len(kept), len(held)
    (9, 3)
    >>> sorted(["a" if i < 8 else "b" for i in held])
    ['a', 'a', 'b']
    """
    if not 0.0 <= fraction < 1.0:
        raise BadInputError(f"a split fraction must be in [0, 1); got {fraction}.")
    count = len(strata)
    if fraction == 0.0 or count == 0:
        return np.arange(count), np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    groups: dict[Hashable, list[int]] = {}
    for index, key in enumerate(strata):
        groups.setdefault(key, []).append(index)
    # Strata laid end to end (each shuffled), then systematic sampling every 1/fraction items:
    # the total is exact and each stratum gets its proportional share rounded up or down.
    order = np.concatenate([rng.permutation(np.asarray(g)) for g in groups.values()])
    positions = np.arange(count)
    take = np.floor((positions + 1) * fraction + 0.5) > np.floor(positions * fraction + 0.5)
    return np.sort(order[~take]), np.sort(order[take])


def split_indices(
    strata: Sequence[Hashable],
    *,
    validation_split: float = 0.0,
    test_split: float = 0.0,
    seed: int = DEFAULT_SEED,
) -> dict[str, np.ndarray]:
    """Stratified train/validation/test indices.

    ``test_split`` is a fraction of all examples; ``validation_split`` is a fraction of the
    examples left after the test split (so with no test split it is a fraction of all).
    Splits with fraction 0 are absent from the result.

    Example:
    >>> parts = split_indices([0, 1] * 50, validation_split=0.2, test_split=0.2, seed=1)
    >>> {name: len(index) for name, index in parts.items()}
    {'train': 64, 'validation': 16, 'test': 20}
    """
    strata = list(strata)
    rest, test = stratified_holdout(strata, test_split, seed)
    kept, validation = stratified_holdout([strata[i] for i in rest], validation_split, seed + 1)
    parts = {"train": rest[kept]}
    if validation_split:
        parts["validation"] = rest[validation]
    if test_split:
        parts["test"] = test
    return parts


def stratum_keys(labels: np.ndarray) -> list[Hashable]:
    """Per-example keys to stratify on: the class id, or the label set for multi-hot labels.

    Example:
    >>> stratum_keys(np.array([[1, 0, 1], [0, 1, 0]], dtype="float32"))
    [(0, 2), (1,)]
    """
    labels = np.asarray(labels)
    if labels.ndim == 1:
        return labels.tolist()
    return [tuple(np.flatnonzero(row > 0.5).tolist()) for row in labels]


def balanced_class_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """``n / (num_classes * n_c)`` per class (sklearn's "balanced"), for ``fit(class_weight=...)``.

    A class with no example gets weight 1.0 (it never contributes to the loss anyway).

    Example:
    >>> balanced_class_weights(np.array([0, 0, 0, 1]), 2)
    {0: 0.6666666666666666, 1: 2.0}
    """
    labels = np.asarray(labels).astype(np.int64)
    counts = np.bincount(labels, minlength=num_classes)
    total = float(len(labels))
    return {
        c: (total / (num_classes * int(counts[c])) if counts[c] else 1.0)
        for c in range(num_classes)
    }
