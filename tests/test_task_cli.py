"""`keras-transfer train | evaluate | tune` for every task: which task the data is for, clear
errors before anything is read or built, and (slow) one offline train → evaluate per task.

The end-to-end runs use generated data (``--dataset synthetic``), tiny random text presets
(``--backbone tiny:bert`` / ``tiny:gpt2``) and MobileNetV2 with random weights at 64 px.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras
import pytest

import keras_transfer as kt
from keras_transfer.commands.cli import main
from keras_transfer.testing import synthetic
from keras_transfer.commands.task_config import TaskJobConfig, resolved
from keras_transfer.commands.task_data import choose_task, identify_data
from keras_transfer.commands.task_loaders import corpus_texts, read_detection
from keras_transfer.evaluation.tasks import answer_f1, normalize_answer
from keras_transfer.errors import BadInputError

TASKS = ("image_classification", "text_classification", "question_answering", "causal_lm",
         "segmentation", "detection")


def one_error_line(capsys, command: str = "train") -> str:
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith(f"keras-transfer {command}: error: "), err
    assert len(err.splitlines()) == 1 and "Traceback" not in err + captured.out, err
    return err


@pytest.fixture(scope="module")
def example_data(tmp_path_factory):
    """One small data set per task, in the layout `train` reads."""
    root = tmp_path_factory.mktemp("data")
    return {task: synthetic.write_example_data(task, root / task, 8) for task in TASKS}


@pytest.fixture
def workdir(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # runs/ and saved_models/ would go here: nothing may appear
    return tmp_path


# ------------------------------------------------------------------ which task the data is for


@pytest.mark.parametrize("task", TASKS)
def test_the_task_is_inferred_from_the_data(task, example_data):
    path = example_data[task]
    assert identify_data(str(path)).task == task
    assert choose_task(None, str(path)).name == task
    if task == "detection":  # a folder holding one COCO file is detection data too
        assert identify_data(str(path.parent)).task == task


def test_other_detection_layouts_and_built_in_names(tmp_path):
    voc = tmp_path / "voc"
    (voc / "Annotations").mkdir(parents=True)
    yolo = tmp_path / "yolo"
    (yolo / "images").mkdir(parents=True)
    (yolo / "labels").mkdir()
    assert identify_data(str(voc)).task == identify_data(str(yolo)).task == "detection"
    assert identify_data("tweets").task == "text_classification"
    assert identify_data("elpv").task == "image_classification"
    # A folder of no other task's layout, or a missing path, goes to the image job (as before).
    assert choose_task(None, str(tmp_path / "missing")).name == "image_classification"
    assert choose_task(None, None).name == "image_classification"


def test_a_yolo_folder_reads_its_class_names(tmp_path):
    from PIL import Image

    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "images" / "a.png")
    (tmp_path / "labels" / "a.txt").write_text("1 0.5 0.5 0.25 0.25\n")
    with pytest.raises(BadInputError, match="classes.txt"):
        read_detection(str(tmp_path))
    (tmp_path / "classes.txt").write_text("cat\ndog\n")
    data = read_detection(str(tmp_path))
    assert data.class_names == ["cat", "dog"] and data.classes[0].tolist() == [1]


# ------------------------------------------------------------------ clear errors, nothing read


@pytest.mark.parametrize("argv, message", [
    (["--task", "text", "--dataset", "{image_classification}"],
     "--task text: '{image_classification}' is a folder of class sub-folders, data for "
     "image_classification (--task image); text_classification reads a CSV/TSV/JSONL file"),
    (["--task", "segmentation", "--dataset", "{text_classification}"],
     "is a CSV file, data for text_classification (--task text); segmentation reads a folder "
     "holding images/ and masks/"),
    (["--task", "image", "--dataset", "{causal_lm}"],
     "is a plain-text corpus, data for causal_lm (--task lm)"),
    (["--task", "qa", "--dataset", "{detection}"], "is a COCO annotation file"),
    (["--task", "lm", "--dataset", "/nonexistent/corpus.txt"],
     "dataset='/nonexistent/corpus.txt': no such file or folder; causal_lm reads"),
    (["--dataset", "synthetic"], "--dataset synthetic: say which task's data to generate"),
    (["--task", "text"], "dataset: --task text needs --dataset: a CSV/TSV/JSONL file"),
    (["--task", "text", "--dataset", "synthetic", "--augment", "flips", "--imbalance", "focal"],
     "--augment, --imbalance: not a setting of text_classification"),
    (["--dataset", "{image_classification}", "--sequence-length", "8"],
     "--sequence-length: not a setting of image_classification"),
    (["--task", "qa", "--dataset", "synthetic", "--image-size", "64"],
     "task='question_answering', image_size=64: image_size applies to segmentation and "
     "detection, not question_answering."),
    (["--task", "detection", "--dataset", "synthetic", "--image-size", "100"],
     "a detector needs a multiple of 32"),
    (["--task", "segmentation", "--dataset", "synthetic", "--head", "yolov8"],
     "head='yolov8': expected one of deeplab_v3_plus, unet for segmentation"),
    (["--task", "segmentation", "--dataset", "synthetic", "--backbone", "mobilenetv2"],
     "did you mean 'mobilenet_v2'?"),
    (["--task", "text", "--dataset", "synthetic", "--weights", "imagenet"],
     "a text backbone's weights come with its preset"),
    (["--task", "text", "--dataset", "synthetic", "--text-column", "a,b,c"],
     "expected one column name, or two separated by a comma for a sentence pair"),
    (["--task", "text", "--dataset", "synthetic", "--epochs", "-1", "--batch-size", "0"],
     "2 invalid settings: batch_size=0: expected an integer >= 1; epochs=-1"),
])
def test_bad_input_is_one_line_before_anything_is_read(argv, message, example_data, workdir,
                                                       capsys):
    argv = [arg.format(**example_data) for arg in argv]
    assert main(["train", *argv]) == 2
    assert message.format(**example_data) in one_error_line(capsys)
    assert not list(workdir.iterdir())  # no run folder, no output


def test_a_config_file_may_name_the_task(workdir, capsys):
    config = workdir / "run.yaml"
    # `tune` reads the task key too (an image job's config.json names it).
    config.write_text("task: image\ndataset: elpv\nimage_sise: 64\n")
    assert main(["tune", "--config", str(config)]) == 2
    error = one_error_line(capsys, "tune")
    assert "unknown setting(s) ['image_sise'] (did you mean 'image_size'?)" in error
    assert "'task'" not in error
    config.write_text("task: lm\ndataset: synthetic\nimage_size: 64\n")
    assert main(["train", "--config", str(config)]) == 2
    assert "image_size applies to segmentation and detection, not causal_lm" in \
        one_error_line(capsys)
    config.write_text("task: lm\ndataset: synthetic\nsequence_lenght: 8\n")
    assert main(["train", "--config", str(config)]) == 2
    assert "unknown setting(s) ['sequence_lenght'] (did you mean 'sequence_length'?)" in \
        one_error_line(capsys)


def test_an_unknown_task_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--task", "translation"])
    assert exit_info.value.code == 2
    assert "'translation' is not a task; choose from image, text, qa, lm, segmentation, " \
           "detection" in capsys.readouterr().err


def test_tune_checks_each_tasks_settings_first(example_data, workdir, capsys):
    assert main(["tune", "--task", "segmentation", "--recipes", "fine_tune"]) == 2
    assert "--recipes: not a setting of segmentation (the image search only)" in \
        one_error_line(capsys, "tune")
    assert main(["tune", "--task", "image", "--epochs", "3"]) == 2
    assert "--epochs: not a setting of image_classification" in one_error_line(capsys, "tune")
    assert main(["tune", "--task", "lm"]) == 2
    assert "tune --task lm: needs --dataset" in one_error_line(capsys, "tune")
    space = workdir / "space.json"
    space.write_text(json.dumps({"learning_rate": [1e-3, 1e-5]}))
    assert main(["tune", "--task", "qa", "--dataset", "synthetic", "--space", str(space)]) == 2
    assert "learning_rate must be [low, high]" in one_error_line(capsys, "tune")


@pytest.mark.slow
def test_tune_searches_any_task_and_its_best_config_trains(workdir, capsys):
    out = workdir / "search"
    assert main(["tune", "--task", "qa", "--dataset", "synthetic", "--backbone", "tiny:bert",
                 "--sequence-length", "64", "--num-examples", "24", "--epochs", "1",
                 "--algorithm", "random", "--max-trials", "2", "--output-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Best validation exact match" in printed
    best = json.loads((out / "best_config.json").read_text())
    assert best["task"] == "question_answering" and 5e-5 / 4 <= best["learning_rate"] <= 2e-4
    assert {row["trial"] for row in json.loads((out / "tuning.json").read_text())["rows"]} \
        == {"0", "1"}
    config = TaskJobConfig(**best)
    config.validate()  # `train --config best_config.json` repeats the best trial
    assert (out / "trials.csv").exists() and (out / "search.png").exists()


def test_evaluate_checks_the_model_task(tmp_path, capsys):
    export = tmp_path / "export"
    export.mkdir()
    (export / "model.keras").write_bytes(b"not read")
    (export / "metadata.json").write_text(json.dumps({"task": "segmentation"}))
    assert main(["evaluate", str(export), "--task", "text"]) == 2
    assert "--task text: " + str(export) + " is a segmentation model (--task segmentation)" in \
        one_error_line(capsys, "evaluate")
    assert main(["evaluate", str(export), "--tta", "hflip"]) == 2
    assert "--tta: test-time augmentation is for image classifiers" in \
        one_error_line(capsys, "evaluate")


def test_a_real_process_exits_2_with_one_line(example_data, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "keras_transfer.commands.cli", "train", "--task", "text", "--dataset",
         str(example_data["image_classification"])], cwd=tmp_path, capture_output=True,
        text=True, timeout=180)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "Loading" not in done.stdout
    assert any(line.startswith("keras-transfer train: error: --task text: ")
               for line in done.stderr.splitlines())


# ------------------------------------------------------------------ settings and helpers


def test_resolved_settings_fill_in_each_task_defaults():
    text = resolved(TaskJobConfig(task="text", dataset="tweets"))
    assert (text.task, text.backbone, text.head, text.sequence_length) == (
        "text_classification", "minilm_l6", "single_label", 128)
    assert text.quantization == ("float32",) and text.head_epochs == 0
    lm = resolved(TaskJobConfig(task="lm", dataset="synthetic", formats=("keras",)))
    assert lm.backbone == "gpt2_base_en" and lm.formats == ("keras",)
    assert lm.fine_tune_learning_rate == 5e-5
    # Without a head stage, --learning-rate is the rate the one stage trains at.
    assert resolved(TaskJobConfig(task="lm", learning_rate=3e-3)).fine_tune_learning_rate == 3e-3
    two_stages = resolved(TaskJobConfig(task="text", head_epochs=2, learning_rate=3e-3))
    assert two_stages.fine_tune_learning_rate == 5e-5
    detection = resolved(TaskJobConfig(task="detection", dataset="synthetic"))
    assert (detection.head, detection.image_size, detection.fine_tune_learning_rate) == (
        "ssd", 224, 1e-4)
    assert detection.resolved_output_dir().as_posix() == "saved_models/synthetic_detection"


def test_qa_and_corpus_helpers():
    assert normalize_answer("The Louvre, in Paris.") == "louvre in paris"
    assert answer_f1("Paris", "paris") == 1.0 and answer_f1("london", "paris") == 0.0
    assert corpus_texts("a b c d e\nf", 2) == ["a b", "c d", "e", "f"]
    example = synthetic.synthetic_squad(3, seed=2)[2]
    assert example["context"].count(example["answer"]) >= 1


# ------------------------------------------------------------------ train → evaluate, per task


# One epoch, a few dozen examples, the Keras file only (each export adapter's SavedModel and
# TFLite files are tested with the adapter): about a minute per task on 2 idle cores.
TINY = ["--epochs", "1", "--batch-size", "8", "--num-examples", "24", "--formats", "keras"]
TINY_IMAGES = ["--backbone", "mobilenet_v2", "--weights", "none", "--image-size", "64",
               "--head-epochs", "0", *TINY]
RUNS = {
    "text_classification": (["--task", "text", "--backbone", "tiny:bert",
                             "--sequence-length", "16", *TINY], ("accuracy", "macro_f1"),
                            "test texts: accuracy"),
    "question_answering": (["--task", "qa", "--backbone", "tiny:bert", "--sequence-length", "64",
                            *TINY], ("exact_match", "f1"), "test questions: exact match"),
    "causal_lm": (["--task", "lm", "--backbone", "tiny:gpt2", "--sequence-length", "24", *TINY],
                  ("perplexity", "token_accuracy"), "test texts: perplexity"),
    "segmentation": (["--task", "segmentation", *TINY_IMAGES], ("mean_iou", "pixel_accuracy"),
                     "test images: mean IoU"),
    "detection": (["--task", "detection", *TINY_IMAGES], ("map", "map50"),
                  "test images: mAP@0.5:0.95"),
}


@pytest.mark.slow
@pytest.mark.parametrize("task", list(RUNS))
def test_train_then_evaluate_every_task_offline(task, tmp_path, monkeypatch, capsys):
    flags, metrics, printed = RUNS[task]
    out = tmp_path / "export"
    done = subprocess.run(
        [sys.executable, "-m", "keras_transfer.commands.cli", "train", "--dataset", "synthetic", *flags,
         "--output-dir", str(out)], cwd=tmp_path, capture_output=True, text=True, timeout=900,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert printed in done.stdout
    assert json.loads((out / "metadata.json").read_text())["task"] == task
    report = json.loads((out / "report.json").read_text())
    assert report["task"] == task and set(metrics) <= set(report["test"])
    saved = json.loads((out / "config.json").read_text())
    TaskJobConfig(**saved).validate()  # `train --config` on it repeats the run
    assert saved["task"] == task and saved["dataset"] == "synthetic"

    # `evaluate` reads the task from metadata.json and the split from config.json: the same
    # test examples and the same model give the training report's numbers.
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", str(out)]) == 0
    assert printed in capsys.readouterr().out
    evaluation = json.loads((out / "evaluation_test" / "evaluation.json").read_text())
    assert evaluation["task"] == task and evaluation["num_examples"] == \
        report["test"]["num_examples"]
    for metric in metrics:
        assert evaluation[metric] == pytest.approx(report["test"][metric], abs=1e-3), metric


@pytest.mark.slow
def test_a_sentence_pair_job_from_two_text_columns(tmp_path, monkeypatch):
    csv = tmp_path / "pairs.csv"
    csv.write_text("premise,hypothesis,label\n" + "".join(
        f"the cat is {a},the cat is {b},{'same' if a == b else 'different'}\n"
        for a in ("big", "small", "red", "blue") for b in ("big", "small", "red", "blue")) * 2)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "nli"
    assert main(["train", "--task", "text", "--dataset", str(csv), "--text-column",
                 "premise, hypothesis", "--backbone", "tiny:bert", "--sequence-length", "16",
                 *TINY, "--output-dir", str(out)]) == 0
    model = keras.models.load_model(out / "model.keras", safe_mode=True)
    assert [t.name for t in model.inputs] == ["text_a", "text_b"]
    assert kt.tasks.task_config_of(model)["pairs"] is True
    predicted = kt.predict(out, [("the cat is big", "the cat is big")])
    assert {label for label, _ in predicted[0]} == {"same", "different"}
