"""Fault injection: a tiny training is SIGKILLed at several points and run again; every rerun
resumes or restarts cleanly and ends with a complete, verified output folder. Two processes on
one output: the second is refused with the first one's PID, and the first finishes intact.

Each case runs the real CLI in fresh processes (tests/fault_worker.py injects the kill)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import write_two_class_folder

pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("fault_worker.py")
COMPLETE = ("model.keras", "saved_model", "model.tflite", "labels.txt", "metadata.json",
            "report.json", "config.json", "learning_curves.png")
# Where resuming, not the export, is under test: the .keras file only (an export is slow).
KERAS_ONLY = ("model.keras", "labels.txt", "metadata.json", "report.json", "config.json",
              "learning_curves.png")
EPOCHS = 4


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    return write_two_class_folder(tmp_path_factory.mktemp("images"), 16, (36, 36, 3))


def _train_args(dataset: Path, output: Path, *extra: str, every_format: bool = False
                ) -> list[str]:
    formats = [] if every_format else ["--formats", "keras"]
    return ["train", "--dataset", str(dataset), "--backbone", "mobilenet_v2", "--weights",
            "none", "--image-size", "32", "--schedule", "fast", "--head-epochs", "1",
            "--epochs", str(EPOCHS), "--batch-size", "8", "--output-dir", str(output), *formats,
            *extra]


def _start(args: list[str], cwd: Path, fault: str = "", **env: str) -> subprocess.Popen:
    environment = {**os.environ, "KT_FAULT": fault, "PYTHONPATH": str(WORKER.parent), **env}
    return subprocess.Popen([sys.executable, str(WORKER), *args], cwd=cwd, env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _run(args: list[str], cwd: Path, fault: str = "", **env: str) -> tuple[int, str]:
    process = _start(args, cwd, fault, **env)
    output, _ = process.communicate(timeout=600)
    return process.returncode, output


def _assert_complete(output: Path, clean: bool = True, files: tuple = KERAS_ONLY) -> dict:
    """Every artifact there, no temporary folder left beside it (`clean`: a killed process's
    folder stays until the next run removes it), and the model predicts."""
    from keras_transfer.export import load_artifact

    for name in files:
        assert (output / name).exists(), f"{name} missing from {sorted(os.listdir(output))}"
    for name in set(COMPLETE) - set(files):  # --formats keras: nothing else exported
        assert not (output / name).exists(), f"{name} exported without being asked for"
    leftovers = [p.name for p in output.parent.iterdir()
                 if p.name.startswith(f".{output.name}.") and not p.name.endswith(".lock")]
    assert leftovers == [] or not clean, leftovers
    artifact = load_artifact(output / ("model.tflite" if "model.tflite" in files else
                                       "model.keras"))
    import numpy as np

    scores = artifact(np.zeros((1, 32, 32, 3), "float32"))
    assert scores.shape == (1, 2) and abs(float(scores.sum()) - 1.0) < 1e-3
    return json.loads((output / "report.json").read_text())


@pytest.mark.parametrize("fault, resumed_epoch", [
    ("mid_epoch", 2),             # epochs 0 and 1 were backed up
    ("mid_backup_write", 1),      # the second save was torn: the first one stands
    ("before_backup_state", 1),   # the second save's weights renamed, its state never written
])
def test_a_kill_during_fine_tuning_resumes_from_the_last_complete_epoch(
        image_folder, tmp_path, fault, resumed_epoch):
    output = tmp_path / "exp"
    status, log = _run(_train_args(image_folder, output), tmp_path, fault)
    assert status == -signal.SIGKILL, log
    assert not output.exists()

    status, log = _run(_train_args(image_folder, output), tmp_path)
    assert status == 0, log
    assert "resuming an interrupted run with the same settings" in log
    assert f"resuming from the backup of epoch {resumed_epoch}" in log
    report = _assert_complete(output)
    assert len(report["history"]["fine_tune"]["loss"]) == EPOCHS - resumed_epoch
    assert not any((tmp_path / "runs").glob("*/backup/*")), "the finished run left its backup"


def test_a_kill_during_export_leaves_the_previous_output_and_no_debris(image_folder, tmp_path):
    output = tmp_path / "exp"
    first_args = _train_args(image_folder, output, every_format=True)
    status, log = _run(first_args, tmp_path, "mid_export")
    assert status == -signal.SIGKILL, log
    assert not output.exists()

    status, log = _run(first_args, tmp_path)  # the stale temporary folder is cleaned
    assert status == 0, log
    first = _assert_complete(output, files=COMPLETE)

    # Killed after the artifacts, before the report: the finished output above stays whole.
    second_args = _train_args(image_folder, output, "--seed", "7", every_format=True)
    status, log = _run(second_args, tmp_path, "after_export")
    assert status == -signal.SIGKILL, log
    assert _assert_complete(output, clean=False, files=COMPLETE) == first

    status, log = _run(second_args, tmp_path)
    assert status == 0, log
    assert _assert_complete(output, files=COMPLETE)["settings"]["seed"] == 7


def test_other_settings_or_another_output_never_restore_a_killed_run(image_folder, tmp_path):
    output = tmp_path / "a" / "exp"
    status, log = _run(_train_args(image_folder, output), tmp_path, "mid_epoch")
    assert status == -signal.SIGKILL, log

    # Same folder name elsewhere, other image size: its own run folder, nothing restored.
    elsewhere = tmp_path / "b" / "exp"
    status, log = _run(_train_args(image_folder, elsewhere, "--image-size", "40"), tmp_path)
    assert status == 0, log
    assert "resuming" not in log

    # Same output, other settings: said so, the stale state cleared, trained from scratch.
    status, log = _run(_train_args(image_folder, output, "--seed", "3"), tmp_path)
    assert status == 0, log
    assert "an earlier run with other settings (seed: 1337 → 3)" in log
    assert "resuming" not in log
    assert len(_assert_complete(output)["history"]["fine_tune"]["loss"]) == EPOCHS


def test_a_second_process_on_the_same_output_is_refused(image_folder, tmp_path):
    output = tmp_path / "exp"
    paused, resume = tmp_path / "paused", tmp_path / "resume"
    first = _start(_train_args(image_folder, output), tmp_path, "pause",
                   KT_PAUSED=str(paused), KT_RESUME=str(resume))
    deadline = time.monotonic() + 300
    while not paused.exists():
        assert first.poll() is None and time.monotonic() < deadline, "the first run never paused"
        time.sleep(0.5)

    status, log = _run(_train_args(image_folder, output), tmp_path)
    assert status == 2, log
    assert f"is in use by PID {first.pid}" in log and "Traceback" not in log

    resume.write_text("go")
    log, _ = first.communicate(timeout=600)
    assert first.returncode == 0, log
    _assert_complete(output)


def test_a_killed_task_job_resumes_too(tmp_path):
    """The generic job of the other tasks (here segmentation) resumes like the image job."""
    output = tmp_path / "seg"
    args = ["train", "--task", "segmentation", "--dataset", "synthetic", "--backbone",
            "mobilenet_v2", "--weights", "none", "--image-size", "64", "--head-epochs", "0",
            "--epochs", str(EPOCHS), "--batch-size", "8", "--num-examples", "32", "--formats",
            "keras", "--output-dir", str(output)]
    status, log = _run(args, tmp_path, "mid_epoch")
    assert status == -signal.SIGKILL, log
    assert not output.exists()

    status, log = _run(args, tmp_path)
    assert status == 0, log
    assert "resuming from the backup of epoch 2" in log
    report = json.loads((output / "report.json").read_text())
    assert report["task"] == "segmentation"
    assert len(report["history"]["fine_tune"]["loss"]) == EPOCHS - 2
    assert not any((tmp_path / "runs").glob("*/backup/*")), "the finished run left its backup"
