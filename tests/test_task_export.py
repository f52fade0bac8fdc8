"""`kt.export` for every task: one set of keywords, one file set, one ``metadata.json`` schema,
every quantization the task declares (converted, verified and run), float32 parity with Keras.

Tiny models: VGG16 at 32 px (random weights give varied outputs), U-Net on MobileNetV2 at 64 px,
SSD on the tests' tiny backbone (MobileNetV2 in the slow CLI test), text tasks on tiny random
keras-hub presets. Exports take 10-60 s each on two cores: most cases are marked slow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import detection_helpers as helpers
import keras_transfer as kt
from keras_transfer.errors import BadInputError
from keras_transfer.export.schema import COMMON_KEYS, missing_keys

TASKS = ("image_classification", "segmentation", "detection", "text_classification",
         "question_answering", "causal_lm")
FAST = ("image_classification",)
FLAVOURS = {"float32": "model.tflite", "float16": "model.float16.tflite",
            "dynamic": "model.dynamic.tflite", "int8": "model.int8.tflite"}
INPUT_KINDS = {"image_classification": "images", "segmentation": "images", "detection": "images",
               "text_classification": "texts", "question_answering": "question_context",
               "causal_lm": "prompts"}
OUTPUT_KINDS = {"image_classification": "scores", "segmentation": "masks",
                "detection": "detections", "text_classification": "scores",
                "question_answering": "spans", "causal_lm": "logits"}
QUESTIONS = [("what is big?", "the city is big."), ("where is paris?", "paris is in france.")]


def marked(tasks=TASKS):
    return [task if task in FAST else pytest.param(task, marks=pytest.mark.slow)
            for task in tasks]


@pytest.fixture(scope="module")
def presets(tmp_path_factory):
    root = tmp_path_factory.mktemp("presets")
    return {family: str(kt.text.make_tiny_preset(family, root / family))
            for family in ("bert", "gpt2")}


def build(task: str, presets) -> tuple:
    """(model, verify_data, labels) of a tiny model of `task`."""
    rng = np.random.default_rng(0)
    if task == "image_classification":
        model = kt.build_image_classifier("vgg16", 3, weights=None, input_shape=(32, 32, 3))
        return model, rng.uniform(0, 255, (4, 32, 32, 3)).astype("float32"), ["a", "b", "c"]
    if task == "segmentation":
        model = kt.build_segmenter("unet", "mobilenet_v2", 3, weights=None,
                                   input_shape=(64, 64, 3), filters=16)
        return model, rng.uniform(0, 255, (3, 64, 64, 3)).astype("float32"), ["bg", "x", "y"]
    if task == "detection":
        model = kt.build_detector("ssd", helpers.TINY, 2, weights=None, input_shape=(64, 64, 3))
        return model, helpers.batch(3)[0], ["square", "disc"]
    if task == "text_classification":
        model = kt.text.build_text_classifier(presets["bert"], 2, sequence_length=16)
        return model, ["a great film", "an awful day", "the city is big"], ["neg", "pos"]
    if task == "question_answering":
        return kt.text.build_question_answerer(presets["bert"], sequence_length=32), QUESTIONS, None
    model = kt.text.build_causal_lm(presets["gpt2"], sequence_length=16)
    return model, ["the city is", "a great"], None


def expected_files(task: str, labels) -> set[str]:
    files = {"model.keras", "saved_model", "model.tflite", "metadata.json"}
    if labels is not None:
        files.add("labels.txt")
    if task in ("text_classification", "question_answering", "causal_lm"):
        files.add("tokenizer")
    return files


@pytest.mark.parametrize("task", marked())
def test_export_writes_the_shared_files_and_metadata_schema(task, presets, tmp_path):
    model, verify, labels = build(task, presets)
    target = tmp_path / "export"
    info = kt.export(model, target, labels=labels, verify_data=verify, verbose=False,
                     metadata={"run": "contract"}, overwrite=True, require_parity=True)
    assert {p.name for p in target.iterdir()} == expected_files(task, labels)
    metadata = json.loads((target / "metadata.json").read_text())
    assert missing_keys(metadata) == [] and set(COMMON_KEYS) <= set(info)
    assert metadata["task"] == task and metadata["format_version"] == 2
    assert metadata["input"]["kind"] == INPUT_KINDS[task]
    assert metadata["output"]["kind"] == OUTPUT_KINDS[task]
    assert metadata["labels"] == labels and metadata["user"] == {"run": "contract"}
    assert metadata["quantization"] == ["float32"]
    for name, entry in metadata["files"].items():
        path = target / name
        size = (sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
                if path.is_dir() else path.stat().st_size)
        assert entry["size_bytes"] == size, name
    assert {key.split("/")[0] for key in metadata["checksums"]} == set(metadata["files"])
    verification = metadata["verification"]
    assert verification["parity"] is True and "problems" not in verification
    # float32 TFLite and the SavedModel reproduce Keras.
    assert verification["tflite"]["model.tflite"]["quantization"] == "float32"
    tflite = verification["tflite"]["model.tflite"]["max_abs_diff"]
    saved = verification["saved_model"]["max_abs_diff"]
    for diff in (tflite, saved):
        worst = max(diff.values()) if isinstance(diff, dict) else diff
        assert worst < 1e-4, (task, verification)


def test_float32_tflite_runs_like_keras_through_the_one_loader(presets, tmp_path):
    from keras_transfer.export.runner import load_runner

    model, images, labels = build("image_classification", presets)
    kt.export(model, tmp_path / "e", formats=("keras", "tflite"), labels=labels,
              verify_data=images, verbose=False, num_verify=4)
    expected = np.asarray(model(images, training=False))
    for name in ("model.keras", "model.tflite"):
        runner = load_runner(tmp_path / "e" / name)
        assert runner.input_names == ["images"] or runner.kind == "keras"
        np.testing.assert_allclose(runner(images)["predictions"], expected, atol=1e-5)


RESULT_CHECKS = {
    "image_classification": lambda r: isinstance(r[0][0], tuple) and isinstance(r[0][0][1], float),
    "segmentation": lambda r: r[0].ndim == 2 and r[0].dtype == np.int32,
    "detection": lambda r: {"boxes", "scores", "classes", "labels"} <= set(r[0]),
    "text_classification": lambda r: isinstance(r[0][0][0], str),
    "question_answering": lambda r: set(r[0]) == {"answer", "score", "start", "end"},
    "causal_lm": lambda r: isinstance(r[0], str),
}


def predict_inputs(task: str, verify):
    if task == "question_answering":
        return [{"question": q, "context": c} for q, c in verify]
    return verify[:2]


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_every_quantization_the_task_declares_converts_and_runs(task, presets, tmp_path):
    model, verify, labels = build(task, presets)
    declared = kt.get_task(task).quantizations
    assert declared == ("float32", "float16", "dynamic", "int8")
    info = kt.export(model, tmp_path / "q", formats="tflite", quantization="all",
                     labels=labels, verify_data=verify, verbose=False)
    assert sorted(info["quantization"]) == sorted(declared)
    for flavour in declared:
        name = FLAVOURS[flavour]
        assert info["files"][name]["quantization"] == flavour
        assert info["verification"]["tflite"][name]["quantization"] == flavour
        result = kt.predict(tmp_path / "q" / name, predict_inputs(task, verify))
        assert RESULT_CHECKS[task](result), (task, flavour, result)
    records = info["verification"]["tflite"]
    if task == "question_answering":  # the span masks do not flatten the int8 ranges
        assert records["model.int8.tflite"]["start_agreement"] == 1.0
        assert records["model.int8.tflite"]["max_abs_diff"] < 0.1
    if task == "text_classification":
        assert records["model.int8.tflite"]["top1_agreement"] == 1.0


def test_detector_decodes_and_suppresses_inside_the_tflite_file(tmp_path):
    """NMS in the graph with built-in ops only: the file's detections are the host decoder's."""
    from keras_transfer.detection import decode_detections
    from keras_transfer.detection.decode import box_decoder, detections_from_outputs
    from keras_transfer.detection.export import compare_detections, run_tflite
    from keras_transfer.export.interpreter import TFLiteModel

    model = kt.build_detector("ssd", helpers.TINY, 2, weights=None, input_shape=(64, 64, 3))
    images = helpers.batch(3)[0]
    info = kt.export(model, tmp_path / "det", formats="tflite", verify_data=images,
                     labels=["square", "disc"], verbose=False, nms={"score_threshold": 0.3})
    assert info["task_config"]["nms"]["inside_graph"] is True
    assert info["task_config"]["nms"]["score_threshold"] == 0.3
    runner = TFLiteModel(tmp_path / "det" / "model.tflite")
    ops = {op["op_name"] for op in runner.interpreter._get_ops_details()}
    assert "NON_MAX_SUPPRESSION_V4" in ops and not any("Flex" in op for op in ops)
    outputs = run_tflite(tmp_path / "det" / "model.tflite", images)
    raw = {k: np.asarray(v) for k, v in model(images, training=False).items()}
    expected = decode_detections(box_decoder(model), raw, score_threshold=0.3)
    assert sum(len(d["scores"]) for d in expected) > 0
    assert compare_detections(expected, detections_from_outputs(outputs),
                              score_threshold=0.3) == []
    assert info["verification"]["graph_detections_equal"] is True


@pytest.mark.slow
@pytest.mark.parametrize("kind, options", [
    ("retinanet", {}),
    ("faster_rcnn", {"fpn_width": 32, "fc_units": 64, "num_proposals": 64, "rois_per_image": 32}),
    ("yolov8", {}),
])
def test_every_detector_kind_exports_with_nms_inside(kind, options, tmp_path):
    if kind == "yolov8":
        pytest.importorskip("keras_cv")
    model = kt.build_detector(kind, helpers.TINY, 2, weights=None, input_shape=(64, 64, 3),
                              **options)
    images = helpers.batch(2)[0]
    info = kt.export(model, tmp_path / kind, formats=("keras", "tflite"), verify_data=images,
                     quantization=("float32", "dynamic"), verbose=False)
    assert info["verification"]["parity"] and info["verification"]["graph_detections_equal"]
    assert info["task_config"]["kind"] == kind
    for name in ("model.keras", "model.tflite", "model.dynamic.tflite"):
        result = kt.predict(tmp_path / kind / name, images, score_threshold=0.0)
        assert RESULT_CHECKS["detection"](result) and len(result) == 2


def test_shared_keywords_are_checked_before_anything_is_written(presets, tmp_path):
    model = kt.build_detector("ssd", helpers.TINY, 2, weights=None, input_shape=(64, 64, 3),
                              compile=False)
    with pytest.raises(BadInputError, match=r"3 labels for a model with 2 outputs"):
        kt.export(model, tmp_path / "a", labels=["a", "b", "c"], verbose=False)
    with pytest.raises(BadInputError, match=r"bogus= is not an export option of a detection"):
        kt.export(model, tmp_path / "b", bogus=1, verbose=False)
    text = kt.text.build_text_classifier(presets["bert"], 2, sequence_length=8)
    with pytest.raises(BadInputError, match=r"quantization \['int4'\] is not available"):
        kt.export(text, tmp_path / "c", quantization="int4")
    assert not any(tmp_path.iterdir())


def test_the_output_task_comes_from_the_model_not_its_activation():
    import keras

    from keras_transfer.export.describe import describe_model

    inputs = keras.Input((8, 8, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    # A softmax head tagged as regression (e.g. predicting proportions): no guessing.
    outputs = keras.layers.Dense(3, activation="softmax", name="predictions")(pooled)
    tagged = kt.tasks.tag(keras.Model(inputs, outputs), "image_classification",
                          head="regression")
    assert describe_model(tagged)["output"]["task"] == "regression"
    multi = kt.build_image_classifier("vgg16", 2, weights=None, input_shape=(32, 32, 3),
                                      task="multi_label")
    assert describe_model(multi)["output"]["task"] == "multi_label"


def test_format_1_readers_still_work(tmp_path):
    from keras_transfer.export.predict import recorded_resize_mode
    from keras_transfer.tasks.artifacts import artifact_task

    (tmp_path / "image").mkdir()
    (tmp_path / "image" / "metadata.json").write_text(json.dumps(
        {"model": {"input": {"resize_mode": "pad"}, "output": {"task": "single_label"}}}))
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "metadata.json").write_text(json.dumps(
        {"tokenizer": {}, "string_inputs": ["question", "context"]}))
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "metadata.json").write_text(json.dumps(
        {"task": "segmentation", "input": {"resize_mode": "crop"}}))
    assert artifact_task(tmp_path / "image") == "image_classification"
    assert recorded_resize_mode(tmp_path / "image" / "model.tflite") == "pad"
    assert artifact_task(tmp_path / "text") == "question_answering"
    assert artifact_task(tmp_path / "new") == "segmentation"
    assert recorded_resize_mode(tmp_path / "new" / "model.tflite") == "crop"


@pytest.mark.slow
def test_cli_exports_a_mobilenet_ssd_and_a_text_model(presets, tmp_path):
    """`keras-transfer export MODEL.keras OUT` for tasks other than images (the detector used
    to fail with "Could not locate class 'SSDDetector'")."""
    detector = kt.build_detector("ssd", "mobilenet_v2", 2, weights=None, input_shape=(64, 64, 3))
    detector.save(tmp_path / "det.keras")
    text = kt.text.build_text_classifier(presets["bert"], 2, sequence_length=8)
    text.save(tmp_path / "text.keras")
    (tmp_path / "labels.txt").write_text("neg\npos\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    for name, extra in (("det", []), ("text", ["--labels", str(tmp_path / "labels.txt"),
                                               "--quantization", "float32", "int8"])):
        result = subprocess.run(
            [sys.executable, "-m", "keras_transfer.commands.cli", "export", str(tmp_path / f"{name}.keras"),
             str(tmp_path / f"{name}_out"), *extra],
            capture_output=True, text=True, env=env, timeout=900)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "Traceback" not in result.stderr
        metadata = json.loads((tmp_path / f"{name}_out" / "metadata.json").read_text())
        assert missing_keys(metadata) == []
        assert f"exported a {metadata['task']} model" in result.stdout
    assert json.loads((tmp_path / "text_out" / "metadata.json").read_text())["labels"] == [
        "neg", "pos"]
    assert (tmp_path / "text_out" / "model.int8.tflite").is_file()
