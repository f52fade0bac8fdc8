"""The callbacks every recipe turns on by default; each one can be switched off."""

from __future__ import annotations

import time
from pathlib import Path

import keras


def default_callbacks(
    run_dir: str | Path | None,
    *,
    monitor: str = "val_loss",
    tensorboard: bool = True,
    checkpoint: bool = True,
    early_stopping: int | None = 5,
    backup: bool = True,
    terminate_on_nan: bool = True,
    strategy=None,
    settings: dict | None = None,
) -> list[keras.callbacks.Callback]:
    """TensorBoard logs, best-model checkpoint, early stopping, BackupAndRestore, TerminateOnNaN.

    Everything is written under `run_dir` (``tensorboard/``, ``best.weights.h5`` (the best epoch's weights; no optimizer state, a third of a full save), ``backup/``);
    with `run_dir=None` only the in-memory callbacks are returned. The backup
    (`AtomicBackupAndRestore`) makes a killed run resume from its last completed epoch when
    started again with the same `run_dir`, the same model and the same `settings` (what the
    stage was run with); anything else starts the stage afresh, with a message.

    Under a multi-worker `strategy` only the chief writes under `run_dir`; the other workers
    write to temporary folders deleted when training ends, and every worker restores from the
    chief's ``backup/`` (so `run_dir` must be on storage all workers see).

    Example:
    >>> [type(c).__name__ for c in default_callbacks(None)]
    ['EarlyStopping', 'TerminateOnNaN']
    """
    callbacks: list[keras.callbacks.Callback] = []
    if run_dir is not None:
        from keras_transfer.distribute import RemoveWorkerDir, WorkerBackupAndRestore, worker_dir

        run_dir = Path(run_dir)
        own_dir = worker_dir(run_dir, strategy)  # run_dir, or a non-chief's temporary folder
        own_dir.mkdir(parents=True, exist_ok=True)
        if tensorboard:
            callbacks.append(keras.callbacks.TensorBoard(str(own_dir / "tensorboard")))
        if checkpoint:
            # Weights only: the optimizer's slots would triple it (272 MB for MiniLM-L6), and
            # the resumable state is the backup's; the model itself is the export's.
            callbacks.append(keras.callbacks.ModelCheckpoint(
                str(own_dir / "best.weights.h5"), monitor=monitor, save_best_only=True,
                save_weights_only=True))
        if backup:
            callbacks.append(WorkerBackupAndRestore(run_dir / "backup", strategy,
                                                    settings=settings))
        if own_dir != run_dir:
            callbacks.append(RemoveWorkerDir(own_dir))
    if early_stopping:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=monitor, patience=early_stopping, restore_best_weights=True))
    if terminate_on_nan:
        callbacks.append(keras.callbacks.TerminateOnNaN())
    return callbacks


class EpochTimer(keras.callbacks.Callback):
    """Records the wall time of each epoch in `logs["epoch_seconds"]` (and `self.seconds`)."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)
        if logs is not None:
            logs["epoch_seconds"] = self.seconds[-1]
