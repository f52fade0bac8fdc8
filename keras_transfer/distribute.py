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

Keras 3 (up to at least 3.15) fails inside `fit` under MultiWorkerMirroredStrategy
(keras-team/keras#20585), and under MirroredStrategy when the first batch does not split evenly
over the replicas; `resolve_strategy` installs a narrow fix when it returns a strategy with
several replicas (see `_patch_keras_tf_trainer`).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import keras
import numpy as np
import tensorflow as tf

from keras_transfer.errors import BadInputError, KerasTransferError

STRATEGIES = ("default", "auto", "mirrored", "multi_worker", "tpu", "one_device")
LR_RULES = ("linear", "sqrt")

_CREATED: dict[tuple, tf.distribute.Strategy] = {}
_TEMP_DIRS: set[str] = set()

# tf.data ops, by what they say about where the data comes from (see `shard_policy`).
_FILE_READERS = {"TFRecordDataset", "TFRecordDatasetV2", "TextLineDataset",
                 "FixedLengthRecordDataset", "FixedLengthRecordDatasetV2"}
_CACHES = {"CacheDataset", "CacheDatasetV2", "SnapshotDataset", "SnapshotDatasetV2",
           "LoadDataset"}
_SHARDED = {"ShardDataset"}


def resolve_strategy(
    strategy: str | tf.distribute.Strategy | None = "default",
    *,
    devices: Sequence[str] | None = None,
    tpu: str | None = None,
    timeout_seconds: float | None = None,
) -> tf.distribute.Strategy:
    """The `tf.distribute.Strategy` a name stands for (a strategy object is returned as is).

    - ``"default"`` / None: no distribution: TensorFlow's current strategy (the default one
      outside any ``strategy.scope()``).
    - ``"auto"``: ``multi_worker`` when ``TF_CONFIG`` names several tasks, ``tpu`` when a TPU is
      configured (``TPU_NAME``, ``COLAB_TPU_ADDR`` or a TPU VM), ``mirrored`` with two or more
      GPUs, else ``default``.
    - ``"mirrored"``: data parallel over `devices` (default: every local GPU, else the CPU).
    - ``"multi_worker"``: MultiWorkerMirroredStrategy; the cluster and this process's task come
      from ``TF_CONFIG``, exactly as TensorFlow reads it. Create it first thing in the program,
      before TensorFlow runs anything. `timeout_seconds` bounds each collective operation, so a
      lost worker ends the others with an error instead of a hang.
    - ``"tpu"``: TPUStrategy on `tpu` (a name or ``grpc://`` address; default: from the
      environment, ``"local"`` on a TPU VM).
    - ``"one_device"``: OneDeviceStrategy on ``devices[0]`` (default: the first GPU, else CPU).

    The same name gives the same strategy object for the life of the process (TensorFlow allows
    one multi-worker or TPU strategy per program).

    Example:
    >>> resolve_strategy("default").num_replicas_in_sync
    1
    >>> resolve_strategy("one_device", devices=["/cpu:0"]).extended.worker_devices
    ('/job:localhost/replica:0/task:0/device:CPU:0',)
    """
    if strategy is None:
        strategy = "default"
    if isinstance(strategy, tf.distribute.Strategy):
        if strategy.num_replicas_in_sync > 1:
            _patch_keras_tf_trainer()
        return strategy
    if not isinstance(strategy, str) or strategy not in STRATEGIES:
        raise BadInputError(f"strategy={strategy!r}: expected one of {', '.join(STRATEGIES)}.")
    if keras.backend.backend() != "tensorflow":
        raise KerasTransferError(
            f"strategy={strategy!r} uses tf.distribute, which needs the TensorFlow backend "
            f"(KERAS_BACKEND=tensorflow); this process runs {keras.backend.backend()!r}.")
    if strategy == "auto":
        strategy = auto_strategy_name()
    if strategy == "default":
        return tf.distribute.get_strategy()
    key = (strategy, tuple(devices or ()), tpu, timeout_seconds)
    if key not in _CREATED:
        _CREATED[key] = _create(strategy, devices, tpu, timeout_seconds)
        if _CREATED[key].num_replicas_in_sync > 1:
            _patch_keras_tf_trainer()
    return _CREATED[key]


def auto_strategy_name() -> str:
    """What ``strategy="auto"`` picks on this machine: ``multi_worker`` when ``TF_CONFIG`` names
    several workers, ``tpu`` when a TPU is configured, ``mirrored`` with two or more GPUs, else
    ``default``.

    Example:
    >>> auto_strategy_name() in STRATEGIES
    True
    """
    resolver = cluster_resolver_from_env()
    if resolver is not None and _worker_count(resolver.cluster_spec().as_dict()) > 1:
        return "multi_worker"
    if _tpu_address() is not None:
        return "tpu"
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return "mirrored"
    return "default"


def _create(name: str, devices, tpu, timeout_seconds) -> tf.distribute.Strategy:
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices=list(devices) if devices else None)
    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        device = devices[0] if devices else ("/gpu:0" if gpus else "/cpu:0")
        return tf.distribute.OneDeviceStrategy(device)
    if name == "multi_worker":
        cluster_resolver_from_env()  # a malformed TF_CONFIG fails here, with its name
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout_seconds)
        try:
            strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
        except RuntimeError as error:
            raise KerasTransferError(
                "strategy='multi_worker' must be created before TensorFlow runs anything: call "
                f"resolve_strategy('multi_worker') first thing in the program ({error})."
            ) from error
        return strategy
    address = tpu if tpu is not None else (_tpu_address() or "local")
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=address)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        raise KerasTransferError(
            f"strategy='tpu': no TPU found at {address!r} ({error}). "
            "In Colab choose Runtime > Change runtime type > TPU; elsewhere set TPU_NAME or pass "
            "tpu=<name or grpc://address>.") from error
    return tf.distribute.TPUStrategy(resolver)


def _tpu_address() -> str | None:
    if os.environ.get("TPU_NAME"):
        return os.environ["TPU_NAME"]
    if os.environ.get("COLAB_TPU_ADDR"):  # Colab's older TPU-node runtime
        return "grpc://" + os.environ["COLAB_TPU_ADDR"]
    if os.path.exists("/dev/accel0"):  # a TPU VM
        return "local"
    return None


def cluster_resolver_from_env() -> tf.distribute.cluster_resolver.TFConfigClusterResolver | None:
    """``TF_CONFIG`` parsed by TensorFlow's own resolver; None when it is unset or empty.

    Example:
    >>> import json, os
    >>> os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": ["a:1", "b:2"]},
    ...                                       "task": {"type": "worker", "index": 1}})
    >>> resolver = cluster_resolver_from_env()
    >>> resolver.task_type, resolver.task_id
    ('worker', 1)
    >>> del os.environ["TF_CONFIG"]
    """
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        return None
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise BadInputError(f"TF_CONFIG is not valid JSON ({error}): {raw[:200]!r}") from error
    cluster, task = config.get("cluster") or {}, config.get("task") or {}
    if cluster and (task.get("type") is None or task.get("index") is None):
        raise BadInputError(
            'TF_CONFIG has a "cluster" but no "task": {"type": ..., "index": ...} for this '
            f"process: {raw[:200]!r}")
    kind, index = task.get("type"), task.get("index")
    if cluster and (kind not in cluster or not 0 <= int(index) < len(cluster[kind])):
        raise BadInputError(
            f"TF_CONFIG task {kind}:{index} is not in its cluster {sorted(cluster)}: {raw[:200]!r}")
    return tf.distribute.cluster_resolver.TFConfigClusterResolver()


def _worker_count(cluster: dict) -> int:
    return len(cluster.get("chief", [])) + len(cluster.get("worker", []))


def _is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    return (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            and resolver is not None and _worker_count(resolver.cluster_spec().as_dict()) > 1)


@dataclass(frozen=True)
class WorkerInfo:
    """Where this process stands in the cluster: task, number of input pipelines, chief or not.

    Example:
    >>> WorkerInfo("worker", 1, 2, chief=False).num_workers
    2
    """

    task_type: str | None
    task_id: int
    num_workers: int
    chief: bool


def worker_info(strategy: tf.distribute.Strategy | None = None) -> WorkerInfo:
    """This process's task under `strategy` (default: the current strategy).

    Only a multi-worker strategy makes a process a non-chief: the chief is the ``chief`` task,
    else ``worker`` 0 (TensorFlow's rule). TPUStrategy counts one input pipeline per TPU host.

    Example:
    >>> worker_info()
    WorkerInfo(task_type=None, task_id=0, num_workers=1, chief=True)
    """
    strategy = strategy or tf.distribute.get_strategy()
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return WorkerInfo(None, 0, int(strategy.extended.num_hosts), True)
    if not _is_multi_worker(strategy):
        return WorkerInfo(None, 0, 1, True)
    resolver = strategy.cluster_resolver
    cluster = resolver.cluster_spec().as_dict()
    kind, index = resolver.task_type, int(resolver.task_id or 0)
    return WorkerInfo(kind, index, _worker_count(cluster), is_chief_task(cluster, kind, index))


def is_chief_task(cluster: dict, task_type: str | None, task_id: int) -> bool:
    """TensorFlow's rule: the ``chief`` task, else ``worker`` 0 when the cluster has no chief.

    Example:
    >>> is_chief_task({"worker": ["a:1", "b:2"]}, "worker", 1)
    False
    >>> is_chief_task({"chief": ["c:0"], "worker": ["a:1"]}, "chief", 0)
    True
    """
    if task_type is None:
        return True
    return task_type == "chief" or (task_type == "worker" and int(task_id) == 0
                                    and "chief" not in cluster)


def is_chief(strategy: tf.distribute.Strategy | None = None) -> bool:
    """True when this process writes the run's outputs (always, unless multi-worker).

    Example:
    >>> is_chief()
    True
    """
    return worker_info(strategy).chief


def worker_dir(path: str | os.PathLike, strategy: tf.distribute.Strategy | None = None) -> Path:
    """`path` on the chief; on any other worker a fresh temporary folder, deleted at exit.

    Every worker must run the same saving code (a save reads synchronised variables, which is
    a collective operation), so the others save too, somewhere nobody reads.

    Example:
    >>> str(worker_dir("runs/demo"))
    'runs/demo'
    """
    info = worker_info(strategy)
    if info.chief:
        return Path(path)
    temp = tempfile.mkdtemp(prefix=f"keras_transfer_{info.task_type}{info.task_id}_")
    _TEMP_DIRS.add(temp)
    return Path(temp)


def release_worker_dir(path: str | os.PathLike) -> None:
    """Deletes `path` if `worker_dir` made it as a non-chief's temporary folder; else nothing.

    Example:
    >>> release_worker_dir("runs/demo")  # the chief's folder is kept
    """
    if str(path) in _TEMP_DIRS:
        shutil.rmtree(path, ignore_errors=True)
        _TEMP_DIRS.discard(str(path))


@atexit.register
def _remove_temp_dirs() -> None:
    for path in list(_TEMP_DIRS):
        release_worker_dir(path)


@contextlib.contextmanager
def chief_output_dir(path: str | os.PathLike,
                     strategy: tf.distribute.Strategy | None = None) -> Iterator[Path]:
    """`worker_dir` as a context: a non-chief's temporary folder is deleted on leaving it.

    Example:
    >>> with chief_output_dir("exports/demo") as out:
    ...     str(out)
    'exports/demo'
    """
    target = worker_dir(path, strategy)
    try:
        yield target
    finally:
        release_worker_dir(target)


class RemoveWorkerDir(keras.callbacks.Callback):
    """Deletes a non-chief's temporary output folder when training ends (nothing on the chief).

    Example:
    >>> callbacks = [RemoveWorkerDir(worker_dir("runs/demo"))]  # last, after the writers
    """

    def __init__(self, path: str | os.PathLike):
        super().__init__()
        self.path = path

    def on_train_end(self, logs=None):
        release_worker_dir(self.path)


class WorkerBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` for multi-worker training.

    Keras 3's callback lets every worker write (and at the end delete) the same files. Here every
    worker restores from the chief's `backup_dir` (which must be on storage all workers see:
    GCS, NFS…), only the chief writes and deletes it, and the others write a throw-away copy.
    With a single worker it is exactly Keras' callback.

    Example:
    >>> import tempfile
    >>> callback = WorkerBackupAndRestore(tempfile.mkdtemp())
    >>> callback.writes_shared_backup
    True
    """

    def __init__(self, backup_dir: str | os.PathLike,
                 strategy: tf.distribute.Strategy | None = None, **kwargs: Any):
        super().__init__(str(backup_dir), **kwargs)
        own = worker_dir(backup_dir, strategy)
        self.writes_shared_backup = Path(own) == Path(backup_dir)
        self._own_dir = str(own)

    def _use(self, directory: str) -> None:
        # The paths Keras 3's BackupAndRestore.__init__ derives from backup_dir (same names).
        self.backup_dir = directory
        self._weights_path = os.path.join(directory, "latest.weights.h5")
        self._training_metadata_path = os.path.join(directory, "training_metadata.json")
        self._prev_weights_path = f"{self._weights_path}.bkp"
        self._prev_training_metadata_path = f"{self._training_metadata_path}.bkp"

    def _save_model(self):
        if self.writes_shared_backup:
            return super()._save_model()
        shared = self.backup_dir
        self._use(self._own_dir)
        try:
            super()._save_model()
        finally:
            self._use(shared)

    def on_train_end(self, logs=None):
        if self.writes_shared_backup:
            super().on_train_end(logs)
        else:
            release_worker_dir(self._own_dir)


def shard_policy(
    dataset: tf.data.Dataset,
    strategy: tf.distribute.Strategy | None = None,
    *,
    files: Sequence[str] | None = None,
    num_workers: int | None = None,
) -> tf.data.experimental.AutoShardPolicy:
    """The auto-shard policy `dataset` needs under `strategy`.

    - OFF with one input pipeline (nothing to shard), or when the pipeline already calls
      ``shard()`` itself (sharding again would drop data).
    - FILE when the source reads files (TFRecord, text lines, fixed-length records) and there
      are at least as many files as workers: each worker reads only its files.
    - DATA otherwise: in-memory arrays, generators, decoded image paths, anything cached
      (a cache file serves the whole dataset whatever the reader's files, so FILE would repeat
      data), or too few files (a worker would get none). Always correct; each worker reads
      everything and keeps its share.

    `files` names the files the source reads, when known (else they are found in the graph);
    `num_workers` overrides the strategy's number of input pipelines.

    Example:
    >>> ds = tf.data.Dataset.from_tensor_slices(np.arange(8)).batch(4)
    >>> shard_policy(ds).name  # one worker: nothing to shard
    'OFF'
    >>> shard_policy(ds, num_workers=2).name
    'DATA'
    """
    Policy = tf.data.experimental.AutoShardPolicy
    workers = num_workers if num_workers is not None else worker_info(strategy).num_workers
    if workers <= 1:
        return Policy.OFF
    ops, strings, patterns = _dataset_graph(dataset)
    if ops & _SHARDED:
        return Policy.OFF
    if not ops & _FILE_READERS or ops & _CACHES:
        return Policy.DATA
    if files is None:
        found = {s for s in strings if _looks_like_file(s)}
        for pattern in patterns:
            found.update(tf.io.gfile.glob(pattern))
        count = len(found)
    else:
        count = len(files)
    return Policy.FILE if count >= workers else Policy.DATA


def _looks_like_file(value: str) -> bool:
    return "://" in value or os.path.isfile(value)


def _dataset_graph(dataset: tf.data.Dataset) -> tuple[set[str], set[str], set[str]]:
    """(op types, string constants, list_files patterns) of a dataset's graph and functions."""
    serialized = dataset._as_serialized_graph(  # the graph tf.data's own auto-sharding rewrites
        external_state_policy=tf.data.experimental.ExternalStatePolicy.IGNORE)
    graph = tf.compat.v1.GraphDef.FromString(serialized.numpy())
    nodes = list(graph.node) + [n for f in graph.library.function for n in f.node_def]
    by_name = {n.name: n for n in nodes}
    ops = {n.op for n in nodes}

    def strings_of(node) -> list[str]:
        if node.op != "Const" or "value" not in node.attr:
            return []
        tensor = node.attr["value"].tensor
        if tensor.dtype != tf.string.as_datatype_enum:
            return []
        values = tf.io.parse_tensor(tensor.SerializeToString(), tf.string).numpy()
        return [v.decode("utf-8", "replace") for v in np.ravel(values)]

    strings = {s for n in nodes for s in strings_of(n)}
    patterns = {s for n in nodes if n.op == "MatchingFiles"
                for i in n.input if i.split(":")[0] in by_name
                for s in strings_of(by_name[i.split(":")[0]])}
    return ops, strings - patterns, patterns


def with_sharding(
    dataset: tf.data.Dataset | None,
    strategy: tf.distribute.Strategy | None = None,
    *,
    files: Sequence[str] | None = None,
) -> tf.data.Dataset | None:
    """`dataset` with the auto-shard policy of `shard_policy` set (None stays None).

    Example:
    >>> ds = with_sharding(tf.data.Dataset.range(4).batch(2))
    >>> ds.options().experimental_distribute.auto_shard_policy.name
    'OFF'
    """
    if dataset is None or not isinstance(dataset, tf.data.Dataset):
        return dataset
    options = tf.data.Options()
    policy = shard_policy(dataset, strategy, files=files)
    options.experimental_distribute.auto_shard_policy = policy
    return dataset.with_options(options)


def global_batch_size(per_replica: int, strategy: tf.distribute.Strategy | None = None) -> int:
    """The batch a step consumes over all replicas: ``per_replica × replicas in sync``.

    Example:
    >>> global_batch_size(32)
    32
    """
    if int(per_replica) < 1:
        raise BadInputError(f"batch_size must be >= 1; got {per_replica}.")
    return int(per_replica) * _replicas(strategy)


def scale_learning_rate(learning_rate: float, strategy: tf.distribute.Strategy | None = None,
                        rule: str | None = "linear") -> float:
    """The learning rate for the global batch: × replicas (``"linear"``, Goyal et al. 2017),
    × √replicas (``"sqrt"``, often better for Adam), or unchanged (None).

    Example:
    >>> scale_learning_rate(1e-3, rule=None)
    0.001
    """
    if rule is None:
        return float(learning_rate)
    if rule not in LR_RULES:
        raise BadInputError(f"scale_learning_rate={rule!r}: expected one of {LR_RULES} or None.")
    replicas = _replicas(strategy)
    return float(learning_rate) * (replicas if rule == "linear" else math.sqrt(replicas))


def _replicas(strategy: tf.distribute.Strategy | None) -> int:
    return int((strategy or tf.distribute.get_strategy()).num_replicas_in_sync)


def variables_in_scope(model: keras.Model, strategy: tf.distribute.Strategy) -> bool:
    """True when every variable of `model` was created under `strategy`'s scope.

    Example:
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> variables_in_scope(model, tf.distribute.get_strategy())
    True
    """
    return all(strategy.extended.variable_created_in_scope(v.value) for v in model.weights)


def copy_trainable_flags(source: keras.Model, target: keras.Model) -> None:
    """Gives `target`'s layers the `trainable` flags of `source`'s (same architecture).

    Example:
    >>> a = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> b = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> a.layers[0].trainable = False
    >>> copy_trainable_flags(a, b)
    >>> b.layers[0].trainable
    False
    """
    for a, b in zip(source._flatten_layers(include_self=False),
                    target._flatten_layers(include_self=False)):
        b.trainable = a.trainable


def clone_into(model: keras.Model, strategy: tf.distribute.Strategy | None) -> keras.Model:
    """A copy of `model` (architecture, weights, trainable flags) built under `strategy`'s scope;
    None builds it outside any strategy (a plain local model, e.g. to evaluate or export).

    Example:
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> copy = clone_into(model, None)
    >>> np.allclose(copy.get_weights()[0], model.get_weights()[0])
    True
    """
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        copy = keras.models.clone_model(model)
        copy_trainable_flags(model, copy)
        copy.set_weights(model.get_weights())
    return copy


def local_copy(model: keras.Model) -> keras.Model:
    """`model` itself when it is not distributed, else `clone_into(model, None)`.

    Evaluation and export want a plain model: under a strategy with several replicas,
    ``predict_on_batch`` returns one copy of the batch per replica.

    Example:
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> local_copy(model) is model
    True
    """
    if model.weights and isinstance(model.weights[0].value, tf.distribute.DistributedValues):
        return clone_into(model, None)
    return model


def local_predict(model: keras.Model) -> Callable[[Any], Any]:
    """``predict_on_batch`` that stays on this process and device under any strategy.

    Keras' ``predict_on_batch`` under a strategy with several replicas hands the whole batch to
    every replica and concatenates the copies; this calls the model directly instead.

    Example:
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> local_predict(model)(np.zeros((3, 2), "float32")).shape
    (3, 1)
    """
    strategy = getattr(model, "distribute_strategy", None)  # TensorFlow backend only
    if strategy is None or strategy.num_replicas_in_sync == 1:
        return model.predict_on_batch
    forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    return lambda x: keras.tree.map_structure(keras.ops.convert_to_numpy, forward(x))


@contextlib.contextmanager
def training_scope(model: keras.Model,
                   strategy: str | tf.distribute.Strategy | None) -> Iterator[keras.Model]:
    """Yields the model to train under `strategy`, inside its scope.

    That is `model` itself when its variables already belong to the strategy (it was built in
    ``strategy.scope()``), else a copy built in the scope; on a normal exit the copy's weights
    and trainable flags go back into `model`, so the caller's model is the trained one either
    way. With `strategy` None or ``"default"`` nothing changes (no scope is entered).

    Example:
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> with training_scope(model, "one_device") as net:
    ...     net.compile("sgd", "mse")
    ...     _ = net.fit(np.ones((4, 2)), np.ones((4, 1)), verbose=0)
    >>> net is model  # built outside the scope: trained as a copy, weights copied back
    False
    """
    strategy = resolve_strategy(strategy) if strategy is not None else None
    if strategy is None or (strategy is tf.distribute.get_strategy()
                            and not tf.distribute.has_strategy()):
        yield model  # no strategy, or TensorFlow's default one: plain Keras, no scope
        return
    with strategy.scope():
        net = model if variables_in_scope(model, strategy) else clone_into(model, strategy)
        yield net
    if net is not model:
        model.set_weights(net.get_weights())
        copy_trainable_flags(net, model)


_PATCHED = False


def _patch_keras_tf_trainer() -> None:
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
