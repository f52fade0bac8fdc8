"""Runs ``keras-transfer train`` with a SIGKILL injected at a named point (for
tests/test_fault_injection.py).

    KT_FAULT=POINT python fault_worker.py train --dataset ... --output-dir ...

Points:
    mid_epoch           the third fine-tuning epoch, after its first batch (epochs 0-1 backed up)
    mid_backup_write    the second backup save, half of its weights file written
    before_backup_state the second backup save, its weights renamed, its state not yet written
    mid_export          while the export writes the .tflite file
    after_export        the artifacts written, before the job's report and plots
    pause               waits at the start of fine-tuning until the file $KT_RESUME exists
                        (after creating $KT_PAUSED), then goes on normally

Not collected by pytest (no ``test_`` prefix).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import importlib  # noqa: E402

import keras  # noqa: E402

from keras_transfer.commands.cli import main  # noqa: E402

# Modules, not the same-named functions their packages export.
jobs = importlib.import_module("keras_transfer.commands.image_job")
export_core = importlib.import_module("keras_transfer.export.core")
fine_tune_module = importlib.import_module("keras_transfer.recipes.fine_tune")
cache = importlib.import_module("keras_transfer.utils.files")

POINT = os.environ.get("KT_FAULT", "")


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class _Fault(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        if POINT == "pause":
            Path(os.environ["KT_PAUSED"]).write_text(str(os.getpid()))
            while not Path(os.environ["KT_RESUME"]).exists():
                time.sleep(0.2)

    def on_train_batch_end(self, batch, logs=None):
        if POINT == "mid_epoch" and self._epoch == 2:
            die()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch


def _with_fault(original):
    def default_callbacks(*args, **kwargs):
        return [*original(*args, **kwargs), _Fault()]  # after the backup: epochs 0-1 saved
    return default_callbacks


def _count_saves(original, kill_on: int):
    calls = {"n": 0}

    def save_weights(self, filepath, *args, **kwargs):
        original(self, filepath, *args, **kwargs)
        if Path(filepath).name.startswith("tmp-"):  # the backup's temporary file
            calls["n"] += 1
            if calls["n"] == kill_on:
                data = Path(filepath).read_bytes()
                Path(filepath).write_bytes(data[: len(data) // 2])
                die()
    return save_weights


def _kill_before_state(original):
    calls = {"n": 0}

    def atomic_write_bytes(path, data):
        if Path(path).name == "state.json":
            calls["n"] += 1
            if calls["n"] == 2:
                die()
        return original(path, data)
    return atomic_write_bytes


if POINT in ("mid_epoch", "pause"):
    fine_tune_module.default_callbacks = _with_fault(fine_tune_module.default_callbacks)
elif POINT == "mid_backup_write":
    keras.Model.save_weights = _count_saves(keras.Model.save_weights, kill_on=2)
elif POINT == "before_backup_state":
    cache.atomic_write_bytes = _kill_before_state(cache.atomic_write_bytes)
elif POINT == "mid_export":
    original_write_tflite = export_core.write_tflite

    def write_tflite(path, data):
        Path(path).write_bytes(data[: len(data) // 3])
        die()
    export_core.write_tflite = write_tflite
elif POINT == "after_export":
    jobs._write_outputs = lambda *args, **kwargs: die()
elif POINT:
    raise SystemExit(f"unknown KT_FAULT {POINT!r}")

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
