"""Text task models: classifier / regressor / sentence-pair classifier, and causal-LM fine-tuning.

A classifier is a thin functional graph, strings in and probabilities out: ``text →
TextPreprocessing → keras-hub backbone → pooling → (hidden) → dropout → predictions``.
"""

from __future__ import annotations

import os
from typing import Sequence

import keras

from keras_transfer.errors import BadInputError
from keras_transfer.heads.classification import TASKS
from keras_transfer.tasks.base import TaskModel
from keras_transfer.text.backbones import (
    apply_trainability,
    build_text_preprocessor,
    check_trainability,
    load_text_backbone,
    sequence_output,
    text_trunk,
)
from keras_transfer.text.families import POOLINGS, family_of
from keras_transfer.text.layers import SequencePooling

DEFAULT_LEARNING_RATE = 5e-5  # full fine-tuning of a pretrained transformer
DEFAULT_LORA_LEARNING_RATE = 5e-4  # adapters start at zero and are few: they take a larger step
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


def _compile(model, loss, metrics, learning_rate, layer_decay, lora_rank) -> None:
    if learning_rate is None:
        learning_rate = DEFAULT_LORA_LEARNING_RATE if lora_rank else DEFAULT_LEARNING_RATE
    model.compile(text_optimizer(model, learning_rate, layer_decay=layer_decay), loss=loss,
                  metrics=metrics, jit_compile=False)  # XLA cannot compile the tokenizer ops


def _check_common(sequence_length: int, dropout: float) -> None:
    if not isinstance(sequence_length, int) or sequence_length < 4:
        raise BadInputError(f"sequence_length={sequence_length!r}: expected an integer >= 4.")
    if not 0.0 <= dropout < 1.0:
        raise BadInputError(f"dropout={dropout!r}: expected a rate in [0, 1).")


def _freeze_unused_pooler(model: keras.Model, pooling: str) -> None:
    # A pooler dense layer the head does not read would get no gradient (and a warning per step).
    from keras_transfer.backbones.blocks import blocks_of, set_trainable

    if pooling != "pooler" and "pooler" in [block.name for block in blocks_of(model)]:
        set_trainable(model, {"pooler": False})


def build_text_classifier(
    preset: str | os.PathLike,
    num_classes: int,
    *,
    task: str = "single_label",
    pairs: bool = False,
    sequence_length: int = 128,
    trainable_layers: int | str | Sequence[str] | None = "all",
    lora_rank: int | None = None,
    pooling: str | None = None,
    hidden_units: Sequence[int] = (),
    dropout: float = 0.1,
    load_weights: bool = True,
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

    Args:
        preset: keras-hub preset name, local preset directory, or ``"minilm_l6"`` (offline).
        num_classes: classes (or regression targets).
        task: ``"single_label"``, ``"multi_label"`` or ``"regression"``.
        pairs: two text inputs packed into one sequence (``[CLS] a [SEP] b [SEP]``).
        sequence_length: tokens per example (longer texts are truncated).
        trainable_layers: blocks that train: ``"all"`` (default), 0/None (frozen backbone), an
            int N (the last N blocks) or block names (``"embeddings"``, ``"layer_3"``, …).
        lora_rank: train LoRA adapters of this rank instead of the backbone weights.
        pooling: ``"cls"``, ``"mean"``, ``"last"`` or ``"pooler"``; default per family
            (``"last"`` for GPT-2, ``"cls"`` otherwise).
        hidden_units: widths of optional hidden Dense+GELU layers before the output.
        dropout: dropout rate before each Dense layer.
        load_weights: False gives random backbone weights (architecture only).
        layer_decay: layer-wise learning-rate decay per block (e.g. 0.8), see `text_optimizer`.
        compile: compile with AdamW and the task's loss and metrics.
        learning_rate: defaults to 5e-5 (5e-4 with LoRA); a float or a Keras
            ``LearningRateSchedule`` (warmup then decay is the usual choice for transformers).
        verbose: print the trainable-parameter count.

    Example:
    >>> import tempfile
    >>> import tensorflow as tf
    >>> from keras_transfer.text.tiny import make_tiny_preset
    >>> preset = str(make_tiny_preset("bert", tempfile.mkdtemp()))
    >>> model = build_text_classifier(preset, num_classes=3, sequence_length=16)
    >>> model.predict(tf.constant(["a great film", "an awful day"]), verbose=0).shape
    (2, 3)
    """
    if task not in TASKS:
        raise BadInputError(f"task={task!r}: expected one of {sorted(TASKS)}.")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise BadInputError(f"num_classes={num_classes!r}: expected a positive integer.")
    _check_common(sequence_length, dropout)
    check_trainability(trainable_layers, lora_rank)
    names = ["text_a", "text_b"] if pairs else ["text"]
    inputs, tokens, backbone, outputs, family = text_trunk(
        preset, input_names=names, sequence_length=sequence_length, load_weights=load_weights)
    pooling = pooling or family.pooling
    if pooling not in POOLINGS:
        raise BadInputError(f"pooling={pooling!r}: expected one of {POOLINGS}.")
    if pooling == "pooler":
        if not (isinstance(outputs, dict) and "pooled_output" in outputs):
            raise BadInputError(f"pooling='pooler': {family.name} has no pooler; use 'cls', "
                                "'mean' or 'last'.")
        x = outputs["pooled_output"]
    else:
        x = SequencePooling(pooling, name="pool")(sequence_output(outputs),
                                                  tokens["padding_mask"])
    for i, units in enumerate(hidden_units, start=1):
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"hidden{i}_dropout")(x)
        x = keras.layers.Dense(units, activation="gelu", name=f"hidden{i}")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    activation, loss, metrics = TASKS[task]
    predictions = keras.layers.Dense(num_classes, activation=activation, dtype="float32",
                                     name="predictions")(x)
    model = TaskModel(inputs if pairs else inputs[0], predictions,
                      name=f"{family.name}_{task}_text_classifier", task="text_classification",
                      task_config={"head": task, "pairs": pairs})
    apply_trainability(model, trainable_layers, lora_rank)
    if lora_rank is None:
        _freeze_unused_pooler(model, pooling)
    if verbose:
        from keras_transfer.text.lora import describe_parameters

        print(f"[text] {model.name}: {describe_parameters(model)}")
    if compile:
        _compile(model, loss, metrics, learning_rate, layer_decay, lora_rank)
    return model


def build_causal_lm(
    preset: str | os.PathLike,
    *,
    sequence_length: int = 128,
    trainable_layers: int | str | Sequence[str] | None = "all",
    lora_rank: int | None = None,
    load_weights: bool = True,
    layer_decay: float | None = None,
    compile: bool = True,
    learning_rate: LearningRate | None = None,
) -> keras.Model:
    """A keras-hub causal LM (GPT-2) for fine-tuning on raw text and generating.

    Returns the keras-hub ``CausalLM`` task (e.g. ``GPT2CausalLM``): ``fit`` takes a dataset of
    strings (next-token loss, padding masked), ``generate("prompt", max_length=...)`` writes.
    Blocks, LoRA and layer-wise learning rates work as for classifiers.

    Example:
    >>> import tempfile
    >>> from keras_transfer.text.tiny import make_tiny_preset
    >>> lm = build_causal_lm(str(make_tiny_preset("gpt2", tempfile.mkdtemp())),
    ...                      sequence_length=16)
    >>> isinstance(lm.generate("the city", max_length=8), str)
    True
    """
    import keras_hub

    _check_common(sequence_length, 0.0)
    check_trainability(trainable_layers, lora_rank)
    backbone = load_text_backbone(preset, load_weights=load_weights)
    family = family_of(backbone)
    if family.causal_lm is None:
        raise BadInputError(f"{family.name} is not a causal language model; causal-LM "
                            "fine-tuning needs a decoder family such as gpt2.")
    task_class = getattr(keras_hub.models, family.causal_lm)
    tokenizer = build_text_preprocessor(preset, sequence_length=sequence_length,
                                        family=family).tokenizer
    preprocessor = task_class.preprocessor_cls(tokenizer=tokenizer,
                                               sequence_length=sequence_length)
    lm = task_class(backbone=backbone, preprocessor=preprocessor)
    apply_trainability(lm, trainable_layers, lora_rank)
    if compile:
        if learning_rate is None:
            learning_rate = DEFAULT_LORA_LEARNING_RATE if lora_rank else DEFAULT_LEARNING_RATE
        lm.compile(optimizer=text_optimizer(lm, learning_rate, layer_decay=layer_decay),
                   loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                   weighted_metrics=[keras.metrics.SparseCategoricalAccuracy()],
                   jit_compile=False)
    return lm
