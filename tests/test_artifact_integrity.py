"""Artifacts checked before use (recorded size/sha256, TFLite/zip structure), whole-or-absent
exports (the caller's files in the same rename, stale temporary folders removed), file modes and
the detector's parity check."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_transfer.errors import BadInputError
from keras_transfer.export import TFLiteRunner, export, load_artifact
from keras_transfer.export.integrity import (
    check_keras_archive,
    check_tflite_bytes,
    file_record,
)
from keras_transfer.utils.files import (
    atomic_directory,
    atomic_write_bytes,
    dir_mode,
    file_mode,
    remove_stale,
)

SIZE = 16
FRACTIONS = (0.1, 0.5, 0.9, 0.99)


def _model() -> keras.Model:
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(32, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(1024, activation="relu")(x)  # 128 KiB of weights: buffers to cut
    outputs = keras.layers.Dense(2, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="small")


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return _model()


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    directory = tmp_path_factory.mktemp("integrity") / "exp"
    export(model, directory, formats="all", labels=["a", "b"], num_verify=2, threads=1,
           verbose=False)
    return directory


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_metadata_records_every_file_and_modes_are_normal(exported):
    meta = json.loads((exported / "metadata.json").read_text())
    files = {p.relative_to(exported).as_posix() for p in exported.rglob("*") if p.is_file()}
    assert set(meta["checksums"]) == files - {"metadata.json"}
    assert "saved_model/saved_model.pb" in meta["checksums"]
    assert any(name.startswith("saved_model/variables/") for name in meta["checksums"])
    for name, record in meta["checksums"].items():
        assert record == file_record(exported / name), name
    assert exported.stat().st_mode & 0o777 == dir_mode()
    for path in exported.iterdir():
        expected = dir_mode() if path.is_dir() else file_mode()
        assert path.stat().st_mode & 0o777 == expected, path


def test_truncated_tflite_rejected_in_python_at_every_length(exported):
    data = (exported / "model.tflite").read_bytes()
    n = len(data)
    check_tflite_bytes(data)  # the whole file passes
    lengths = set(range(0, 64)) | set(range(n - 64, n))
    lengths |= {int(n * f) for f in np.linspace(0.01, 0.999, 200)}
    for length in sorted(lengths):
        with pytest.raises(BadInputError, match="TFLite"):
            check_tflite_bytes(data[:length], f"cut{length}.tflite")


_TRUNCATION_SCRIPT = r"""
import shutil, sys
from pathlib import Path
from keras_transfer.errors import BadInputError
from keras_transfer.export import TFLiteRunner, load_artifact

export_dir, work, fractions = Path(sys.argv[1]), Path(sys.argv[2]), eval(sys.argv[3])
load_artifact(export_dir / "model.tflite"); load_artifact(export_dir / "model.keras")
checked = 0
for name in ("model.tflite", "model.keras"):
    data = (export_dir / name).read_bytes()
    for length in sorted({int(len(data) * f) for f in fractions} | {len(data) - 1}):
        with_meta = work / f"{name}-{length}"
        shutil.copytree(export_dir, with_meta)
        (with_meta / name).write_bytes(data[:length])
        bare = work / f"bare-{name}-{length}" / name
        bare.parent.mkdir()
        bare.write_bytes(data[:length])
        cases = [(with_meta / name, load_artifact, f"truncated or modified: {length:,} of "
                  f"{len(data):,} bytes"), (bare, load_artifact, None)]
        if name.endswith(".tflite"):
            cases.append((bare, TFLiteRunner, "TFLite"))
        for path, load, expected in cases:
            try:
                load(path)
            except BadInputError as error:
                message = str(error)
                if str(path) not in message or (expected and expected not in message):
                    print("UNEXPECTED MESSAGE", path, message)
                    sys.exit(3)
                checked += 1
            else:
                print("LOADED", path)
                sys.exit(4)
print("CHECKED", checked)
"""


def test_truncated_artifacts_raise_instead_of_crashing(exported, tmp_path):
    # In a child process: a segfault fails this test instead of killing pytest.
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    result = subprocess.run(
        [sys.executable, "-c", _TRUNCATION_SCRIPT, str(exported), str(tmp_path), repr(FRACTIONS)],
        capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, (result.returncode, result.stdout[-2000:], result.stderr[-3000:])
    assert "CHECKED 25" in result.stdout  # 5 lengths x (3 tflite + 2 keras) cases


def test_bare_truncated_keras_names_the_zip_problem(exported, tmp_path):
    data = (exported / "model.keras").read_bytes()
    path = tmp_path / "model.keras"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadInputError, match=r"model\.keras: not a complete \.keras archive "
                                            r"\(truncated or corrupt zip"):
        load_artifact(path)
    path.write_bytes(data)
    check_keras_archive(path)


def test_same_size_modification_and_missing_files(exported, tmp_path):
    copy = tmp_path / "exp"
    shutil.copytree(exported, copy)
    data = bytearray((copy / "model.tflite").read_bytes())
    data[-100] ^= 0xFF
    (copy / "model.tflite").write_bytes(bytes(data))
    with pytest.raises(BadInputError, match="model.tflite: modified or corrupt.*sha256"):
        TFLiteRunner(copy / "model.tflite")
    variables = next((copy / "saved_model" / "variables").glob("*.index"))
    variables.unlink()
    with pytest.raises(BadInputError, match=f"{variables.name}: missing"):
        load_artifact(copy / "saved_model")
    assert load_artifact(copy / "model.keras").kind == "keras"  # the other files still load


def test_extra_files_are_part_of_the_atomic_step(model, tmp_path, capsys):
    target = tmp_path / "run"

    def outputs(folder, info):
        atomic_write_bytes(folder / "report.json", json.dumps(sorted(info["files"])).encode())
        (folder / "plots").mkdir()
        atomic_write_bytes(folder / "plots" / "curves.png", b"\x89PNG")

    info = export(model, target, formats="keras", num_verify=2, verbose=True,
                  extra_files=outputs)
    assert "[export] wrote" in capsys.readouterr().out
    assert json.loads((target / "report.json").read_text()) == ["model.keras"]
    assert info["directory"] == str(target)
    for path in (target / "report.json", target / "plots" / "curves.png"):
        assert path.stat().st_mode & 0o777 == file_mode()
    assert (target / "plots").stat().st_mode & 0o777 == dir_mode()
    before = {p.name: p.read_bytes() for p in target.iterdir() if p.is_file()}

    def broken(folder, info):
        (folder / "report.json").write_text("half")
        raise RuntimeError("killed while writing the report")

    with pytest.raises(RuntimeError, match="killed"):
        export(model, target, formats="keras", num_verify=2, verbose=False, extra_files=broken)
    assert {p.name: p.read_bytes() for p in target.iterdir() if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_stale_temporary_folders_are_removed(tmp_path, capsys):
    target = tmp_path / "exp"
    dead, alive = _dead_pid(), os.getpid()
    stale = [f".exp.tmp-{dead}-abc123", f".exp.old-{dead}"]
    for name in stale + [f".exp.tmp-{alive}-zzz", ".exp.tmp-legacy01", ".other.tmp-1-x"]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.tflite").write_bytes(b"x" * 10)
    legacy = tmp_path / ".exp.tmp-legacy01"
    os.utime(legacy, (time.time() - 3 * 24 * 3600,) * 2)
    target.mkdir()
    with atomic_directory(target) as tmp:
        assert tmp.name.startswith(f".exp.tmp-{alive}-")
        (tmp / "a").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["exp", f".exp.tmp-{alive}-zzz", ".other.tmp-1-x"])
    err = capsys.readouterr().err
    assert "removed 3 stale" in err and stale[0] in err and ".exp.tmp-legacy01" in err


def test_interrupted_replace_restores_the_previous_result(tmp_path):
    # Killed between "target → .old" and "tmp → target": the old result comes back.
    target = tmp_path / "exp"
    old = tmp_path / f".exp.old-{_dead_pid()}"
    old.mkdir()
    (old / "model.keras").write_text("previous")
    assert remove_stale(target) == []
    assert (target / "model.keras").read_text() == "previous" and not old.exists()


def test_atomic_write_bytes_follows_the_umask(tmp_path):
    previous = os.umask(0o027)
    try:
        path = atomic_write_bytes(tmp_path / "report.json", b"{}")
        assert path.stat().st_mode & 0o777 == 0o640
        with atomic_directory(tmp_path / "folder") as tmp:
            (tmp / "x").write_text("x")
        assert (tmp_path / "folder").stat().st_mode & 0o777 == 0o750
    finally:
        os.umask(previous)


@pytest.fixture(scope="module")
def detector():
    import detection_helpers as helpers  # noqa: F401 - registers the tiny backbone

    from keras_transfer.detection import build_detector

    return build_detector("ssd", helpers.TINY, num_classes=2, weights=None,
                          input_shape=(64, 64, 3))


def test_detector_parity_failure_fails_the_export(detector, tmp_path, monkeypatch):
    from keras_transfer.detection import export as detection_export

    target = tmp_path / "det"
    info = detection_export.export_detector(detector, target, formats=("keras", "tflite"))
    assert info["verification"]["parity"] and info["verification"]["detections_equal"]
    assert set(info["checksums"]) == {"model.keras", "model.tflite"}
    before = (target / "metadata.json").read_text()

    real = detection_export.run_tflite

    def shifted(path, images):  # a TFLite file whose boxes are off
        outputs = real(path, images)
        return {k: v + (5.0 if k == "box_deltas" else 0.0) for k, v in outputs.items()}

    monkeypatch.setattr(detection_export, "run_tflite", shifted)
    with pytest.raises(BadInputError,
                       match=r"det/model.tflite: .*box_deltas.*image 0: .*require_parity=False"):
        detection_export.export_detector(detector, target, formats=("tflite",))
    assert (target / "metadata.json").read_text() == before  # the previous export stays
    assert sorted(p.name for p in tmp_path.iterdir()) == ["det"]

    with pytest.warns(UserWarning, match="Exported anyway"):
        info = detection_export.export_detector(detector, tmp_path / "forced",
                                                formats=("tflite",), require_parity=False)
    meta = json.loads((tmp_path / "forced" / "metadata.json").read_text())
    assert meta["verification"]["parity"] is False and meta["verification"]["problems"]


def test_classifier_parity_failure_fails_the_export(model, tmp_path, monkeypatch):
    """The same rule as the detector's: a float file that does not reproduce Keras is not
    shipped unless asked; quantized files are measured, not held to it."""
    from keras_transfer.export import verify

    target = tmp_path / "exp"
    info = export(model, target, formats=("keras", "saved_model", "tflite"),
                  quantization=("float32", "dynamic"), num_verify=2, verbose=False)
    assert "problems" not in info["verification"]
    assert info["verification"]["tflite"]["model.tflite"]["max_abs_diff"] < 1e-5
    before = (target / "metadata.json").read_text()

    real = verify.verify_tflite

    def drifted(path, *args, **kwargs):  # a float32 file whose scores are off by 0.1
        result = real(path, *args, **kwargs)
        return {**result, "max_abs_diff": result["max_abs_diff"] + 0.1}

    monkeypatch.setattr(verify, "verify_tflite", drifted)
    with pytest.raises(BadInputError, match=r"exp: the export does not reproduce the Keras model"
                                            r" on the 2 verification images: model.tflite: "
                                            r"max\|diff\| 1\.0\de-01 > 1\.00e-03.*"
                                            r"require_parity=False"):
        export(model, target, formats=("tflite",), num_verify=2, verbose=False)
    assert (target / "metadata.json").read_text() == before  # the previous export stays
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]

    # Only the float32 file is held to parity: the dynamic-range one drifts by design.
    info = export(model, tmp_path / "quantized", formats=("tflite",), quantization=("dynamic",),
                  num_verify=2, verbose=False)
    assert "problems" not in info["verification"]
    with pytest.warns(UserWarning, match="Exported anyway"):
        export(model, tmp_path / "forced", formats=("tflite",), num_verify=2, verbose=False,
               require_parity=False)
    meta = json.loads((tmp_path / "forced" / "metadata.json").read_text())
    assert meta["verification"]["problems"] == [
        f"model.tflite: max|diff| {meta['verification']['tflite']['model.tflite']['max_abs_diff']:.2e}"
        " > 1.00e-03"]
