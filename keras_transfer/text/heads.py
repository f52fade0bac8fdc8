"""Text task models: classifier / regressor / sentence-pair classifier, and causal-LM fine-tuning.

A classifier is a thin functional graph, strings in and probabilities out: ``text →
TextPreprocessing → keras-hub backbone → pooling → (hidden) → dropout → predictions``.
"""

from __future__ import annotations

import os
from typing import Sequence

import keras

from keras_transfer.deprecation import renamed_keywords
from keras_transfer.errors import BadInputError
from keras_transfer.heads.classification import (
    TASKS,
    TrainableBlocks,
    check_choice,
    check_hidden_units,
    check_num_classes,
    check_rate,
    check_sequence_length,
)
from keras_transfer.tasks.base import TaskModel, get_task
from keras_transfer.text.backbones import (
    PRESET_WEIGHTS,
    RENAMED,
    apply_trainability,
    build_text_preprocessor,
    check_text_weights,
    check_trainability,
    load_text_backbone,
    sequence_output,
    text_trunk,
)
from keras_transfer.text.families import POOLINGS, family_of
from keras_transfer.text.layers import SequencePooling

# Full fine-tuning takes the task's default_learning_rate (5e-5, see keras_transfer.tasks.text).
DEFAULT_LORA_LEARNING_RATE = 5e-4  # adapters start at zero and are few: they take a larger step
# Every text builder: the old keywords warn (load_weights, trainable_layers, preset).
TEXT_RENAMED = {**RENAMED, "preset": "backbone"}
# A constant rate or a schedule (e.g. CosineDecay with warmup_target/warmup_steps).
LearningRate = float | keras.optimizers.schedules.LearningRateSchedule


def text_optimizer(
    model: keras.Model,
    learning_rate: LearningRate,
    *,
    layer_decay: float | None = None,
    weight_decay: float = 0.01,
) -> keras.optimizers.Optimizer:
    """AdamW (no decay on biases and norms); with `layer_decay`, layer-wise learning rates.

    `layer_decay` multiplies the learning rate once per block from the head down to the
    embeddings (the head gets `learning_rate`, the last block ``learning_rate * layer_decay``, …),
    via `keras_transfer.recipes.discriminative`.

    Example:
    >>> opt = text_optimizer(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]), 1e-3)
    >>> type(opt).__name__
    'AdamW'
    """
    optimizer = keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay)
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    if layer_decay is None:
        return optimizer
    from keras_transfer.recipes.discriminative import discriminative_optimizer

    return discriminative_optimizer(model, optimizer, decay=layer_decay)


def compile_text_model(
    model: keras.Model,
    task: str,
    learning_rate: LearningRate | None = None,
    *,
    layer_decay: float | None = None,
    lora_rank: int | None = None,
) -> keras.Model:
    """Compiles a text model with its `task`'s loss, metrics and AdamW (`text_optimizer`).

    The rate defaults to the task's ``default_learning_rate`` (5e-5), or 5e-4 with LoRA
    adapters; `layer_decay` gives layer-wise rates.

    Example:
    >>> import tempfile
    >>> from keras_transfer.testing.tiny_text import make_tiny_preset
    >>> preset = str(make_tiny_preset("bert", tempfile.mkdtemp()))
    >>> model = build_text_classifier(preset, 2, sequence_length=8, compile=False)
    >>> rate = compile_text_model(model, "text_classification").optimizer.learning_rate
    >>> f"{float(rate):.0e}"
    '5e-05'
    """
    spec = get_task(task)
    if learning_rate is None:
        learning_rate = DEFAULT_LORA_LEARNING_RATE if lora_rank else spec.default_learning_rate
    if layer_decay is None:
        return spec.compile_model(model, learning_rate)
    # The task's optimizer has no layer-wise rates: the same AdamW, wrapped per block.
    spec.compile(model, text_optimizer(model, learning_rate, layer_decay=layer_decay), None)
    return model


def check_text_arguments(*, weights, sequence_length, dropout, trainable_blocks,
                         lora_rank) -> None:
    """The checks every text builder runs before loading anything (`BadInputError` naming the
    argument).

    Example:
    >>> check_text_arguments(weights=None, sequence_length=2, dropout=0.1,
    ...                      trainable_blocks="all", lora_rank=None)
    Traceback (most recent call last):
    ...
    keras_transfer.errors.BadInputError: sequence_length=2: expected an integer >= 4.
    """
    check_text_weights(weights)
    check_sequence_length(sequence_length)
    check_rate("dropout", dropout)
    check_trainability(trainable_blocks, lora_rank)


def _freeze_unused_pooler(model: keras.Model, pooling: str) -> None:
    # A pooler dense layer the head does not read would get no gradient (and a warning per step).
    from keras_transfer.backbones.blocks import blocks_of
    from keras_transfer.backbones.freezing import set_trainable

    if pooling != "pooler" and "pooler" in [block.name for block in blocks_of(model)]:
        set_trainable(model, {"pooler": False})


@renamed_keywords(**TEXT_RENAMED)
def build_text_classifier(
    backbone: str | os.PathLike,
    num_classes: int,
    *,
    task: str = "single_label",
    pairs: bool = False,
    sequence_length: int = 128,
    weights: str | None = PRESET_WEIGHTS,
    trainable_blocks: TrainableBlocks = "all",
    lora_rank: int | None = None,
    pooling: str | None = None,
    hidden_units: Sequence[int] = (),
    dropout: float = 0.1,
    layer_decay: float | None = None,
    compile: bool = True,
    learning_rate: LearningRate | None = None,
    verbose: bool = False,
) -> keras.Model:
    """Builds a text classifier (or regressor) on a keras-hub transformer: strings in.

    The model takes a batch of strings (input ``text``) or, with ``pairs=True``, two
    (``text_a``, ``text_b``: NLI, paraphrase); tokenization is inside it. It returns softmax
    probabilities (``single_label``), sigmoid probabilities (``multi_label``) or values
    (``regression``) from a float32 layer named ``predictions``.

    Every builder shares ``weights``, ``trainable_blocks``, ``compile`` and ``learning_rate``;
    a bad argument raises `BadInputError` naming it, before anything loads. The old keywords
    ``preset=``, ``load_weights=`` and ``trainable_layers=`` still work, with a
    `DeprecationWarning`.

    Args:
        backbone: the preset: a keras-hub preset name, a local preset directory, or
            ``"minilm_l6"`` (offline).
        num_classes: classes (or regression targets).
        task: ``"single_label"``, ``"multi_label"`` or ``"regression"``.
        pairs: two text inputs packed into one sequence (``[CLS] a [SEP] b [SEP]``).
        sequence_length: tokens per example (longer texts are truncated).
        weights: ``"preset"`` (the default: the preset's pretrained weights) or None (random
            weights, architecture only).
        trainable_blocks: blocks that train: ``"all"`` (default), 0/None (frozen backbone), an
            int N (the last N blocks) or block names (``"embeddings"``, ``"layer_3"``, …).
        lora_rank: train LoRA adapters of this rank instead of the backbone weights.
        pooling: ``"cls"``, ``"mean"``, ``"last"`` or ``"pooler"``; default per family
            (``"last"`` for GPT-2, ``"cls"`` otherwise).
        hidden_units: widths of optional hidden Dense+GELU layers before the output.
        dropout: dropout rate before each Dense layer.
        layer_decay: layer-wise learning-rate decay per block (e.g. 0.8), see `text_optimizer`.
        compile: compile with the ``text_classification`` task's defaults: AdamW and the
            head's loss and metrics (see `compile_text_model`).
        learning_rate: default: the task's ``default_learning_rate`` (5e-5; 5e-4 with LoRA); a
            float or a Keras ``LearningRateSchedule`` (warmup then decay is the usual choice
            for transformers).
        verbose: print the trainable-parameter count.

    Example:
    >>> import tempfile
    >>> import tensorflow as tf
    >>> from keras_transfer.testing.tiny_text import make_tiny_preset
    >>> preset = str(make_tiny_preset("bert", tempfile.mkdtemp()))
    >>> model = build_text_classifier(preset, num_classes=3, sequence_length=16)
    >>> model.predict(tf.constant(["a great film", "an awful day"]), verbose=0).shape
    (2, 3)
    """
    num_classes = _check_classifier_arguments(
        num_classes, task=task, pooling=pooling, hidden_units=hidden_units, weights=weights,
        sequence_length=sequence_length, dropout=dropout, trainable_blocks=trainable_blocks,
        lora_rank=lora_rank)
    names = ["text_a", "text_b"] if pairs else ["text"]
    inputs, tokens, _, outputs, family = text_trunk(
        backbone, input_names=names, sequence_length=sequence_length, weights=weights)
    pooling = pooling or family.pooling
    x = _pooled(outputs, tokens["padding_mask"], pooling, family.name)
    predictions = _classification_head(x, num_classes, task=task, hidden_units=hidden_units,
                                       dropout=dropout)
    model = TaskModel(inputs if pairs else inputs[0], predictions,
                      name=f"{family.name}_{task}_text_classifier", task="text_classification",
                      task_config={"head": task, "pairs": pairs})
    apply_trainability(model, trainable_blocks, lora_rank)
    if lora_rank is None:
        _freeze_unused_pooler(model, pooling)
    if verbose:
        from keras_transfer.text.lora import describe_parameters

        print(f"[text] {model.name}: {describe_parameters(model)}")
    if compile:
        compile_text_model(model, "text_classification", learning_rate,
                           layer_decay=layer_decay, lora_rank=lora_rank)
    return model


def _check_classifier_arguments(num_classes: int, *, task: str, pooling: str | None,
                                hidden_units: Sequence[int], **text_arguments) -> int:
    """Every check of `build_text_classifier`, before anything loads; the class count."""
    check_choice("task", task, TASKS)
    num_classes = check_num_classes(num_classes)
    if pooling is not None:
        check_choice("pooling", pooling, POOLINGS)
    check_hidden_units(hidden_units)
    check_text_arguments(**text_arguments)
    return num_classes


def _pooled(outputs, padding_mask, pooling: str, family: str):
    """One vector per text: the backbone's pooler output, or its token outputs pooled."""
    if pooling != "pooler":
        return SequencePooling(pooling, name="pool")(sequence_output(outputs), padding_mask)
    if not (isinstance(outputs, dict) and "pooled_output" in outputs):
        raise BadInputError(f"pooling='pooler': {family} has no pooler; use 'cls', "
                            "'mean' or 'last'.")
    return outputs["pooled_output"]


def _classification_head(x, num_classes: int, *, task: str, hidden_units: Sequence[int],
                         dropout: float):
    """The image classifier's head with GELU hidden layers, as transformers use."""
    from keras_transfer.heads.classification import dense_head

    return dense_head(x, num_classes, task=task, hidden_units=hidden_units, dropout=dropout,
                      hidden_activation="gelu")


@renamed_keywords(**TEXT_RENAMED)
def build_causal_lm(
    backbone: str | os.PathLike,
    *,
    sequence_length: int = 128,
    weights: str | None = PRESET_WEIGHTS,
    trainable_blocks: TrainableBlocks = "all",
    lora_rank: int | None = None,
    layer_decay: float | None = None,
    compile: bool = True,
    learning_rate: LearningRate | None = None,
) -> keras.Model:
    """A keras-hub causal LM (GPT-2) for fine-tuning on raw text and generating.

    Returns the keras-hub ``CausalLM`` task (e.g. ``GPT2CausalLM``): ``fit`` takes a dataset of
    strings (next-token loss, padding masked), ``generate("prompt", max_length=...)`` writes.
    ``backbone`` (the preset), ``weights``, ``trainable_blocks``, LoRA, layer-wise learning
    rates, ``compile`` and ``learning_rate`` work as for `build_text_classifier` (the
    ``causal_lm`` task's defaults; with ``compile=False`` the model keeps the compile
    keras-hub gives every ``CausalLM``); the old keywords ``preset=``, ``load_weights=`` and
    ``trainable_layers=`` still work, with a `DeprecationWarning`.

    Example:
    >>> import tempfile
    >>> from keras_transfer.testing.tiny_text import make_tiny_preset
    >>> lm = build_causal_lm(str(make_tiny_preset("gpt2", tempfile.mkdtemp())),
    ...                      sequence_length=16)
    >>> isinstance(lm.generate("the city", max_length=8), str)
    True
    """
    import keras_hub

    check_text_arguments(weights=weights, sequence_length=sequence_length, dropout=0.0,
                         trainable_blocks=trainable_blocks, lora_rank=lora_rank)
    transformer = load_text_backbone(backbone, weights=weights)
    family = family_of(transformer)
    if family.causal_lm is None:
        raise BadInputError(f"backbone={os.fspath(backbone)!r}: {family.name} is not a causal "
                            "language model; causal-LM fine-tuning needs a decoder family such "
                            "as gpt2.")
    task_class = getattr(keras_hub.models, family.causal_lm)
    tokenizer = build_text_preprocessor(backbone, sequence_length=sequence_length,
                                        family=family).tokenizer
    preprocessor = task_class.preprocessor_cls(tokenizer=tokenizer,
                                               sequence_length=sequence_length)
    lm = task_class(backbone=transformer, preprocessor=preprocessor)
    apply_trainability(lm, trainable_blocks, lora_rank)
    if compile:
        compile_text_model(lm, "causal_lm", learning_rate, layer_decay=layer_decay,
                           lora_rank=lora_rank)
    return lm
