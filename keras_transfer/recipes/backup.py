"""A training backup that a kill at any moment cannot corrupt, and that never restores the
weights of a different model or run."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import keras
import numpy as np

from keras_transfer.compat.keras_internals import (
    BackupAndRestoreBase,
    set_initial_epoch,
)

STATE_FILE = "state.json"
_WEIGHTS_GLOB = "*.weights.h5"


def has_backup(backup_dir: str | os.PathLike) -> bool:
    """True when `backup_dir` holds a complete backup (its state file names existing weights).

    Example:
    >>> has_backup("/nonexistent/backup")
    False
    """
    state = _read_state(Path(backup_dir))
    return state is not None and (Path(backup_dir) / str(state.get("weights"))).is_file()


def model_fingerprint(model: keras.Model) -> str:
    """A hash of what a backup must match: every variable's shape and dtype, in order.

    Which blocks train is not part of it: a schedule such as `GradualUnfreezing` changes that
    from epoch to epoch and sets it again on resume; a stage with other unfrozen blocks has
    other settings, which the backup's state also records.

    Example:
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> wider = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)])
    >>> model_fingerprint(model) == model_fingerprint(wider)
    False
    """
    rows = [(tuple(v.shape), str(v.dtype)) for v in model.weights]
    return hashlib.sha1(repr(rows).encode()).hexdigest()[:16]


def _read_state(directory: Path) -> dict | None:
    try:
        state = json.loads((directory / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def _fsync(path: Path) -> None:
    # A SIGKILL keeps what reached the page cache; fsync also covers a power cut.
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


class AtomicBackupAndRestore(BackupAndRestoreBase):
    """`keras.callbacks.BackupAndRestore` whose backup survives a kill at any moment.

    Keras writes ``latest.weights.h5`` in place: a kill during the write leaves a truncated
    file that every rerun fails to open. Here each backup is a new file, written under a
    temporary name and renamed; ``state.json`` — written the same way, last — names it with
    the epoch, so the folder always holds one complete state. The state also records
    `model_fingerprint` and the caller's `settings`: a rerun whose model or settings differ,
    or whose backup cannot be read, starts the stage from scratch and says why, instead of
    restoring the wrong weights or crashing.

    Example:
    >>> import tempfile
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile("sgd", "mse")
    >>> backup = AtomicBackupAndRestore(tempfile.mkdtemp(), delete_checkpoint=False)
    >>> _ = model.fit(np.ones((4, 2)), np.ones(4), epochs=2, callbacks=[backup], verbose=0)
    >>> has_backup(backup.backup_dir), _read_state(Path(backup.backup_dir))["epoch"]
    (True, 2)
    """

    def __init__(self, backup_dir: str | os.PathLike, *, settings: dict[str, Any] | None = None,
                 verbose: bool = True, **kwargs: Any):
        super().__init__(str(backup_dir), **kwargs)
        self.settings = json.loads(json.dumps(settings or {}, default=str, sort_keys=True))
        self.verbose = verbose
        self.restored_epoch: int | None = None

    # -- restore ---------------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        directory = Path(self.backup_dir)
        state = _read_state(directory)
        if state is None:
            if any(directory.glob(_WEIGHTS_GLOB)):  # Keras' own format, or a half-written one
                self._start_clean("no complete backup state (an older format, or a kill "
                                  "during the first save)")
            return
        problem = self._mismatch(state)
        if problem is None:
            try:
                self._restore(directory / state["weights"], int(state["epoch"]))
                return
            except Exception as error:  # noqa: BLE001 - any unreadable backup: start clean
                problem = f"the backup cannot be restored ({type(error).__name__}: {error})"
        self._start_clean(problem)

    def _mismatch(self, state: dict) -> str | None:
        if state.get("model") != model_fingerprint(self.model):
            return "the backup is of a differently shaped model"
        if state.get("settings", {}) != self.settings:
            return "the backup was made with other settings"
        if not (Path(self.backup_dir) / str(state.get("weights"))).is_file():
            return "the backup's weights file is missing"
        return None

    def _restore(self, weights: Path, epoch: int) -> None:
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)  # its slots exist before loading
        variables = list(self.model.weights) + list(optimizer.variables if optimizer else [])
        before = [np.array(v) for v in variables]
        try:
            self.model.load_weights(str(weights))
        except BaseException:
            for variable, value in zip(variables, before):  # never half-restored weights
                variable.assign(value)
            raise
        set_initial_epoch(self.model, epoch)  # what Keras' own callback does
        self.restored_epoch = epoch
        self._say(f"resuming from the backup of epoch {epoch} in {self.backup_dir}")

    def _start_clean(self, reason: str) -> None:
        self._say(f"{self.backup_dir}: {reason}; this stage starts from scratch.")
        for path in Path(self.backup_dir).iterdir():
            if path.is_file():
                path.unlink()

    # -- save ------------------------------------------------------------------------------
    def save_backup(self) -> None:
        """Writes this epoch's (or batch's) backup: weights, then the state naming them.

        Example:
        >>> # called by Keras at each epoch end (or every `save_freq` batches) during `fit`
        """
        from keras_transfer.utils.files import atomic_write_bytes

        directory = Path(self.backup_dir)
        directory.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{self.current_epoch:04d}-batch-{self.last_batch_seen}.weights.h5"
        temporary = directory / f"tmp-{os.getpid()}-{name}"  # Keras needs the suffix
        self.model.save_weights(str(temporary), overwrite=True)
        _fsync(temporary)
        os.replace(temporary, directory / name)
        state = {"epoch": self.current_epoch, "batch": self.last_batch_seen, "weights": name,
                 "model": model_fingerprint(self.model), "settings": self.settings}
        atomic_write_bytes(directory / STATE_FILE, json.dumps(state, indent=2).encode())
        for old in directory.glob(_WEIGHTS_GLOB):  # older backups and a killed save's leftovers
            if old.name != name:
                with contextlib.suppress(FileNotFoundError):
                    old.unlink()

    def _say(self, text: str) -> None:
        if self.verbose:
            print(f"      [backup] {text}", flush=True)
