"""Distributed fine-tuning on `tf.distribute`: pick a strategy, shard the input, chief writes.

Everything here is TensorFlow's own machinery (MirroredStrategy, MultiWorkerMirroredStrategy,
TPUStrategy, tf.data auto-sharding, Keras' BackupAndRestore); this module only chooses and wires:

- `resolve_strategy(name)`: ``"default"`` (no distribution), ``"auto"``, ``"mirrored"`` (the GPUs
  of one machine), ``"multi_worker"`` (several machines; the cluster comes from ``TF_CONFIG``),
  ``"tpu"`` or ``"one_device"``. One strategy per name and process.
- `training_scope(model, strategy)`: the model, optimizer and metrics must be created inside the
  strategy's scope. A model built outside it is copied into it (weights and trainable flags) and
  the trained weights are copied back, so a recipe always gives the caller a correct result;
  building the model inside ``strategy.scope()`` in the first place skips the copy.
- `with_sharding(dataset, strategy)`: the auto-shard policy for each kind of source.
- `global_batch_size`, `scale_learning_rate`: batch sizes are per replica; the global batch is
  ``batch_size × replicas``, and the learning rate can follow it (linear or square-root rule).
- `is_chief`, `worker_dir`: only the chief writes checkpoints, TensorBoard logs and exports;
  the other workers write to temporary folders that are deleted (the TensorFlow pattern: every
  worker must still save, because reading synchronised variables is a collective operation).
- `WorkerBackupAndRestore`: fault tolerance; every worker restores from the chief's backup.

- `keras_fit_fixes(strategy)`: Keras 3 (up to at least 3.15) fails inside `fit` under
  MultiWorkerMirroredStrategy (keras-team/keras#20585), and under MirroredStrategy when the first
  batch does not split evenly over the replicas; a narrow fix of its TensorFlow trainer
  (`keras_transfer.compat.keras_trainer`) holds while this block runs. `training_scope` enters
  it, so every recipe has it; a `fit` of your own on a model built in a multi-replica scope
  needs it too.
"""

from keras_transfer.distribute.models import (
    clone_into,
    copy_trainable_flags,
    local_copy,
    local_predict,
    training_scope,
    variables_in_scope,
)
from keras_transfer.distribute.sharding import (
    shard_policy,
    with_sharding,
)
from keras_transfer.distribute.strategies import (
    LR_RULES,
    STRATEGIES,
    auto_strategy_name,
    cluster_resolver_from_env,
    global_batch_size,
    keras_fit_fixes,
    resolve_strategy,
    scale_learning_rate,
)
from keras_transfer.distribute.workers import (
    RemoveWorkerDir,
    WorkerBackupAndRestore,
    WorkerInfo,
    chief_output_dir,
    is_chief,
    is_chief_task,
    release_worker_dir,
    worker_dir,
    worker_info,
)

__all__ = [
    "LR_RULES",
    "RemoveWorkerDir",
    "STRATEGIES",
    "WorkerBackupAndRestore",
    "WorkerInfo",
    "auto_strategy_name",
    "chief_output_dir",
    "clone_into",
    "cluster_resolver_from_env",
    "copy_trainable_flags",
    "global_batch_size",
    "is_chief",
    "is_chief_task",
    "keras_fit_fixes",
    "local_copy",
    "local_predict",
    "release_worker_dir",
    "resolve_strategy",
    "scale_learning_rate",
    "shard_policy",
    "training_scope",
    "variables_in_scope",
    "with_sharding",
    "worker_dir",
    "worker_info",
]
