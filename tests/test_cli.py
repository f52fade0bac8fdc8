"""The `keras-transfer` command, every subcommand, on a tiny random backbone and tiny images.

tests/test_jobs.py already trains MobileNetV2 through `train` and predicts from its export; here
a three-layer backbone keeps each command to seconds, so every command and its errors are driven.
"""

from __future__ import annotations

import json
import types

import keras
import numpy as np
import pytest
from conftest import write_two_class_folder

from keras_transfer import BackboneSpec, BlockEnd, register_backbone
from keras_transfer.backbones import registry
from keras_transfer.commands.cli import build_parser, main

COMMANDS = {"train", "evaluate", "export", "predict", "describe", "list-backbones",
            "lr-find"}


def _tiny_cnn(input_tensor, weights=None):
    """Two strided conv blocks: a keras.applications-style builder (tensor in, `.output` out)."""
    x = input_tensor
    for block, filters in (("block1", 4), ("block2", 8)):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", name=f"{block}_conv")(x)
        x = keras.layers.BatchNormalization(name=f"{block}_bn")(x)
        x = keras.layers.ReLU(name=f"{block}_relu")(x)
    return types.SimpleNamespace(output=x)


@pytest.fixture(scope="module")
def tiny_backbone():
    spec = BackboneSpec(
        name="cli_test_tiny_cnn", family="tiny", source="keras.applications", build=_tiny_cnn,
        preprocessing="tf", blocks=(("block1", BlockEnd(r"^block1_")),
                                    ("block2", BlockEnd(r"^block2_"))),
        default_size=32, min_size=8, description="a tiny CNN for CLI tests")
    register_backbone(spec)
    yield spec.name
    registry._REGISTRY.pop(spec.name)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """Two classes a tiny network can tell apart: bright and dark images."""
    return write_two_class_folder(tmp_path_factory.mktemp("images"), 16, (24, 28, 3))


def _subcommands() -> dict[str, object]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return dict(action.choices)


def test_every_command_has_help(capsys):
    commands = _subcommands()
    assert COMMANDS <= set(commands)
    for name in commands:
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: keras-transfer {name}"), name
        assert "-h, --help" in out


@pytest.mark.slow
def test_train_with_a_config_file_then_evaluate_export_predict(
        tiny_backbone, image_folder, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # runs/ is written under the working directory
    run_config = tmp_path / "run.yaml"
    run_config.write_text(f"dataset: {image_folder}\nbackbone: {tiny_backbone}\nweights: null\n"
                          "image_size: 16\nschedule: fast\nbatch_size: 8\nseed: 7\n")
    out = tmp_path / "trained"
    # The flag overrides the file; everything else comes from the file.
    assert main(["train", "--config", str(run_config), "--output-dir", str(out),
                 "--batch-size", "4"]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["backbone"] == tiny_backbone and saved["image_size"] == 16
    assert saved["batch_size"] == 4 and saved["seed"] == 7 and saved["weights"] is None
    assert saved["output_dir"] == str(out)
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["schedule_resolved"]["head_epochs"] == 2  # the "fast" schedule
    capsys.readouterr()

    # `evaluate` on the export folder re-reads its config.json: the same test split, the same
    # model from disk, so the same accuracy as the training report.
    assert main(["evaluate", str(out), "--top-k", "1", "2"]) == 0
    evaluation = json.loads((out / "evaluation_test" / "evaluation.json").read_text())
    assert evaluation["num_examples"] == report["test"]["num_examples"]
    assert evaluation["accuracy"] == pytest.approx(report["test"]["accuracy"])
    assert evaluation["confusion_matrix"] == report["test"]["confusion_matrix"]
    assert "accuracy" in capsys.readouterr().out

    exported = tmp_path / "exported"
    assert main(["export", str(out / "model.keras"), str(exported), "--labels",
                 str(out / "labels.txt"), "--quantization", "float32", "dynamic"]) == 0
    metadata = json.loads((exported / "metadata.json").read_text())
    assert metadata["labels"] == ["bright", "dark"]
    assert metadata["verification"]["tflite"]["model.tflite"]["top1_agreement"] == 1.0
    assert {"model.keras", "saved_model", "model.tflite", "model.dynamic.tflite"} <= set(
        metadata["files"])
    capsys.readouterr()

    images = [str(image_folder / "dark" / "0.png"), str(image_folder / "bright" / "0.png")]
    scores = {}
    for artifact in (exported, exported / "model.dynamic.tflite"):
        assert main(["predict", str(artifact), *images, "--top-k", "2"]) == 0
        lines = capsys.readouterr().out.strip().splitlines()[-2:]
        assert [line.split(": ")[0] for line in lines] == images
        top = [dict((label, float(score)) for label, score in
                    (part.split() for part in line.split(": ")[1].split(", "))) for line in lines]
        assert all(set(t) == {"bright", "dark"} and abs(sum(t.values()) - 1) < 2e-3 for t in top)
        scores[artifact.name] = [[t["bright"], t["dark"]] for t in top]
    # The float model and its dynamic-range quantized TFLite file agree on the same images.
    np.testing.assert_allclose(scores["exported"], scores["model.dynamic.tflite"], atol=0.05)


@pytest.mark.slow
def test_lr_find_writes_plot_json_and_a_repeatable_config(tiny_backbone, image_folder, tmp_path,
                                                          capsys):
    out = tmp_path / "lr"
    assert main(["lr-find", "--dataset", str(image_folder), "--backbone", tiny_backbone,
                 "--weights", "none", "--image-size", "16", "--batch-size", "4",
                 "--min-lr", "1e-5", "--max-lr", "10", "--steps", "10",
                 "--output-dir", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "Suggested learning rate" in stdout and "10/10" in stdout  # the progress bar
    assert (out / "lr_find.png").read_bytes()[:4] == b"\x89PNG"
    result = json.loads((out / "lr_find.json").read_text())
    rates = result["learning_rates"]
    assert 2 <= len(rates) <= 10 and rates[0] == pytest.approx(1e-5)
    assert all(b > a for a, b in zip(rates, rates[1:]))
    assert len(result["losses"]) == len(result["raw_losses"]) == len(rates)
    assert 1e-5 <= result["suggestion"] <= 10
    assert result["use_with"].startswith("keras-transfer train --learning-rate ")
    assert result["class_names"] == ["bright", "dark"]

    # The saved config repeats the run: same settings, same sweep.
    again = tmp_path / "lr_again"
    assert main(["lr-find", "--config", str(out / "lr_find_config.json"),
                 "--output-dir", str(again)]) == 0
    first = json.loads((out / "lr_find_config.json").read_text())
    second = json.loads((again / "lr_find_config.json").read_text())
    assert {**first, "output_dir": None} == {**second, "output_dir": None}
    repeated = json.loads((again / "lr_find.json").read_text())
    assert repeated["learning_rates"] == rates
    # Same data, initialisation and batches. CPU kernels are not bit-reproducible, and once the
    # rate passes 1 the sweep diverges and amplifies those last-bit differences, so the losses are
    # compared where training is still stable.
    stable = [i for i, rate in enumerate(rates) if rate < 1]
    assert len(stable) >= 5
    np.testing.assert_allclose(np.take(repeated["raw_losses"], stable),
                               np.take(result["raw_losses"], stable), rtol=0.05)


@pytest.mark.parametrize("argv, message", [
    (["lr-find", "--min-lr", "1", "--max-lr", "0.1"], "min_lr=1.0, max_lr=0.1"),
    (["lr-find", "--dataset", "/nonexistent/photos", "--weights", "none"], "/nonexistent/photos"),
    (["describe", "no_such_net"], "Unknown backbone 'no_such_net'"),
    (["export", "/nonexistent/model.keras", "out"], "/nonexistent/model.keras"),
    (["predict", "/nonexistent/export", "a.png"], "/nonexistent/export"),
    (["evaluate", "/nonexistent/model.keras"], "/nonexistent/model.keras"),
])
def test_bad_input_is_one_clear_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"keras-transfer {argv[0]}: error: ") and message in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("text, message", [
    ("dataset: [unclosed\n", "not valid YAML"),
    ("- a list\n", "expected a mapping"),
    ("steps: 3\nbogus: 1\n", "unknown setting(s) ['bogus']"),
])
def test_bad_config_file_is_one_clear_line(text, message, tmp_path, capsys):
    config = tmp_path / "lr.yaml"
    config.write_text(text)
    assert main(["lr-find", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(config) in err and "Traceback" not in err


@pytest.mark.parametrize("argv, message", [
    (["lr-find", "--steps", "many"], "invalid int value: 'many'"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["export", "model.keras"], "the following arguments are required: output_dir"),
])
def test_bad_arguments_exit_with_usage(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: keras-transfer" in err and message in err

