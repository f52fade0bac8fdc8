"""`compare_backbones` / `keras-transfer compare`: the Pareto front and recommendation on
hand-made numbers, whole comparisons on two tiny random backbones (one more that fails to
build), and every input error caught before any data is read."""

from __future__ import annotations

import functools
import itertools
import json
import random
import types

import keras
import numpy as np
import pytest
from conftest import write_two_class_folder

from keras_transfer import BackboneSpec, BlockEnd, register_backbone
from keras_transfer.backbones import registry
from keras_transfer.commands.cli import main
from keras_transfer.compare import (
    CompareConfig,
    compare_backbones,
    pareto_front,
    recommend,
)
from keras_transfer.compare.run import _Comparison
from keras_transfer.errors import BadInputError, KerasTransferError, WeightsUnavailableError

NARROW, WIDE, BROKEN = "compare_test_narrow", "compare_test_wide", "compare_test_broken"


def _tiny_cnn(input_tensor, weights=None, filters=(4, 8)):
    """Two strided conv blocks: a keras.applications-style builder (tensor in, `.output` out)."""
    x = input_tensor
    for block, width in zip(("block1", "block2"), filters):
        x = keras.layers.Conv2D(width, 3, strides=2, padding="same", name=f"{block}_conv")(x)
        x = keras.layers.BatchNormalization(name=f"{block}_bn")(x)
        x = keras.layers.ReLU(name=f"{block}_relu")(x)
    return types.SimpleNamespace(output=x)


def _no_weights_offline(input_tensor, weights=None):
    raise WeightsUnavailableError("ImageNet weights for this backbone need a download (offline)")


@pytest.fixture(scope="module")
def tiny_backbones():
    builders = {NARROW: functools.partial(_tiny_cnn, filters=(4, 8)),
                WIDE: functools.partial(_tiny_cnn, filters=(32, 64)),
                BROKEN: _no_weights_offline}
    for name, build in builders.items():
        register_backbone(BackboneSpec(
            name=name, family="tiny", source="keras.applications", build=build,
            preprocessing="tf", blocks=(("block1", BlockEnd(r"^block1_")),
                                        ("block2", BlockEnd(r"^block2_"))),
            default_size=16, min_size=8, description="a tiny CNN for comparison tests"))
    yield NARROW, WIDE, BROKEN
    for name in builders:
        registry._REGISTRY.pop(name)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """Two classes a tiny network can tell apart: bright and dark images."""
    return write_two_class_folder(tmp_path_factory.mktemp("images"), 20, (20, 24, 3))


# ---- the front and the rule, on hand-made numbers ---------------------------------------------

def test_pareto_front_keeps_exactly_the_undominated_fastest_first():
    points = {"slow_bad": (0.70, 30.0), "fast": (0.75, 10.0), "mid": (0.80, 20.0),
              "same_acc_slower": (0.80, 25.0), "best": (0.85, 40.0), "twin_a": (0.60, 5.0),
              "twin_b": (0.60, 5.0)}
    assert pareto_front(points) == ["twin_a", "twin_b", "fast", "mid", "best"]
    assert pareto_front({"only": (0.5, 1.0)}) == ["only"]
    # Equal latency: only the more accurate is on the front.
    assert pareto_front({"a": (0.7, 10.0), "b": (0.8, 10.0)}) == ["b"]


def test_front_matches_a_brute_force_definition_on_random_points():
    rng = random.Random(0)
    for _ in range(200):
        points = {f"m{i}": (rng.choice([0.7, 0.75, 0.8, 0.85]), rng.choice([5.0, 10.0, 20.0]))
                  for i in range(rng.randint(1, 6))}
        expected = {a for a, (acc, lat) in points.items()
                    if not any((acc2 >= acc and lat2 <= lat) and (acc2, lat2) != (acc, lat)
                               for acc2, lat2 in points.values())}
        assert set(pareto_front(points)) == expected
        for tolerance in (0.0, 1.0, 7.0, 100.0):
            choice = recommend(points, tolerance=tolerance)
            assert choice.backbone in choice.front  # the rule never leaves the front


@pytest.mark.parametrize("points, tolerance, expected", [
    # The fastest within 1 point of the best (lite1), not lite0 (1.2 points below).
    ({"lite0": (0.733, 12.0), "lite1": (0.741, 18.0), "lite2": (0.745, 30.0)}, 1.0, "lite1"),
    # A wider tolerance admits lite0.
    ({"lite0": (0.733, 12.0), "lite1": (0.741, 18.0), "lite2": (0.745, 30.0)}, 2.0, "lite0"),
    # Tolerance 0: the most accurate; equal accuracy goes to the faster.
    ({"a": (0.80, 10.0), "b": (0.80, 8.0), "c": (0.70, 1.0)}, 0.0, "b"),
    # Equal latency within the tolerance: the more accurate.
    ({"a": (0.795, 10.0), "b": (0.80, 10.0), "c": (0.60, 1.0)}, 1.0, "b"),
    # Exactly at the tolerance counts as within it.
    ({"a": (0.79, 5.0), "b": (0.80, 10.0)}, 1.0, "a"),
    ({"only": (0.5, 3.0)}, 1.0, "only"),
])
def test_recommendation_rule(points, tolerance, expected):
    choice = recommend(points, tolerance=tolerance, rank_by="int8")
    assert choice.backbone == expected
    assert choice.most_accurate == max(points, key=lambda n: (points[n][0], -points[n][1]))
    assert "int8 TFLite latency" in choice.rule and "int8 TFLite" in choice.reason
    assert choice.reason.startswith(f"{expected}: ")
    assert choice.reason.count(". ") <= 1  # one or two sentences


def test_recommendation_reason_and_noise():
    points = {"lite0": (0.733, 12.0), "lite1": (0.741, 18.0), "lite2": (0.745, 30.0)}
    choice = recommend(points, tolerance=1.0, num_test=656)
    assert "0.4 points below the most accurate (lite2" in choice.reason
    assert "lite0 is faster still" in choice.reason
    assert choice.within_tolerance == ["lite1", "lite2"]
    assert choice.standard_error_points == pytest.approx(
        100 * np.sqrt(0.745 * 0.255 / 656), abs=0.01)
    best = recommend({"a": (0.9, 1.0), "b": (0.8, 2.0)}, tolerance=1.0)
    assert best.backbone == "a" and "the most accurate" in best.reason
    with pytest.raises(ValueError, match="every one failed"):
        recommend({})


# ---- whole comparisons -----------------------------------------------------------------------

def _check_row(row: dict, quantization: tuple[str, ...]) -> None:
    assert row["status"] == "ok", row
    assert 0.0 <= row["accuracy"] <= 1.0 and 0.0 <= row["macro_f1"] <= 1.0
    assert 0.0 <= row["frozen_accuracy"] <= 1.0
    assert row["params"] > row["backbone_params"] > 0
    assert row["image_size"] == 16 and row["pretrained"] is False
    assert set(row["tflite"]) == set(quantization)
    for entry in row["tflite"].values():
        assert entry["size_bytes"] > 0 and entry["latency_ms"] > 0
        assert entry["verify_latency_ms"] > 0 and 0.0 <= entry["top1_agreement"] <= 1.0
        assert "path" not in entry  # the temporary files are gone
    assert row["timings"]["total_s"] >= row["timings"]["train_s"] > 0


@pytest.mark.slow
def test_compare_two_tiny_backbones_and_one_that_fails(tiny_backbones, image_folder, tmp_path,
                                                       capsys):
    narrow, wide, broken = tiny_backbones
    out = tmp_path / "cmp"
    result = compare_backbones(dataset=str(image_folder), backbones=[narrow, broken, wide],
                               weights=None, output_dir=str(out), max_train_examples=20,
                               head_epochs=20, latency_rounds=2, verify_images=4,
                               calibration_images=8, seed=3)
    printed = capsys.readouterr().out
    # Progress per backbone, the table (every backbone, the failure with its reason), the rule.
    for text in (f"[1/3] {narrow}", f"[2/3] {broken}", f"[3/3] {wide}", "frozen features:",
                 "[latency] timing 4 .tflite file(s)", "float32 ms", "int8 ms",
                 "failed: WeightsUnavailableError: ImageNet weights", "Recommendation — rule:"):
        assert text in printed, text
    table = printed[printed.index("\nbackbone "):]
    assert all(name in table for name in tiny_backbones)

    stored = json.loads((out / "comparison.json").read_text())
    assert stored["recommendation"] == result["recommendation"]
    assert (out / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = {row["backbone"]: row for row in stored["backbones"]}
    assert list(rows) == [narrow, broken, wide]  # the order given
    assert stored["failed"] == [broken]
    assert rows[broken]["status"] == "failed"
    assert rows[broken]["error"].startswith("WeightsUnavailableError: ImageNet weights")
    for name in (narrow, wide):
        _check_row(rows[name], ("float32", "int8"))
        assert rows[name]["accuracy"] == rows[name]["frozen_accuracy"]  # no fine-tuning
        assert rows[name]["training"]["recipe"] == "train_head"
        assert rows[name]["training"]["head"]["epochs"] <= 20
    # The same split for every backbone, the training subset included.
    assert rows[narrow]["data_sizes"] == rows[wide]["data_sizes"]
    assert rows[narrow]["data_sizes"]["train"] == 20
    assert rows[narrow]["num_test"] == rows[wide]["num_test"] == 8
    assert rows[wide]["params"] > rows[narrow]["params"]
    assert rows[wide]["tflite"]["float32"]["size_bytes"] > rows[narrow]["tflite"]["float32"][
        "size_bytes"]
    assert rows[narrow]["tflite"]["int8"]["size_bytes"] < rows[narrow]["tflite"]["float32"][
        "size_bytes"] or rows[narrow]["params"] < 2000  # tiny models: the flatbuffer overhead
    # The front and the recommendation are those of the recorded numbers.
    for kind in ("float32", "int8"):
        points = {n: (rows[n]["accuracy"], rows[n]["tflite"][kind]["latency_ms"])
                  for n in (narrow, wide)}
        assert stored["pareto_front"][kind] == pareto_front(points)
        assert all(rows[n]["pareto_front"][kind] == (n in pareto_front(points))
                   for n in (narrow, wide))
    points = {n: (rows[n]["accuracy"], rows[n]["tflite"]["float32"]["latency_ms"])
              for n in (narrow, wide)}
    expected = recommend(points, tolerance=1.0)
    assert stored["recommendation"]["backbone"] == expected.backbone
    assert stored["recommendation"]["rule"] == expected.rule
    assert [rows[n]["recommended"] for n in (narrow, wide)] == [
        n == expected.backbone for n in (narrow, wide)]
    assert expected.reason in printed
    # Settings, machine (with CPU flags) and how the latencies were measured.
    assert stored["settings"]["backbones"] == [narrow, broken, wide]
    assert "cpu_flags" in stored["machine"] and stored["machine"]["cpu"]
    assert stored["latency"]["rounds"] == 2 and stored["latency"]["threads"] >= 1
    assert stored["seconds"] > 0


@pytest.mark.slow
def test_cli_compare_with_fine_tuning_and_a_config_file(tiny_backbones, image_folder, tmp_path,
                                                        capsys):
    narrow, wide, _ = tiny_backbones
    settings = tmp_path / "compare.yaml"
    settings.write_text("latency_rounds: 1\nverify_images: 4\ncalibration_images: 4\n"
                        "head_epochs: 10\n")
    out = tmp_path / "cli"
    assert main(["compare", "--dataset", str(image_folder), "--backbones", f"{narrow}, {wide}",
                 "--weights", "none", "--fine-tune", "--time-budget", "0.1",
                 "--quantization", "float32", "--rank-by", "float32", "--tolerance", "5",
                 "--output-dir", str(out), "--config", str(settings)]) == 0
    printed = capsys.readouterr().out
    assert "fine-tuned (0.1-minute budget, " in printed
    header = next(line for line in printed.splitlines() if line.startswith("backbone "))
    assert header.split()[3:6] == ["frozen", "fine-tuned", "macro-F1"]  # both accuracies
    stored = json.loads((out / "comparison.json").read_text())
    assert stored["settings"]["fine_tune"] is True and stored["settings"]["tolerance"] == 5.0
    assert stored["settings"]["latency_rounds"] == 1  # from the file; flags override the rest
    for row in stored["backbones"]:
        _check_row(row, ("float32",))
        assert row["fine_tuned"] is True and row["training"]["recipe"] == "auto_fine_tune"
        assert row["training"]["decisions"]["plan"]["epochs_run"] >= 1
        assert row["training"]["decisions"]["fine_tune"]["kept"] in ("fine_tuned",
                                                                     "frozen_features")
    assert stored["recommendation"]["tolerance_points"] == 5.0
    assert (out / "comparison.png").exists()


def test_every_backbone_failing_is_one_clear_error(tiny_backbones, image_folder, tmp_path,
                                                    capsys):
    broken = tiny_backbones[2]
    out = tmp_path / "failed"
    assert main(["compare", "--dataset", str(image_folder), "--backbones", broken,
                 "--weights", "none", "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("keras-transfer compare: error: every backbone failed "
                          f"({broken}: WeightsUnavailableError")
    stored = json.loads((out / "comparison.json").read_text())  # still says why
    assert stored["recommendation"] is None and stored["failed"] == [broken]
    assert not (out / "comparison.png").exists()
    with pytest.raises(KerasTransferError, match="every backbone failed"):
        compare_backbones(dataset=str(image_folder), backbones=[broken], weights=None,
                          output_dir=str(out))


def test_the_training_subset_is_the_same_for_every_backbone(image_folder):
    config = CompareConfig(dataset=str(image_folder), backbones=("vgg16",), batch_size=4,
                           max_train_examples=10, seed=5)
    first = _Comparison(config, image_folder).data(16)
    x1, y1 = map(np.concatenate, zip(*[(x.numpy(), y.numpy()) for x, y in first.train]))
    again = _Comparison(config, image_folder).data(16)
    x2, y2 = map(np.concatenate, zip(*[(x.numpy(), y.numpy()) for x, y in again.train]))
    order = lambda x: np.argsort(x.reshape(len(x), -1).sum(axis=1))  # noqa: E731
    assert len(x1) == 10 and np.array_equal(x1[order(x1)], x2[order(x2)])
    assert sorted(y1.tolist()) == sorted(y2.tolist()) and first.sizes["train"] == 10
    # At another size the same images in the same proportions.
    other = _Comparison(config, image_folder).data(24)
    x3 = np.concatenate([x.numpy() for x, _ in other.train])
    assert np.allclose(np.sort(x3.mean(axis=(1, 2, 3))), np.sort(x1.mean(axis=(1, 2, 3))),
                       atol=2.0)


# ---- input errors, before any data is read ------------------------------------------------------

@pytest.mark.parametrize("flags, message", [
    (["--backbones", "resnet-50"], "did you mean 'resnet50'?"),
    (["--backbones", "vgg16,MobileNetV2"], "did you mean 'mobilenet_v2'?"),
    (["--backbones", " , "], "backbones=(): expected a non-empty list"),
    (["--backbones", "vgg16,resnet50,vgg16"], "expected each backbone once: 'vgg16' is given "
                                              "2 times"),
    (["--backbones", "vgg16,inception_v3", "--image-size", "32"],
     "expected image_size >= 75, the smallest input 'inception_v3' accepts"),
    (["--image-size", "0"], "image_size=0: expected an integer >= 1"),
    (["--tolerance", "-1"], "tolerance=-1.0: expected a number >= 0"),
    (["--time-budget", "0"], "time_budget=0.0: expected a number > 0"),
    (["--max-train-examples", "0"], "max_train_examples=0: expected an integer >= 1"),
    (["--quantization", "int8", "--rank-by", "float32"],
     "rank_by='float32', quantization=('int8',): expected rank_by to be one of the exported"),
    (["--dataset", "elvp"], "dataset='elvp': neither a folder nor a built-in dataset (elpv, "
                            "elpv_binary) (did you mean 'elpv'?)"),
])
def test_bad_input_is_one_clear_line_before_any_work(flags, message, tmp_path, capsys):
    out = tmp_path / "never"
    argv = ["compare", "--output-dir", str(out)] + flags
    if "--backbones" not in flags:
        argv += ["--backbones", "vgg16,resnet50"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("keras-transfer compare: error: ") and message in err, err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()  # nothing read, nothing written


def test_bad_settings_in_python_name_every_problem():
    with pytest.raises(BadInputError) as error:
        compare_backbones(backbones=("resnet50", "resnet50", "nope"), batch_size=0,
                          output_dir="/nonexistent/never")
    text = str(error.value)
    assert text.startswith("2 invalid settings: backbones=") and "batch_size=0" in text
    assert "Unknown backbone 'nope'" in text
    with pytest.raises(BadInputError, match="'resnet50' is given 2 times"):
        compare_backbones(backbones=["resnet50", "resnet50"], output_dir="/nonexistent/never")


def test_default_backbones_are_those_with_offline_weights():
    config = CompareConfig()
    names = config.resolved_backbones()
    assert "efficientnet_lite0" in names
    assert all(registry.get_spec(name).has_offline_weights for name in names)
    assert list(itertools.chain(names)) == [n for n in registry.list_backbones() if n in names]
