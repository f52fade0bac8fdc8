"""Backbone features shared by the trials of a search, computed once per frozen configuration."""

from __future__ import annotations

import collections
import hashlib
from typing import Any, Callable, Hashable

import keras
import numpy as np


class FeatureStore:
    """Arrays computed once per key (a frozen configuration) and reused by every later trial.

    A key names everything the features depend on: the frozen part's weights (a digest) and the
    data settings. `computations` counts how often each key was computed (always 1) and `hits`
    how often it was reused, so a search can report (and tests check) the saving.

    Example:
    >>> store = FeatureStore()
    >>> store.get("a", lambda: 1) + store.get("a", lambda: 2)
    2
    >>> store.stats()
    {'frozen_configurations': 1, 'computations': 1, 'reuses': 1}
    """

    def __init__(self) -> None:
        self._values: dict[Hashable, Any] = {}
        self.computations: collections.Counter = collections.Counter()
        self.hits: collections.Counter = collections.Counter()

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The value of `key`, computing it with `compute()` the first time only."""
        if key in self._values:
            self.hits[key] += 1
        else:
            self._values[key] = compute()
            self.computations[key] += 1
        return self._values[key]

    def __contains__(self, key: Hashable) -> bool:
        return key in self._values

    def stats(self) -> dict[str, int]:
        """Distinct frozen configurations, feature computations and reuses so far."""
        return {"frozen_configurations": len(self._values),
                "computations": sum(self.computations.values()),
                "reuses": sum(self.hits.values())}

    def clear(self) -> None:
        """Drops every stored array (the counts stay)."""
        self._values.clear()


def weights_digest(model: keras.Model) -> str:
    """A digest of a model's weight values, in order (names are left out: they depend on how
    many models the session built before).

    Example:
    >>> import keras
    >>> a = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, kernel_initializer="ones")])
    >>> b = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, kernel_initializer="ones")])
    >>> weights_digest(a) == weights_digest(b)
    True
    """
    digest = hashlib.sha1(str(model.input_shape).encode())
    for weight in model.weights:
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(weight))
        digest.update(str(value.shape).encode())
        digest.update(value.tobytes())
    return digest.hexdigest()[:16]
