"""One builder shape (#20): every builder takes the same keywords with the same meaning
(``weights``, ``trainable_blocks``, ``compile``, ``learning_rate``), rejects the same mistakes
with the same `BadInputError` naming the argument, and keeps the old text spellings working
with a `DeprecationWarning`."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Callable

import numpy as np
import pytest

import keras_transfer as kt
from keras_transfer.errors import BadInputError
from keras_transfer.text import make_tiny_preset

IMAGE = dict(weights=None, input_shape=(64, 64, 3))


@pytest.fixture(scope="module")
def presets(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("presets")
    return {family: str(make_tiny_preset(family, root / family)) for family in ("bert", "gpt2")}


@dataclasses.dataclass(frozen=True)
class Case:
    """One builder: how to call it on a tiny model, and which arguments it has."""

    name: str  # the builder: keras_transfer.<name>
    task: str
    first: Callable[[dict[str, str]], dict[str, Any]]  # presets -> the leading keywords
    defaults: dict[str, Any]
    size: dict[str, Any]  # a bad input size, named by its keyword
    num_classes: bool = True
    dropout: bool = True
    text: bool = False
    head: bool = True  # a head of its own (trains with a frozen backbone)

    def __call__(self, presets, **keywords):
        build = getattr(kt, self.name)
        return build(**self.first(presets), **{**self.defaults, **keywords})

    def __str__(self) -> str:
        return self.name


CASES = [
    Case("build_image_classifier", "image_classification",
         lambda p: dict(backbone="mobilenet_v2"),
         dict(num_classes=2, **IMAGE), size={"input_shape": (64, 64)}),
    Case("build_segmenter", "segmentation",  # kind as a keyword, too
         lambda p: dict(kind="unet", backbone="mobilenet_v2"),
         dict(num_classes=2, filters=8, **IMAGE), size={"input_shape": (64, 64, 1)}),
    Case("build_detector", "detection",
         lambda p: dict(kind="ssd", backbone="mobilenet_v2"),
         dict(num_classes=2, **IMAGE), size={"input_shape": (0, 64, 3)}, dropout=False),
    Case("build_text_classifier", "text_classification",
         lambda p: dict(backbone=p["bert"]),
         dict(num_classes=2, sequence_length=8, weights=None), size={"sequence_length": 2},
         text=True),
    Case("build_question_answerer", "question_answering",
         lambda p: dict(backbone=p["bert"]),
         dict(sequence_length=16, weights=None), size={"sequence_length": "long"},
         num_classes=False, text=True),
    Case("build_causal_lm", "causal_lm",
         lambda p: dict(backbone=p["gpt2"]),
         dict(sequence_length=8, weights=None), size={"sequence_length": 0},
         num_classes=False, dropout=False, text=True, head=False),
]
TEXT_CASES = [case for case in CASES if case.text]


def _trainable_count(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


@pytest.mark.parametrize("case", CASES, ids=str)
def test_every_builder_takes_the_common_keywords(case, presets):
    frozen = case(presets, weights=None, trainable_blocks=0, compile=False)
    # A keras-hub CausalLM compiles itself with keras-hub's defaults when it is made.
    assert not frozen.compiled or case.task == "causal_lm"
    full = case(presets, weights=None, trainable_blocks="all")  # compile=True by default
    # 0 freezes the backbone (a head still trains); "all" trains it too.
    assert _trainable_count(frozen) < _trainable_count(full)
    assert (_trainable_count(frozen) > 0) == case.head
    # The default rate is the task's: builders and recipes share the compile defaults.
    rate = float(np.asarray(full.optimizer.learning_rate))
    assert rate == pytest.approx(kt.get_task(case.task).default_learning_rate)
    assert kt.task_of(full).name == case.task


def _bad_inputs(case: Case) -> list[tuple[dict[str, Any], str]]:
    bad = [({"trainable_blocks": "some"}, "trainable_blocks"),
           ({"trainable_blocks": -1}, "trainable_blocks"),
           (case.size, next(iter(case.size)))]
    if case.num_classes:
        bad.append(({"num_classes": 0}, "num_classes"))
    if case.dropout:
        bad.append(({"dropout": 1.5}, "dropout"))
    if case.text:
        bad.append(({"weights": "imagenet"}, "weights"))
    return bad


@pytest.mark.parametrize("case,bad,argument", [
    (case, bad, argument) for case in CASES for bad, argument in _bad_inputs(case)],
    ids=lambda value: str(value) if isinstance(value, Case) else None)
def test_the_same_mistake_raises_the_same_error(case, bad, argument, presets):
    with pytest.raises(BadInputError, match=f"{argument}="):
        case(presets, **bad)


def test_bad_inputs_are_still_value_errors():
    with pytest.raises(ValueError, match="pooling"):  # old `except ValueError` keeps working
        kt.build_image_classifier("mobilenet_v2", 2, pooling="sum", **IMAGE)
    with pytest.raises(BadInputError, match="task="):
        kt.build_image_classifier("mobilenet_v2", 2, task="ranking", **IMAGE)


@pytest.mark.parametrize("case", CASES[:3], ids=str)
def test_a_block_count_beyond_the_backbone_names_trainable_blocks(case, presets):
    with pytest.raises(BadInputError, match="trainable_blocks=99"):
        case(presets, trainable_blocks=99, compile=False)


@pytest.mark.parametrize("case", TEXT_CASES, ids=str)
def test_old_text_spellings_warn_and_still_work(case, presets):
    build = getattr(kt, case.name)
    preset = case.first(presets)["backbone"]
    keywords = {k: v for k, v in case.defaults.items() if k != "weights"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = build(preset=preset, load_weights=False, trainable_layers=0, compile=False,
                      **keywords)
    deprecations = [w for w in caught if w.category is DeprecationWarning]
    messages = [str(w.message) for w in deprecations]
    for old, new in (("preset", "backbone"), ("load_weights", "weights"),
                     ("trainable_layers", "trainable_blocks")):
        assert sum(f"({old}=...)" in m and f"use {new}=" in m for m in messages) == 1, messages
    # The warning points at the caller's line, not at keras-transfer.
    assert {w.filename for w in deprecations} == {__file__}
    same = build(preset, weights=None, trainable_blocks=0, compile=False, **keywords)
    assert _trainable_count(model) == _trainable_count(same)
    assert [w.name for w in model.weights] == [w.name for w in same.weights]


def test_old_and_new_spelling_together_is_a_mistake(presets):
    with pytest.raises(BadInputError, match="load_weights= and weights="):
        kt.build_text_classifier(presets["bert"], 2, load_weights=True, weights=None)
    with pytest.raises(BadInputError, match="trainable_layers= and trainable_blocks="):
        kt.build_question_answerer(presets["bert"], trainable_layers=0, trainable_blocks=0)
    with pytest.raises(BadInputError, match="preset= and backbone="):
        kt.build_causal_lm(presets["gpt2"], preset=presets["gpt2"])


def test_text_backbone_takes_the_new_spellings_and_the_old_ones(presets):
    backbone = kt.build_text_backbone(presets["bert"], weights=None, trainable_blocks=0)
    assert not backbone.trainable_weights
    with pytest.warns(DeprecationWarning, match="trainable_layers"):
        old = kt.build_text_backbone(presets["bert"], trainable_layers=["layer_1"])
    assert old.trainable_weights


@pytest.mark.parametrize("old, new", sorted(__import__(
    "keras_transfer.deprecation", fromlist=["MOVED_MODULES"]).MOVED_MODULES.items()))
def test_moved_modules_import_from_their_old_path_with_a_warning(old, new):
    import importlib
    import sys

    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {new}"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)
    assert module.__spec__.name == new  # the new module keeps its own identity
