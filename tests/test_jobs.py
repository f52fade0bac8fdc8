"""The main job and the `keras-transfer` command, end to end on small data."""

from __future__ import annotations

import json

import pytest
from conftest import write_two_class_folder

from keras_transfer.commands.cli import main


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """Two classes a tiny network can tell apart: bright and dark images."""
    return write_two_class_folder(tmp_path_factory.mktemp("images"), 20, (40, 48, 3))


def test_train_on_a_folder_writes_every_artifact(image_folder, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # runs/ is written under the working directory
    out = tmp_path / "export"
    status = main(["train", "--dataset", str(image_folder), "--backbone", "mobilenet_v2",
                   "--weights", "none", "--image-size", "32", "--schedule", "fast",
                   "--batch-size", "8", "--output-dir", str(out)])
    assert status == 0
    for name in ("model.keras", "saved_model", "model.tflite", "labels.txt", "metadata.json",
                 "report.json", "config.json", "learning_curves.png", "confusion_matrix.png"):
        assert (out / name).exists(), name
    report = json.loads((out / "report.json").read_text())
    assert report["class_names"] == ["bright", "dark"]
    assert (out / "labels.txt").read_text().split() == ["bright", "dark"]
    test = report["test"]
    assert sum(map(sum, test["confusion_matrix"])) == test["num_examples"] == report["data"]["sizes"]["test"]
    assert 0.0 <= test["accuracy"] <= 1.0
    assert [name for name in report["history"]] == ["head", "fine_tune"]
    assert set(report["timings"]) >= {"train_s", "evaluate_s", "export_s", "total_s"}
    assert report["test_frozen_features"]["num_examples"] == test["num_examples"]
    config = json.loads((out / "config.json").read_text())
    assert config["backbone"] == "mobilenet_v2" and config["image_size"] == 32
    assert "Test accuracy" in capsys.readouterr().out

    # The exported model predicts from the command line.
    status = main(["predict", str(out), str(image_folder / "dark" / "0.png"), "--top-k", "2"])
    assert status == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith(str(image_folder / "dark" / "0.png")) and "bright" in line


def test_config_file_is_read_and_checked(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("dataset: /nonexistent\nbackbone: vgg16\nbogus: 1\n")
    assert main(["train", "--config", str(config)]) == 2
    assert "bogus" in capsys.readouterr().err


def test_bad_dataset_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--dataset", str(tmp_path / "missing"), "--weights", "none"]) == 2
    err = capsys.readouterr().err
    assert "missing" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no run folder, no lock, no output


def test_describe_and_list_backbones(capsys):
    assert main(["describe", "vgg16", "--input-size", "32"]) == 0
    out = capsys.readouterr().out
    assert "block5" in out and "block5_pool" in out
    assert main(["list-backbones"]) == 0
    out = capsys.readouterr().out
    assert "efficientnet_lite0" in out and "convnext_xlarge" in out


@pytest.mark.slow
def test_main_job_on_elpv_with_real_lite0_weights(tmp_path, monkeypatch):
    """The README's main job in miniature: real ImageNet Lite0 weights, real ELPV images."""
    from keras_transfer.commands.image_job import run_image_classification

    monkeypatch.chdir(tmp_path)
    report = run_image_classification(dataset="elpv", schedule="fast", image_size=96,
                                      max_train_examples=256, output_dir=str(tmp_path / "elpv"))
    assert report["data"]["sizes"] == {"train": 1771, "validation": 197, "test": 656}
    assert report["test"]["num_examples"] == 656
    assert len(report["test"]["confusion_matrix"]) == 4
    verification = report["export"]["verification"]["tflite"]["model.tflite"]
    assert verification["top1_agreement"] == 1.0
    # Pretrained features beat the majority class (57 % functional) even after this tiny run.
    assert report["test"]["accuracy"] > 0.6
