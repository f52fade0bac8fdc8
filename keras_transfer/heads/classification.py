"""Task heads as functional graphs: backbone → pooling → (hidden) → dropout → dense."""

from __future__ import annotations

import os
from typing import Sequence

import keras

from keras_transfer.backbones import build_backbone
from keras_transfer.tasks.base import TaskModel
from keras_transfer.tasks.image import HEADS

TASKS = HEADS  # head: (activation, default loss, default metrics)


def build_image_classifier(
    backbone: str | keras.Model,
    num_classes: int,
    *,
    task: str = "single_label",
    weights: str | os.PathLike | None = "imagenet",
    input_shape: tuple[int, int, int] | None = None,
    trainable_blocks: int | str | Sequence[str] | None = 0,
    train_batchnorm: bool = False,
    pooling: str = "avg",
    hidden_units: Sequence[int] = (),
    dropout: float = 0.2,
    compile: bool = True,
    learning_rate: float = 1e-3,
) -> keras.Model:
    """Builds an image classifier (or regressor) on a pretrained backbone.

    The model takes raw images in [0, 255] (preprocessing is inside) and returns probabilities
    (softmax for ``single_label``, sigmoid for ``multi_label``) or values (``regression``). The
    output layer is named ``predictions`` and always computes in float32 (mixed precision safe).

    Args:
        backbone: a backbone name (see `list_backbones()`) or a model from `build_backbone`.
        num_classes: classes (or regression targets).
        task: ``"single_label"``, ``"multi_label"`` or ``"regression"``.
        weights, input_shape: passed to `build_backbone` when `backbone` is a name.
        trainable_blocks: which backbone blocks train; default 0 = frozen (feature extraction).
        pooling: ``"avg"`` or ``"max"`` global pooling of the feature map.
        hidden_units: widths of optional hidden Dense+ReLU layers before the output.
        dropout: dropout rate before each Dense layer (0 disables it).
        compile: compile with Adam(`learning_rate`) and the task's loss and metrics.

    Example:
    >>> model = build_image_classifier("mobilenet_v2", num_classes=5, weights=None,
    ...                                input_shape=(64, 64, 3))
    >>> model.output_shape
    (None, 5)
    """
    if task not in TASKS:
        raise ValueError(f"task={task!r}: expected one of {sorted(TASKS)}.")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes={num_classes!r}: expected a positive integer.")
    if pooling not in ("avg", "max"):
        raise ValueError(f"pooling={pooling!r}: expected 'avg' or 'max'.")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout={dropout!r}: expected a rate in [0, 1).")
    if isinstance(backbone, str):
        backbone = build_backbone(backbone, weights=weights, input_shape=input_shape)
    from keras_transfer.backbones import set_trainable_blocks

    set_trainable_blocks(backbone, trainable_blocks, train_batchnorm=train_batchnorm)

    inputs = keras.Input(backbone.input_shape[1:], name="images")
    x = backbone(inputs)
    pool = keras.layers.GlobalAveragePooling2D if pooling == "avg" else keras.layers.GlobalMaxPooling2D
    x = pool(name="pool")(x)
    for i, units in enumerate(hidden_units, start=1):
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"hidden{i}_dropout")(x)
        x = keras.layers.Dense(units, activation="relu", name=f"hidden{i}")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    activation, loss, metrics = TASKS[task]
    outputs = keras.layers.Dense(
        num_classes, activation=activation, dtype="float32", name="predictions"
    )(x)
    model = TaskModel(inputs, outputs, name=f"{backbone.name}_{task}_classifier",
                      task="image_classification", task_config={"head": task})
    if compile:
        model.compile(keras.optimizers.Adam(learning_rate), loss=loss, metrics=metrics)
    return model
