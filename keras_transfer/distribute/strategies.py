"""Strategies: pick one by name (one per name and process), batch sizes and learning-rate scaling."""

from __future__ import annotations

import contextlib
import json
import math
import os
from typing import Iterator, Sequence

import keras
import tensorflow as tf

from keras_transfer.compat import keras_trainer
from keras_transfer.errors import BadInputError, KerasTransferError

STRATEGIES = ("default", "auto", "mirrored", "multi_worker", "tpu", "one_device")


LR_RULES = ("linear", "sqrt")


_CREATED: dict[tuple, tf.distribute.Strategy] = {}


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
    return _CREATED[key]


@contextlib.contextmanager
def keras_fit_fixes(strategy: tf.distribute.Strategy | None) -> Iterator[bool]:
    """Runs the block with Keras' TensorFlow trainer fixed for `strategy`; yields whether the
    fixes are on.

    Keras 3 (up to at least 3.15) fails inside `fit` under MultiWorkerMirroredStrategy
    (keras-team/keras#20585), and under MirroredStrategy when the first batch does not split
    evenly over the replicas (`keras_transfer.compat.keras_trainer` has the details). With
    `strategy` None or of one replica nothing changes; otherwise the fixes hold until the block
    exits. `training_scope` (so every recipe) trains inside one; a `fit` of your own on a model
    built in a multi-replica ``strategy.scope()`` needs one too.

    Example:
    >>> with keras_fit_fixes(resolve_strategy("one_device", devices=["/cpu:0"])) as fixed:
    ...     pass  # model.fit(...) here
    >>> fixed  # one replica: Keras' own trainer
    False
    """
    if strategy is None or strategy.num_replicas_in_sync == 1:
        yield False
        return
    with keras_trainer.distributed_fit_fixes(_is_multi_worker) as no_op_reason:
        yield no_op_reason is None


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
