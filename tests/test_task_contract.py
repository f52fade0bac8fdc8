"""One task contract (#20): every task is built, frozen, trained, saved, exported and predicted
the same way. One parametrized test per step, over every registered task, on tiny models."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_transfer as kt
from keras_transfer.detection import detection_dataset, synthetic_detection
from keras_transfer.recipes import fine_tune
from keras_transfer.text import make_tiny_preset

TASKS = ["image", "segmentation", "detection", "text", "qa", "lm"]


def _image():
    model = kt.build_image_classifier("vgg16", 2, weights=None, input_shape=(32, 32, 3))
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    return model, tf.data.Dataset.from_tensor_slices((x, np.array([0, 1, 0, 1]))).batch(2), x


def _segmentation():
    model = kt.build_segmenter("unet", "vgg16", 3, weights=None, input_shape=(32, 32, 3),
                               filters=8)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    masks = rng.integers(0, 3, (4, 32, 32))
    return model, tf.data.Dataset.from_tensor_slices((x, masks)).batch(2), x


def _detection():
    model = kt.build_detector("ssd", "mobilenet_v2", 2, weights=None, input_shape=(64, 64, 3))
    images, boxes, classes = synthetic_detection(4, 64, num_classes=2, seed=0)
    data = detection_dataset(images, boxes, classes, (64, 64), batch_size=2, max_boxes=4)
    return model, data, images


def _text(tmp: Path):
    preset = str(make_tiny_preset("bert", tmp / "bert"))
    model = kt.build_text_classifier(preset, 2, sequence_length=16)
    texts = ["a good film", "an awful day", "the city is big", "the river is blue"]
    return model, tf.data.Dataset.from_tensor_slices((texts, [1, 0, 1, 0])).batch(2), texts


def _qa(tmp: Path):
    preset = str(make_tiny_preset("bert", tmp / "bert"))
    model = kt.build_question_answerer(preset, sequence_length=32)
    inputs = {"question": ["what is big?", "what is blue?"],
              "context": ["the city is big.", "the river is blue."]}
    data = tf.data.Dataset.from_tensor_slices(
        (inputs, {"start": [4, 4], "end": [5, 5]})).batch(2)
    return model, data, inputs


def _lm(tmp: Path):
    model = kt.build_causal_lm(str(make_tiny_preset("gpt2", tmp / "gpt2")), sequence_length=16)
    texts = ["the city is big", "the river is blue", "a good film", "an awful day"]
    return model, tf.data.Dataset.from_tensor_slices(texts).batch(2), texts


def build(task: str, tmp: Path):
    """(model, training data, raw inputs to predict on) for one task."""
    makers = {"image": _image, "segmentation": _segmentation, "detection": _detection}
    if task in makers:
        return makers[task]()
    return {"text": _text, "qa": _qa, "lm": _lm}[task](tmp)


def _backbone_trainable(model: keras.Model) -> set[str]:
    return {v.path for block in kt.blocks_of(model) for layer in block.layers
            for v in layer.trainable_weights}


@pytest.mark.parametrize("task", TASKS)
def test_every_model_carries_its_task(task, tmp_path):
    model, _, _ = build(task, tmp_path)
    assert kt.task_of(model) is kt.get_task(task)


@pytest.mark.parametrize("task", TASKS)
def test_block_api_freezes_and_unfreezes_the_last_block(task, tmp_path):
    model, _, _ = build(task, tmp_path)
    rows = kt.describe(model, print_fn=None)
    assert rows and all("block" in row for row in rows)
    kt.freeze(model)
    assert _backbone_trainable(model) == set()
    kt.unfreeze(model, last=1)
    trainable = _backbone_trainable(model)
    assert trainable, "unfreeze(last=1) must make at least one backbone weight trainable"
    # Exactly one block's weights: the last block that trains.
    owners = {block.name for block in kt.blocks_of(model) for layer in block.layers
              for v in layer.trainable_weights}
    assert len(owners) == 1


@pytest.mark.parametrize("task", TASKS)
def test_fine_tune_runs_its_stages_with_the_task_compile_defaults(task, tmp_path):
    model, data, _ = build(task, tmp_path)
    history = fine_tune(model, data, data, head_epochs=1, epochs=1, unfreeze_blocks=1,
                        callbacks=[], verbose=0)
    stages = [name for name, _ in history.stages]
    expected = ["head", "fine_tune"] if kt.task_of(model).separate_head else ["fine_tune"]
    assert stages == expected
    optimizer = type(getattr(model.optimizer, "inner", model.optimizer)).__name__
    if kt.task_of(model).alias in ("text", "qa", "lm"):
        assert optimizer == "AdamW"  # a text model keeps its optimizer through fine_tune


@pytest.mark.parametrize("task", TASKS)
def test_discriminative_rates_gradual_unfreezing_and_the_lr_finder_on_every_task(task, tmp_path):
    from keras_transfer.recipes import find_learning_rate

    model, data, _ = build(task, tmp_path)
    before = [np.array(w) for w in model.weights]
    sweep = find_learning_rate(model, data, steps=4, min_lr=1e-5, max_lr=1e-2)
    assert len(sweep.learning_rates) == 4 and np.isfinite(sweep.raw_losses[0])
    assert all(np.array_equal(a, np.array(w)) for a, w in zip(before, model.weights))  # restored
    history = fine_tune(model, data, data, head_epochs=0, epochs=2, unfreeze_blocks=2,
                        discriminative=0.5, gradual_unfreezing=1, callbacks=[], verbose=0)
    assert [name for name, _ in history.stages] == ["fine_tune"]
    assert type(model.optimizer).__name__ == "DiscriminativeOptimizer"
    assert _backbone_trainable(model)  # the blocks opened one by one are training


@pytest.mark.slow
def test_every_task_keras_file_loads_with_safe_mode_in_a_fresh_interpreter(tmp_path):
    paths = {}
    for task in TASKS:
        model, _, _ = build(task, tmp_path)
        paths[task] = str(tmp_path / f"{task}.keras")
        model.save(paths[task])
    script = textwrap.dedent(f"""
        import json, keras, keras_transfer as kt
        paths = {json.dumps(paths)}
        print(json.dumps({{task: kt.task_of(keras.models.load_model(path, safe_mode=True)).alias
                          for task, path in paths.items()}}))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded == {task: kt.get_task(task).alias for task in TASKS}


def test_every_task_owns_its_evaluation_and_headline():
    """Evaluation is part of the contract: `evaluate_split`, `summary` and `headline` ask the
    task, so a task registered tomorrow needs no branch anywhere."""
    from keras_transfer.evaluation.tasks import headline, summary

    for name in kt.list_tasks():
        task = kt.get_task(name)
        assert callable(task.evaluate) and task.headline, name
        report = {"task": name, "split": "test", "num_examples": 3,
                  **{metric.key: 0.5 for metric in task.headline}}
        line = summary(report)
        assert line.startswith(f"3 test {task.examples}: ") and all(
            metric.words in line for metric in task.headline), line
        assert headline(report) == {metric.key: 0.5 for metric in task.headline}
    # `tune` maximises the first headline metric: a perplexity counts the other way.
    assert [kt.get_task(n).headline[0].higher_is_better for n in kt.list_tasks()] == [
        kt.get_task(n).headline[0].key != "perplexity" for n in kt.list_tasks()]
    multi = {"task": "text_classification", "split": "val", "num_examples": 2, "accuracy": 1.0,
             "macro_f1": 1.0, "metric_words": {"accuracy": "exact-match accuracy"}}
    assert summary(multi) == "2 val texts: exact-match accuracy 100.00%, macro F1 1.0000"
