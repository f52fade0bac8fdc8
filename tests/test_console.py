"""A quiet `keras-transfer` console: no TensorFlow start-up lines unless --verbose asks for them.

The command runs in fresh processes (TensorFlow's start-up lines come from importing it), started
through the console script's entry, `keras_transfer_launcher`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from keras_transfer import console
from keras_transfer.commands.cli import main

REPO = Path(__file__).resolve().parent.parent
LAUNCHER = REPO / "keras_transfer_launcher.py"

# What TensorFlow, absl and CUDA print on start (checked independently of console.NOISE).
STARTUP_NOISE = re.compile(
    r"absl::InitializeLog|^[IWE]\d{4} \d\d:\d\d:|cuInit|cuda drivers|cpu_feature_guard"
    r"|To enable the following instructions|oneDNN custom operations", re.MULTILINE)

# Lines seen on a CPU-only machine with TensorFlow 2.21.
SEEN = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796600794.712254    3256 cudart_stub.cc:31] Could not find cuda drivers on your "
    "machine, GPU will not be used.",
    "I0000 00:00:1796600794.766867    3256 cpu_feature_guard.cc:227] This TensorFlow binary is "
    "optimized to use available CPU instructions in performance-critical operations.",
    "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow "
    "with the appropriate compiler flags.",
    "E0000 00:00:1796600830.727199    3494 cuda_platform.cc:52] failed call to cuInit: INTERNAL: "
    "CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)",
    "2024-05-01 10:00:00.123456: I tensorflow/core/util/port.cc:113] oneDNN custom operations "
    "are on. You may see slightly different numerical results due to floating-point round-off.",
]
KEPT = [
    "keras-transfer describe: error: Unknown backbone 'vgg17'; did you mean 'vgg19'?",
    "/src/keras_transfer/data/loaders.py:12: UserWarning: 3 images could not be decoded",
    "E0000 00:00:1796600830.727199    3494 saver.cc:52] Failed to write checkpoint: disk full",
    "F0000 00:00:1796600830.727199    3494 check.cc:10] Check failed: rank >= 0",
    "Traceback (most recent call last):",
]


def test_noise_is_the_start_up_lines_only():
    assert [line for line in SEEN if not console.is_noise(line)] == []
    assert [line for line in KEPT if console.is_noise(line)] == []


def test_verbose_flag_anywhere_and_environment():
    assert console.wants_verbose(["--verbose", "describe", "vgg16"], environ={})
    assert console.wants_verbose(["describe", "vgg16", "--verbose"], environ={})
    assert not console.wants_verbose(["predict", "m.keras", "--", "--verbose"], environ={})
    assert console.wants_verbose(["list-backbones"], environ={console.VERBOSE_ENV: "1"})
    assert not console.wants_verbose(["list-backbones"], environ={console.VERBOSE_ENV: "0"})
    assert console.strip_verbose(["--verbose", "describe", "vgg16"]) == ["describe", "vgg16"]


def test_quiet_environment_keeps_what_the_user_set():
    environment = {"TF_CPP_MIN_LOG_LEVEL": "1"}
    chosen = console.quiet_environment(environment)
    assert environment["TF_CPP_MIN_LOG_LEVEL"] == "1" and "TF_CPP_MIN_LOG_LEVEL" not in chosen
    assert environment["GRPC_VERBOSITY"] == console.QUIET_ENVIRONMENT["GRPC_VERBOSITY"]


def test_the_cli_accepts_verbose_anywhere(capsys):
    assert main(["--verbose", "list-backbones"]) == 0
    assert main(["list-backbones", "--verbose"]) == 0
    assert "vgg16" in capsys.readouterr().out


def test_entry_point_is_the_launcher():
    # The console script must not import keras_transfer (which loads TensorFlow) first.
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["keras-transfer"] == "keras_transfer_launcher:main"
    imports = re.findall(r"^\s*(?:import|from) (\S+)", LAUNCHER.read_text(), re.MULTILINE)
    assert not [name for name in imports if name.startswith("keras_transfer")], imports


def test_filtered_stderr_drops_noise_and_keeps_warnings_and_errors():
    # A plain Python process (no TensorFlow): console.py loaded by path, as the launcher does.
    path = str(REPO / "keras_transfer" / "console.py")
    script = f"""
import importlib.util, os, warnings
spec = importlib.util.spec_from_file_location("console", {path!r})
console = importlib.util.module_from_spec(spec)
spec.loader.exec_module(console)
with console.filtered_stderr():
    for line in {SEEN!r}:
        os.write(2, (line + "\\n").encode())
    warnings.warn("keras_transfer: a warning of ours", UserWarning)
    os.write(2, b"E0000 00:00:1796600830.727199    3494 saver.cc:52] a real error\\n")
print("done")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60, env=_environment())
    assert result.returncode == 0 and result.stdout == "done\n", result.stderr
    assert "UserWarning: keras_transfer: a warning of ours" in result.stderr
    assert "saver.cc:52] a real error" in result.stderr
    assert [line for line in SEEN if line in result.stderr] == [], result.stderr


def _environment(**extra: str) -> dict[str, str]:
    """This environment without the settings the console chooses (the test suite sets some)."""
    chosen = set(console.QUIET_ENVIRONMENT) | {console.VERBOSE_ENV}
    return {**{k: v for k, v in os.environ.items() if k not in chosen}, **extra}


RUNS = {  # name: (arguments, extra environment)
    "list": (["list-backbones"], {}),
    "help": (["--help"], {}),
    "error": (["describe", "vgg17"], {}),
    "verbose": (["list-backbones", "--verbose"], {console.VERBOSE_ENV: "0"}),
}


@pytest.fixture(scope="module")
def runs() -> dict[str, subprocess.CompletedProcess]:
    """Every command of `RUNS` in its own process, started together (each imports TensorFlow)."""
    started = {name: subprocess.Popen(
        [sys.executable, str(LAUNCHER), *arguments], cwd=REPO, env=_environment(**extra),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, (arguments, extra) in RUNS.items()}
    done = {}
    for name, process in started.items():
        out, err = process.communicate(timeout=600)
        done[name] = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    return done


@pytest.mark.parametrize("name", ["list", "help", "error"])
def test_the_command_starts_quietly(runs, name):
    run = runs[name]
    output = run.stdout + run.stderr
    assert not STARTUP_NOISE.search(output), output[:2000]
    if name == "list":
        assert run.returncode == 0 and run.stdout.startswith("vgg16 "), output[:2000]
    if name == "help":
        assert run.returncode == 0 and "--verbose" in run.stdout, output[:2000]


def test_errors_are_still_reported(runs):
    assert runs["error"].returncode == 2
    assert "keras-transfer describe: error: Unknown backbone 'vgg17'" in runs["error"].stderr


def test_verbose_runs_the_same_command(runs):
    # TensorFlow's own lines are allowed here (which appear depends on the machine).
    assert runs["verbose"].returncode == 0 and "vgg16 " in runs["verbose"].stdout
    assert runs["verbose"].stdout == runs["list"].stdout


@pytest.mark.slow
def test_a_whole_training_run_stays_quiet(tmp_path):
    """Not just the start: training, evaluation and the TFLite verification add no line a user
    cannot act on (Keras' ignored-shuffle warning, retracing warnings, the XNNPACK line)."""
    from conftest import write_two_class_folder

    images = write_two_class_folder(tmp_path, 12, (36, 36, 3))
    run = subprocess.run(
        [sys.executable, str(LAUNCHER), "train", "--dataset", str(images), "--backbone",
         "mobilenet_v2", "--weights", "none", "--image-size", "32", "--schedule", "fast",
         "--head-epochs", "1", "--epochs", "1", "--batch-size", "8", "--output-dir",
         str(tmp_path / "out")], cwd=tmp_path, env=_environment(), capture_output=True,
        text=True, timeout=600)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-3000:]
    for noise in ("XNNPACK", "shuffle=True", "retracing", "WARNING:tensorflow"):
        assert noise not in output, (noise, output[-3000:])
    assert not STARTUP_NOISE.search(output), output[:2000]
    assert "[export] wrote" in output
