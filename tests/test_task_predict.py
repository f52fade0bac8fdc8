"""`kt.predict` and `keras-transfer predict` for every task: each artifact file of an export
(``model.keras``, ``saved_model/``, ``model.tflite``) returns what the task means, the files agree,
``--output`` writes ``predictions.json`` (and PNGs), and wrong inputs are one clear line.

Exports are made once per task (module fixture, on first use); most cases are slow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import detection_helpers as helpers  # noqa: F401 - registers the tiny detection backbone
import keras_transfer as kt
from keras_transfer.commands.cli import main
from keras_transfer.errors import BadInputError
from keras_transfer.tasks import inputs as read
from test_task_export import RESULT_CHECKS, TASKS, build, marked, predict_inputs

FILES = ("model.keras", "saved_model", "model.tflite")


@pytest.fixture(scope="module")
def presets(tmp_path_factory):
    root = tmp_path_factory.mktemp("presets")
    return {family: str(kt.text.make_tiny_preset(family, root / family))
            for family in ("bert", "gpt2")}


@pytest.fixture(scope="module")
def exports(presets, tmp_path_factory):
    """task → (export folder, verify data), exported on first use."""
    root = tmp_path_factory.mktemp("exports")
    cache: dict[str, tuple[Path, object]] = {}

    def get(task: str):
        if task not in cache:
            model, verify, labels = build(task, presets)
            kt.export(model, root / task, labels=labels, verify_data=verify, verbose=False)
            cache[task] = (root / task, verify)
        return cache[task]

    return get


def comparable(task: str, result):
    """A result as numbers, to compare one file's with another's."""
    if task in ("image_classification", "text_classification"):
        return [sorted(row) for row in result]
    if task == "segmentation":
        return [mask.tolist() for mask in result]
    if task == "detection":
        return [(d["classes"].tolist(), np.round(d["scores"], 3).tolist()) for d in result]
    if task == "question_answering":
        return [(a["answer"], a["start"], a["end"]) for a in result]
    return result


@pytest.mark.parametrize("task", marked())
def test_predict_on_every_artifact_file(task, exports):
    folder, verify = exports(task)
    inputs = predict_inputs(task, verify)
    results = {name: kt.predict(folder / name, inputs) for name in FILES}
    results["folder"] = kt.predict(folder, inputs)
    for name, result in results.items():
        assert len(result) == len(inputs) and RESULT_CHECKS[task](result), (name, result)
    if task == "causal_lm":  # keras-hub generates on model.keras, a greedy loop on the others
        assert results["saved_model"] == results["model.tflite"]
        assert all(text.startswith(prompt) for text, prompt in zip(results["model.tflite"],
                                                                    inputs))
        return
    reference = comparable(task, results["model.keras"])
    if task in ("image_classification", "text_classification"):
        for name in ("saved_model", "model.tflite"):
            for row, expected in zip(results[name], results["model.keras"]):
                np.testing.assert_allclose([s for _, s in row], [s for _, s in expected],
                                           atol=1e-4)
    else:
        for name in ("saved_model", "model.tflite"):
            assert comparable(task, results[name]) == reference, name


def test_predict_writes_json_and_pictures(exports, tmp_path):
    folder, images = exports("image_classification")
    result = kt.predict(folder / "model.tflite", images[:2], top_k=2, output_dir=tmp_path / "o")
    written = json.loads((tmp_path / "o" / "predictions.json").read_text())
    assert written["task"] == "image_classification"
    assert [row["input"] for row in written["predictions"]] == ["image000", "image001"]
    assert [entry["label"] for entry in written["predictions"][0]["top_k"]] == [
        label for label, _ in result[0]]


@pytest.mark.slow
@pytest.mark.parametrize("task", ["segmentation", "detection"])
def test_image_tasks_draw_a_png_per_image(task, exports, tmp_path):
    folder, images = exports(task)
    paths = []
    for i, image in enumerate(images[:2]):
        paths.append(tmp_path / f"photo{i}.png")
        Image.fromarray(np.asarray(image, np.uint8)).save(paths[-1])
    kt.predict(folder, [str(p) for p in paths], output_dir=tmp_path / "out")
    suffix = "_mask.png" if task == "segmentation" else "_detections.png"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        ["predictions.json"] + [f"photo{i}{suffix}" for i in range(2)])
    rows = json.loads((tmp_path / "out" / "predictions.json").read_text())["predictions"]
    assert [row["input"] for row in rows] == [str(p) for p in paths]


@pytest.mark.slow
@pytest.mark.parametrize("task", ["segmentation", "detection"])
def test_masks_and_boxes_come_back_at_the_images_own_size(task, exports, tmp_path):
    from keras_transfer.tasks.geometry import Resize

    folder, images = exports(task)
    model_size = np.asarray(images[0]).shape[:2]
    own_size = (model_size[0] * 2, model_size[1] * 3)  # another size and aspect
    path = tmp_path / "wide.png"
    Image.fromarray(np.asarray(images[0], np.uint8)).resize(own_size[::-1]).save(path)
    # Detections at any score, so that there are boxes to map.
    options = {"score_threshold": 0.0} if task == "detection" else {}
    result = kt.predict(folder, [str(path)], output_dir=tmp_path / "out", **options)[0]
    in_model = kt.predict(folder, [str(path)], in_model_pixels=True, **options)[0]
    resize = Resize.of(own_size, model_size, "stretch")
    drawing = next((tmp_path / "out").glob("wide_*.png"))
    assert Image.open(drawing).size[::-1] == own_size or task == "detection"
    if task == "segmentation":
        assert result.shape == own_size and in_model.shape == tuple(model_size)
        np.testing.assert_array_equal(result, resize.mask_to_original(in_model))
    else:
        assert len(result["boxes"]) > 0
        np.testing.assert_allclose(result["boxes"], resize.boxes_to_original(in_model["boxes"]),
                                   atol=1e-3)
        assert (result["boxes"][:, 2] <= own_size[1]).all()
        assert (result["boxes"][:, 3] <= own_size[0]).all()


def cli_arguments(task: str, verify, tmp_path: Path) -> list[str]:
    if task in ("image_classification", "segmentation", "detection"):
        paths = []
        for i, image in enumerate(verify[:2]):
            paths.append(str(tmp_path / f"in{i}.png"))
            Image.fromarray(np.asarray(image, np.uint8)).save(paths[-1])
        return paths
    if task == "question_answering":
        (tmp_path / "questions.json").write_text(json.dumps(
            [{"question": q, "context": c} for q, c in verify]))
        return [str(tmp_path / "questions.json")]
    (tmp_path / "texts.txt").write_text("\n".join(verify[:2]) + "\n")
    return [verify[0], str(tmp_path / "texts.txt")]


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_cli_predict_on_the_export_folder(task, exports, tmp_path):
    folder, verify = exports(task)
    arguments = cli_arguments(task, verify, tmp_path)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    result = subprocess.run(
        [sys.executable, "-m", "keras_transfer.commands.cli", "predict", str(folder), *arguments,
         "--output", str(tmp_path / "out")], capture_output=True, text=True, env=env,
        timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    lines = result.stdout.strip().splitlines()
    written = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert written["task"] == task
    expected = {"question_answering": 2, "text_classification": 3, "causal_lm": 3}.get(task, 2)
    assert len(lines) == len(written["predictions"]) == expected, result.stdout


@pytest.fixture
def fake_export(tmp_path):
    """An export folder holding only metadata.json: input errors come before any model loads."""
    def make(task: str) -> Path:
        folder = tmp_path / task
        folder.mkdir()
        (folder / "metadata.json").write_text(json.dumps({"task": task}))
        return folder
    return make


@pytest.mark.parametrize("task, argv, message", [
    ("image_classification", ["/nonexistent/cat.png"], "/nonexistent/cat.png: no such image"),
    ("detection", [], "no image files given"),
    ("text_classification", ["/nonexistent/reviews.csv"], "/nonexistent/reviews.csv: no such "
                                                          "file"),
    ("question_answering", ["just a text"], "just a text: question answering reads --question"),
    ("question_answering", ["--question", "q?"], "1 --question but 0 --context"),
    ("causal_lm", ["--tta"], "--tta is for image_classification models"),
    ("segmentation", ["a.png", "--max-length", "3"], "--max-length is for causal_lm models"),
])
def test_cli_wrong_inputs_are_one_line(task, argv, message, fake_export, capsys):
    folder = fake_export(task)
    assert main(["predict", str(folder), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("keras-transfer predict: error: ") and message in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_text_and_question_files(tmp_path):
    (tmp_path / "a.txt").write_text("first text\n\nsecond\tcolumn\n")
    (tmp_path / "b.csv").write_text("id,text_a,text_b\n1,a cat,a feline\n2,red,blue\n")
    (tmp_path / "c.jsonl").write_text('{"text": "one"}\n"two"\n')
    (tmp_path / "q.jsonl").write_text('{"question": "where?", "context": "here."}\n')
    assert read.read_texts(["loose", str(tmp_path / "a.txt")]) == [
        "loose", "first text", "second\tcolumn"]
    assert read.read_texts([str(tmp_path / "b.csv")], 2) == [("a cat", "a feline"),
                                                             ("red", "blue")]
    assert read.read_texts([str(tmp_path / "c.jsonl")]) == ["one", "two"]
    assert read.read_texts(["a", "b", "c", "d"], 2) == [("a", "b"), ("c", "d")]
    assert read.read_questions([str(tmp_path / "q.jsonl")]) == [
        {"question": "where?", "context": "here."}]
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{"body": "no text key"}\n')
    with pytest.raises(BadInputError, match=r"bad.jsonl, line 2: no text"):
        read.read_texts([str(tmp_path / "bad.jsonl")])
    with pytest.raises(BadInputError, match=r"3 text argument\(s\) do not pair up"):
        read.read_texts(["a", "b", "c"], 2)


def test_a_bare_keras_file_says_its_task(tmp_path):
    from keras_transfer.tasks.artifacts import artifact_task

    model = kt.build_detector("ssd", helpers.TINY, 2, weights=None, input_shape=(64, 64, 3),
                              compile=False)
    model.save(tmp_path / "det.keras")
    assert artifact_task(tmp_path / "det.keras") == "detection"
    classifier = kt.build_image_classifier("vgg16", 2, weights=None, input_shape=(32, 32, 3))
    classifier.save(tmp_path / "cls.keras")
    assert artifact_task(tmp_path / "cls.keras") == "image_classification"
