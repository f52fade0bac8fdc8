"""Who writes: the chief writes checkpoints, logs and exports; other workers write to temporary
folders that are deleted. `WorkerBackupAndRestore` lets every worker resume from the chief's backup."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import keras
import tensorflow as tf

from keras_transfer.distribute.strategies import _is_multi_worker, _worker_count
from keras_transfer.recipes.backup import AtomicBackupAndRestore

_TEMP_DIRS: set[str] = set()


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


class WorkerBackupAndRestore(AtomicBackupAndRestore):
    """`AtomicBackupAndRestore` for multi-worker training.

    Keras 3's callback lets every worker write (and at the end delete) the same files. Here every
    worker restores from the chief's `backup_dir` (which must be on storage all workers see:
    GCS, NFS…), only the chief writes, clears and deletes it, and the others write a throw-away
    copy. With a single worker it is exactly `AtomicBackupAndRestore`.

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

    def save_backup(self) -> None:
        """Writes the backup: the chief's in `backup_dir`, another worker's in its own folder.

        Example:
        >>> # called by Keras at each epoch end (or every `save_freq` batches) during `fit`
        """
        if self.writes_shared_backup:
            return super().save_backup()
        shared, self.backup_dir = self.backup_dir, self._own_dir
        try:
            super().save_backup()
        finally:
            self.backup_dir = shared

    def _start_clean(self, reason: str) -> None:
        if self.writes_shared_backup:  # the chief's backup is the chief's to clear
            super()._start_clean(reason)

    def on_train_end(self, logs=None):
        if self.writes_shared_backup:
            super().on_train_end(logs)
        else:
            release_worker_dir(self._own_dir)
