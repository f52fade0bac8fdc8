"""A narrow runtime fix of two Keras 3 bugs under multi-replica `tf.distribute` strategies.

Keras 3 (up to at least 3.15) fails inside `fit` under MultiWorkerMirroredStrategy
(keras-team/keras#20585), and under MirroredStrategy when the first batch does not split evenly
over the replicas. `resolve_strategy` installs this fix when it returns a strategy with several
replicas."""

from __future__ import annotations


import tensorflow as tf

from keras_transfer.distribute.strategies import _is_multi_worker

_PATCHED = False


def patch_keras_tf_trainer() -> None:
    """Fixes two places where Keras 3's TensorFlow trainer breaks under tf.distribute.

    1. ``fit`` first builds the model from one batch, averaging the whole ``(x, y)`` structure
       over the replicas with one ``strategy.reduce``: MultiWorkerMirroredStrategy rejects the
       structure (keras-team/keras#20585), and MirroredStrategy fails when the batch split
       unevenly (a dataset smaller than one global batch). Only shapes and dtypes matter there,
       so the first local replica's batch is used instead (what the average would have shaped).
    2. Under multi-worker strategies per-replica step results are reduced with
       ``strategy.reduce("MEAN", v, axis=0)``, which fails on scalar metrics; scalars are
       averaged across replicas with ``axis=None``.

    Without a strategy, or with one replica, everything takes Keras' own path.
    """
    global _PATCHED
    if _PATCHED:
        return
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original_build = tf_trainer.TensorFlowTrainer._maybe_symbolic_build
    original_reduce = tf_trainer.reduce_per_replica

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if strategy is None or iterator is None or strategy.num_replicas_in_sync == 1:
            return original_build(self, iterator=iterator, data_batch=data_batch)
        for _, _, batches in iterator:
            data_batch = next(batches)
            break
        data_batch = tf.nest.map_structure(
            lambda v: (strategy.experimental_local_results(v)[0]
                       if isinstance(v, tf.distribute.DistributedValues) else v), data_batch)
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and _is_multi_worker(strategy):
            return tf.nest.map_structure(
                lambda v: strategy.reduce("MEAN", v, axis=None if v.shape.rank == 0 else 0),
                values)
        return original_reduce(values, strategy, reduction)

    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build
    tf_trainer.reduce_per_replica = reduce_per_replica
    _PATCHED = True
