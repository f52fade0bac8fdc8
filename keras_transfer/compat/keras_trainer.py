"""Two fixes to Keras 3's TensorFlow trainer under multi-replica `tf.distribute` strategies,
applied only while a block of code runs (written for Keras 3.8–3.15).

Keras 3 (up to at least 3.15) fails inside `fit` under MultiWorkerMirroredStrategy
(keras-team/keras#20585), and under MirroredStrategy when the first batch does not split evenly
over the replicas:

1. ``fit`` first builds the model from one batch, averaging the whole ``(x, y)`` structure over
   the replicas with one ``strategy.reduce``: MultiWorkerMirroredStrategy rejects the structure,
   and MirroredStrategy fails when the batch split unevenly (a dataset smaller than one global
   batch). Only shapes and dtypes matter there, so the first local replica's batch is used
   instead (what the average would have shaped).
2. Under multi-worker strategies per-replica step results are reduced with
   ``strategy.reduce("MEAN", v, axis=0)``, which fails on scalar metrics; scalars are averaged
   across replicas with ``axis=None``.

`distributed_fit_fixes` replaces ``TensorFlowTrainer._maybe_symbolic_build`` and
``reduce_per_replica`` in ``keras.src.backend.tensorflow.trainer`` when the first such block is
entered and puts Keras' own back when the last one exits. Meanwhile they are process-wide (every
thread), but act only on models with a multi-replica strategy: anything else takes Keras' own
path. `check()` verifies what they replace before anything is replaced.
"""

from __future__ import annotations

import contextlib
import inspect
import threading
from types import ModuleType
from typing import Any, Callable, Iterator, Sequence

import keras
import tensorflow as tf

from keras_transfer.compat import incompatible

TRAINER_MODULE = "keras.src.backend.tensorflow.trainer"

_LOCK = threading.Lock()


class _Installed:
    """What is installed: how many blocks use it, and Keras' own functions to put back."""

    depth = 0
    originals: tuple[Any, Any] | None = None
    replacements: tuple[Any, Any] | None = None


def check() -> str | None:
    """None when the fixes apply to the installed Keras, or why they are a no-op here (another
    backend); raises `CompatError` when Keras changed what they replace.

    Example:
    >>> check() is None  # the TensorFlow backend
    True
    """
    backend = keras.backend.backend()
    if backend != "tensorflow":
        return f"Keras runs the {backend!r} backend; these fix its TensorFlow trainer only"
    trainer = _trainer_module()
    _expect_parameters(trainer.TensorFlowTrainer._maybe_symbolic_build,
                       ("self", "iterator", "data_batch"),
                       "TensorFlowTrainer._maybe_symbolic_build")
    _expect_parameters(trainer.reduce_per_replica, ("values", "strategy", "reduction"),
                       "reduce_per_replica")
    if not callable(getattr(trainer.TensorFlowTrainer, "_symbolic_build", None)):
        raise incompatible("keras_trainer", "TensorFlowTrainer._symbolic_build is gone")
    if not hasattr(keras.Sequential(), "_distribute_strategy"):
        raise incompatible("keras_trainer", "models have no `_distribute_strategy`")
    return None


def _trainer_module() -> ModuleType:
    try:
        from keras.src.backend.tensorflow import trainer
    except ImportError as error:
        raise incompatible("keras_trainer", f"no module {TRAINER_MODULE} ({error})") from error
    for name in ("TensorFlowTrainer", "reduce_per_replica"):
        if not hasattr(trainer, name):
            raise incompatible("keras_trainer", f"{TRAINER_MODULE} has no {name}")
    return trainer


def _expect_parameters(function: Callable, names: Sequence[str], what: str) -> None:
    found = tuple(inspect.signature(function).parameters)
    if found != tuple(names):
        raise incompatible("keras_trainer", f"{what} takes ({', '.join(found)}), not "
                           f"({', '.join(names)})")


@contextlib.contextmanager
def distributed_fit_fixes(
        is_multi_worker: Callable[[tf.distribute.Strategy], bool]) -> Iterator[str | None]:
    """While the block runs, Keras' TensorFlow trainer has the two fixes; yields None, or the
    reason they are a no-op here (`check`). Blocks may nest and run in several threads.

    `is_multi_worker(strategy)` says when step results are reduced across workers (fix 2).

    Example:
    >>> with distributed_fit_fixes(lambda strategy: False) as reason:
    ...     inside = installed()
    >>> reason is None, inside, installed()
    (True, True, False)
    """
    reason = check()
    if reason is not None:
        yield reason
        return
    _install(is_multi_worker)
    try:
        yield None
    finally:
        _uninstall()


def installed() -> bool:
    """True while Keras' TensorFlow trainer runs with the fixes (inside a fixes block).

    Example:
    >>> installed()
    False
    """
    if _Installed.replacements is None:
        return False
    build, reduce = _Installed.replacements
    trainer = _trainer_module()
    return (trainer.TensorFlowTrainer.__dict__.get("_maybe_symbolic_build") is build
            and trainer.reduce_per_replica is reduce)


def _install(is_multi_worker: Callable[[tf.distribute.Strategy], bool]) -> None:
    trainer = _trainer_module()
    with _LOCK:
        _Installed.depth += 1
        if _Installed.depth > 1:
            return
        build = trainer.TensorFlowTrainer.__dict__["_maybe_symbolic_build"]
        reduce = trainer.reduce_per_replica
        replacements = (_fixed_build(build), _fixed_reduce(reduce, is_multi_worker))
        _Installed.originals, _Installed.replacements = (build, reduce), replacements
        trainer.TensorFlowTrainer._maybe_symbolic_build, trainer.reduce_per_replica = replacements


def _uninstall() -> None:
    trainer = _trainer_module()
    with _LOCK:
        _Installed.depth -= 1
        if _Installed.depth > 0:
            return
        (build, reduce), (fixed_build, fixed_reduce) = _Installed.originals, _Installed.replacements
        # Keras' own go back, unless something else replaced ours meanwhile: theirs stays.
        if trainer.TensorFlowTrainer.__dict__.get("_maybe_symbolic_build") is fixed_build:
            trainer.TensorFlowTrainer._maybe_symbolic_build = build
        if trainer.reduce_per_replica is fixed_reduce:
            trainer.reduce_per_replica = reduce
        _Installed.originals = _Installed.replacements = None


def _fixed_build(original: Callable) -> Callable:
    """Fix 1: the model is built from the first local replica's batch, not an average."""

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if strategy is None or iterator is None or strategy.num_replicas_in_sync == 1:
            return original(self, iterator=iterator, data_batch=data_batch)
        for _, _, batches in iterator:
            data_batch = next(batches)
            break
        data_batch = tf.nest.map_structure(
            lambda v: (strategy.experimental_local_results(v)[0]
                       if isinstance(v, tf.distribute.DistributedValues) else v), data_batch)
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    return _maybe_symbolic_build


def _fixed_reduce(original: Callable,
                  is_multi_worker: Callable[[tf.distribute.Strategy], bool]) -> Callable:
    """Fix 2: across workers, scalars are averaged with ``axis=None``."""

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and is_multi_worker(strategy):
            return tf.nest.map_structure(
                lambda v: strategy.reduce("MEAN", v, axis=None if v.shape.rank == 0 else 0),
                values)
        return original(values, strategy, reduction)

    return reduce_per_replica
