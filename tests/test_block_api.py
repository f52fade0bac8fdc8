"""One block API on every task model: `describe`, `freeze`, `unfreeze(last=k)`, `set_trainable`
and `blocks_of` work on classifiers, segmenters, detectors and text models alike, count only the
blocks that can train, and the README's block column says what `describe` shows."""

from __future__ import annotations

import subprocess
import sys
from typing import Callable

import keras
import pytest

import keras_transfer as kt
from tools import readme_tables as docs
from keras_transfer.backbones.blocks import Block, set_trainable_blocks
from keras_transfer.compat.keras_internals import created_trainable_variables, sublayers
from keras_transfer.errors import BadInputError

IMAGE = (64, 64, 3)


@pytest.fixture(scope="module")
def presets(tmp_path_factory) -> dict[str, str]:
    from keras_transfer.text import make_tiny_preset

    root = tmp_path_factory.mktemp("presets")
    return {family: str(make_tiny_preset(family, root / family)) for family in ("bert", "gpt2")}


def _detector(kind: str) -> Callable[[dict], keras.Model]:
    def build(presets: dict) -> keras.Model:
        from keras_transfer.detection import build_detector

        return build_detector(kind, "mobilenet_v2", num_classes=2, weights=None,
                              input_shape=IMAGE, compile=False)

    return build


def _segmenter(kind: str) -> Callable[[dict], keras.Model]:
    def build(presets: dict) -> keras.Model:
        from keras_transfer.heads import build_segmenter

        return build_segmenter(kind, "mobilenet_v2", num_classes=3, weights=None,
                               input_shape=IMAGE, filters=16, compile=False)

    return build


def _classifier(backbone: str) -> Callable[[dict], keras.Model]:
    return lambda presets: kt.build_image_classifier(backbone, num_classes=2, weights=None,
                                                     input_shape=(32, 32, 3))


# Every kind of task model; the value builds a tiny one.
TASK_MODELS: dict[str, Callable[[dict], keras.Model]] = {
    "classifier_vgg16": _classifier("vgg16"),
    "classifier_resnet50_v2": _classifier("resnet50_v2"),
    "segmenter_unet": _segmenter("unet"),
    "segmenter_deeplab_v3_plus": _segmenter("deeplab_v3_plus"),
    "detector_yolov8": _detector("yolov8"),
    "detector_retinanet": _detector("retinanet"),
    "detector_ssd": _detector("ssd"),
    "detector_faster_rcnn": _detector("faster_rcnn"),
    "text_classifier": lambda presets: kt.build_text_classifier(
        presets["bert"], num_classes=2, sequence_length=16, pooling="cls", compile=False),
    "question_answerer": lambda presets: kt.build_question_answerer(
        presets["bert"], sequence_length=16, compile=False),
    "causal_lm": lambda presets: kt.build_causal_lm(
        presets["gpt2"], sequence_length=16, compile=False),
}


def _ids(variables) -> set[int]:
    return {id(variable) for variable in variables}


def _trainable(model: keras.Model) -> set[int]:
    return _ids(model.trainable_weights)


def _unfrozen_by(block: Block) -> set[int]:
    """What unfreezing `block` trains: its non-BatchNorm layers' weights (BatchNorm stays
    frozen by default, also inside composite layers)."""
    weighted = _ids(v for layer in block.weighted_layers()
                    for v in created_trainable_variables(layer))
    batchnorm = _ids(v for layer in block.weighted_layers() for sub in sublayers(layer)
                     if isinstance(sub, keras.layers.BatchNormalization) for v in sub.weights)
    return weighted - batchnorm


@pytest.mark.parametrize("kind", list(TASK_MODELS))
def test_the_block_api_works_on_every_task_model(kind, presets):
    model = TASK_MODELS[kind](presets)
    blocks = kt.blocks_of(model)
    rows = kt.describe(model, print_fn=None)
    assert rows and [row["block"] for row in rows] == [block.name for block in blocks]
    backbone = _ids(w for block in blocks for layer in block.layers for w in layer.weights)
    head = _ids(created_trainable_variables(model)) - backbone  # the LM's head is tied: none

    kt.freeze(model)
    frozen = _trainable(model)
    assert not frozen & backbone, "freeze() left backbone weights trainable"
    assert frozen == head, "the head must keep training"
    assert {row["status"] for row in kt.describe(model, print_fn=None)} <= {"frozen", "-"}

    kt.unfreeze(model, last=1)
    last = [block for block in blocks if block.effective][-1]
    opened = _trainable(model) - frozen
    assert opened and opened == _unfrozen_by(last)
    assert head <= _trainable(model)

    kt.set_trainable(model, {last.name: False})
    assert _trainable(model) == frozen
    assert set_trainable_blocks(model, [last.name]) == [last.name]
    assert _trainable(model) - frozen == opened


def test_unused_and_batchnorm_only_blocks_are_not_counted(presets):
    resnet = kt.build_image_classifier("resnet50_v2", num_classes=2, weights=None,
                                       input_shape=(32, 32, 3))
    notes = {row["block"]: row["note"] for row in kt.describe(resnet, print_fn=None)}
    assert notes["top"] == "BatchNorm only" and notes["block4"] == ""
    kt.unfreeze(resnet, last=1)
    status = {row["block"]: row["status"] for row in kt.describe(resnet, print_fn=None)}
    assert status["block4"] == "trainable" and status["block3"] == "frozen"

    text = kt.build_text_classifier(presets["bert"], num_classes=2, sequence_length=16,
                                    pooling="cls", compile=False)
    pooler = {row["block"]: row for row in kt.describe(text, print_fn=None)}["pooler"]
    assert pooler["note"] == "unused" and pooler["status"] == "frozen"
    kt.unfreeze(text)  # every block the head reads; the unused pooler stays frozen
    assert {row["block"]: row["status"] for row in kt.describe(text, print_fn=None)} == {
        "embeddings": "trainable", "layer_0": "trainable", "layer_1": "trainable",
        "pooler": "frozen"}
    # The pooler is on the path when the head reads it.
    pooled = kt.build_text_classifier(presets["bert"], num_classes=2, sequence_length=16,
                                      pooling="pooler", compile=False)
    assert all(block.effective for block in kt.blocks_of(pooled))


def test_segmenter_blocks_past_its_taps_are_unused():
    from keras_transfer.heads import build_segmenter

    model = build_segmenter("deeplab_v3_plus", "mobilenet_v2", num_classes=3, weights=None,
                            input_shape=IMAGE, filters=16, compile=False,
                            feature_blocks=["block1", "block3"])
    notes = {row["block"]: row["note"] for row in kt.describe(model, print_fn=None)}
    assert notes == {"stem": "", "block1": "", "block2": "", "block3": "", "block4": "unused",
                     "top": "unused"}
    assert set_trainable_blocks(model, 1) == ["block3"]


def test_counts_names_and_errors():
    model = kt.build_image_classifier("vgg16", num_classes=2, weights=None,
                                      input_shape=(32, 32, 3))
    # vgg16's stem holds only the preprocessing: 6 blocks, 5 of them effective.
    assert [b.name for b in kt.blocks_of(model) if not b.effective] == ["stem"]
    kt.unfreeze(model, last=5)
    everything = _trainable(model)
    kt.unfreeze(model, last=6)  # up to len(blocks_of(model)): all of them, as last=None
    assert _trainable(model) == everything
    with pytest.raises(BadInputError, match=r"6 blocks, 5 of them effective.*'block1'.*stem"):
        kt.unfreeze(model, last=7)
    with pytest.raises(BadInputError, match="6 blocks"):
        kt.unfreeze(model, last=-1)
    with pytest.raises(BadInputError, match=r"Unknown block\(s\) \['block9'\].*'block5'"):
        kt.freeze(model, up_to="block9")
    with pytest.raises(BadInputError, match=r"\['nope'\].*'stem'"):
        kt.set_trainable(model, {"nope": True})
    with pytest.raises(BadInputError, match="'all', an int"):
        set_trainable_blocks(model, "some")
    assert issubclass(BadInputError, ValueError)  # `except ValueError` keeps catching them
    inputs = keras.Input((2,))
    with pytest.raises(BadInputError, match="No keras-transfer backbone"):
        kt.describe(keras.Model(inputs, keras.layers.Dense(1)(inputs)), print_fn=None)


def test_every_block_name_is_still_accepted():
    model = kt.build_image_classifier("resnet50_v2", num_classes=2, weights=None,
                                      input_shape=(32, 32, 3))
    kt.freeze(model, up_to="top")
    assert not _trainable(model) - _ids(model.get_layer("predictions").weights)
    kt.set_trainable(model, {"top": True, "stem": True}, train_batchnorm=True)
    status = {row["block"]: (row["status"], row["batchnorm"])
              for row in kt.describe(model, print_fn=None)}
    assert status["top"] == ("-", "train") and status["stem"] == ("trainable", "-")


def test_detector_wrappers_are_the_generic_api():
    from keras_transfer.detection import block_status, set_detector_trainable

    model = _detector("ssd")({})
    assert set_detector_trainable(model, 2) == ["block3", "block4"]
    generic = {row["block"]: row["status"] == "trainable"
               for row in kt.describe(model, print_fn=None)}
    assert block_status(model) == generic
    assert set_detector_trainable(model, ["block1"]) == ["block1"]
    assert [name for name, on in block_status(model).items() if on] == ["block1"]
    with pytest.raises(BadInputError, match="No PyramidBackbone"):
        block_status(kt.build_image_classifier("vgg16", 2, weights=None,
                                               input_shape=(32, 32, 3)))


def _describe_cell(name: str) -> str:
    """The README cell of backbone `name` written from its own `describe` (stage count only
    when the spec has no optional stage)."""
    from keras_transfer.compat.keras_internals import layout_only

    spec = kt.get_spec(name)
    with layout_only():  # the structure is all that is read: no weights
        backbone = kt.build_backbone(name, weights=None, trainable_blocks=None,
                                     input_shape=(spec.min_size, spec.min_size, 3))
        rows = kt.describe(backbone, print_fn=None)
    cells = [f"{row['block']} ({row['note']})" if row["note"] else row["block"] for row in rows]
    stages = [row["block"] for row in rows if row["block"] not in ("stem", "top")]
    return " + ".join([cells[0], str(len(stages))] + cells[len(stages) + 1:])


@pytest.mark.parametrize("name", ["vgg16", "resnet50", "resnet50_v2", "mobilenet_v2"])
def test_readme_block_column_is_generated_and_true(name):
    """README rows are the generated ones, and their block cell is what `describe` shows
    (tests/test_docs.py checks the whole generated table; the slow test below every cell)."""
    row = docs.backbone_table_markdown([name]).splitlines()[2]
    assert row in docs.README.read_text(encoding="utf-8").splitlines()
    assert docs.blocks_cell(name) == _describe_cell(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", docs.builtin_backbones())
def test_every_readme_block_cell_matches_describe(name):
    """Every backbone, not one per family: ranges ("6–7") cover its own stage count."""
    stem, count, *top = docs.blocks_cell(name).split(" + ")
    own_stem, own_count, *own_top = _describe_cell(name).split(" + ")
    assert (stem, top) == (own_stem, own_top) and own_count in count.split("–")


@pytest.mark.slow
def test_importing_keras_transfer_does_not_import_keras_cv():
    code = "import sys, keras_transfer; print('keras_cv' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"
