"""Task heads as functional graphs: backbone → pooling → (hidden) → dropout → dense.

Also the argument checks every builder shares (image, segmentation, detection, text), so the
same mistake raises the same `BadInputError` naming the same argument whatever the builder.
"""

from __future__ import annotations

import numbers
import os
from typing import Any, Callable, Collection, Sequence

import keras

from keras_transfer.backbones import build_backbone, get_spec, set_trainable_blocks
from keras_transfer.errors import BadInputError
from keras_transfer.tasks.base import TaskModel, get_task
from keras_transfer.tasks.image import HEADS

TASKS = HEADS  # head: (activation, default loss, default metrics)

# What `trainable_blocks=` takes, on every builder.
TrainableBlocks = int | str | Sequence[str] | None
TRAINABLE_BLOCKS_HELP = ("'all', an int N (the last N blocks), 0/None (frozen) or a list of "
                         "block names")


# --------------------------------------------------------------------------- shared checks


def check_choice(name: str, value: Any, choices: Collection[str]) -> None:
    """Raises `BadInputError` naming `name` unless `value` is one of `choices`.

    Example:
    >>> check_choice("pooling", "avg", ("avg", "max"))
    >>> check_choice("pooling", "mean", ("avg", "max"))
    Traceback (most recent call last):
    ...
    keras_transfer.errors.BadInputError: pooling='mean': expected one of ['avg', 'max'].
    """
    if not isinstance(value, str) or value not in choices:
        raise BadInputError(f"{name}={value!r}: expected one of {sorted(choices)}.")


def _is_integer(value: Any) -> bool:
    # numpy integers count (data.num_classes may be one); booleans do not.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_num_classes(num_classes: Any, *, minimum: int = 1) -> int:
    """`num_classes` as an int, or `BadInputError` when it is not an integer >= `minimum`.

    Example:
    >>> check_num_classes(3)
    3
    >>> check_num_classes(1, minimum=2)
    Traceback (most recent call last):
    ...
    keras_transfer.errors.BadInputError: num_classes=1: expected an integer >= 2.
    """
    if not _is_integer(num_classes) or num_classes < minimum:
        expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise BadInputError(f"num_classes={num_classes!r}: expected {expected}.")
    return int(num_classes)


def check_rate(name: str, value: Any) -> None:
    """Raises `BadInputError` naming `name` unless `value` is a rate in [0, 1) (e.g. dropout).

    Example:
    >>> check_rate("dropout", 0.2)
    >>> check_rate("dropout", 1.5)
    Traceback (most recent call last):
    ...
    keras_transfer.errors.BadInputError: dropout=1.5: expected a rate in [0, 1).
    """
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not 0 <= value < 1:
        raise BadInputError(f"{name}={value!r}: expected a rate in [0, 1).")


def check_hidden_units(hidden_units: Any) -> tuple[int, ...]:
    """`hidden_units` as a tuple of positive ints, or `BadInputError` naming it.

    Example:
    >>> check_hidden_units([64, 32])
    (64, 32)
    """
    if isinstance(hidden_units, (str, bytes)) or not isinstance(hidden_units, Sequence) or any(
            not _is_integer(units) or units < 1 for units in hidden_units):
        raise BadInputError(f"hidden_units={hidden_units!r}: expected a list of positive "
                            "layer widths (or () for none).")
    return tuple(int(units) for units in hidden_units)


def check_trainable_blocks(trainable_blocks: Any) -> None:
    """Raises `BadInputError` unless `trainable_blocks` is one of the values every builder takes:
    ``"all"``, an int N >= 0 (the last N blocks), 0/None (frozen) or a list of block names.

    Whether N or the names fit the backbone is known once it is built (see
    `apply_trainable_blocks`).

    Example:
    >>> check_trainable_blocks(["block5"])
    >>> check_trainable_blocks("some")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    keras_transfer.errors.BadInputError: trainable_blocks='some': expected 'all', an int N ...
    """
    if trainable_blocks is None or trainable_blocks == "all":
        return
    if _is_integer(trainable_blocks) and trainable_blocks >= 0:
        return
    if (not isinstance(trainable_blocks, (str, bytes)) and isinstance(trainable_blocks, Collection)
            and all(isinstance(name, str) for name in trainable_blocks)):
        return
    raise BadInputError(f"trainable_blocks={trainable_blocks!r}: expected "
                        f"{TRAINABLE_BLOCKS_HELP}.")


def apply_trainable_blocks(
    model: keras.Model,
    trainable_blocks: TrainableBlocks,
    *,
    apply: Callable[..., Any] | None = None,
    **options: Any,
) -> Any:
    """Runs ``apply(model, trainable_blocks, **options)`` (default: `set_trainable_blocks`); a
    block count or name that does not fit the backbone becomes a `BadInputError` naming
    ``trainable_blocks``.

    Example:
    >>> bb = build_backbone("vgg16", weights=None, input_shape=(32, 32, 3))
    >>> apply_trainable_blocks(bb, 9)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    keras_transfer.errors.BadInputError: trainable_blocks=9: ...
    """
    apply = apply or set_trainable_blocks
    try:
        return apply(model, trainable_blocks, **options)
    except ValueError as error:
        if "trainable_blocks" in str(error):
            raise
        raise BadInputError(f"trainable_blocks={trainable_blocks!r}: {error}") from error


def check_input_shape(
    input_shape: Any, backbone: str | keras.Model | None = None
) -> tuple[int, int, int] | None:
    """`input_shape` as ``(height, width, 3)`` (None stays None: the backbone's default size),
    or `BadInputError` naming it; a registered `backbone` name also checks its minimum size.

    Example:
    >>> check_input_shape([64, 64, 3], "mobilenet_v2")
    (64, 64, 3)
    >>> check_input_shape((16, 16, 3), "inception_v3")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    keras_transfer.errors.BadInputError: input_shape=(16, 16, 3): 'inception_v3' needs ... 75×75.
    """
    if input_shape is None:
        return None
    shape = tuple(input_shape) if isinstance(input_shape, Sequence) else ()
    if len(shape) != 3 or shape[-1] != 3 or not all(_is_integer(s) and s > 0 for s in shape):
        raise BadInputError(f"input_shape={input_shape!r}: expected (height, width, 3) with "
                            "positive integer sides.")
    shape = tuple(int(side) for side in shape)
    if isinstance(backbone, str):
        spec = get_spec(backbone)  # an unknown name fails here, before anything is built
        if min(shape[:2]) < spec.min_size:
            raise BadInputError(f"input_shape={shape}: '{spec.name}' needs images of at least "
                                f"{spec.min_size}×{spec.min_size}.")
    return shape  # type: ignore[return-value]


def check_sequence_length(sequence_length: Any) -> int:
    """`sequence_length` as an int, or `BadInputError` unless it is an integer >= 4.

    Example:
    >>> check_sequence_length(128)
    128
    """
    if not _is_integer(sequence_length) or sequence_length < 4:
        raise BadInputError(f"sequence_length={sequence_length!r}: expected an integer >= 4.")
    return int(sequence_length)


# --------------------------------------------------------------------------- the builder


def _check_classifier_arguments(backbone, num_classes, task, input_shape, trainable_blocks,
                                pooling, hidden_units, dropout) -> None:
    check_choice("task", task, TASKS)
    check_num_classes(num_classes)
    check_choice("pooling", pooling, ("avg", "max"))
    check_hidden_units(hidden_units)
    check_rate("dropout", dropout)
    check_trainable_blocks(trainable_blocks)
    check_input_shape(input_shape, backbone)


def dense_head(x, num_classes: int, *, task: str, hidden_units: Sequence[int] = (),
               dropout: float = 0.0, hidden_activation: str = "relu"):
    """The classifier head on pooled features: optional hidden Dense layers, dropout before
    each Dense, then the float32 ``predictions`` layer with the task's activation (image and
    text classifiers share it, so their heads have the same layer names).

    Example:
    >>> x = keras.Input((8,))
    >>> keras.Model(x, dense_head(x, 3, task="multi_label", hidden_units=(4,))).output_shape
    (None, 3)
    """
    for i, units in enumerate(hidden_units, start=1):
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"hidden{i}_dropout")(x)
        x = keras.layers.Dense(units, activation=hidden_activation, name=f"hidden{i}")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    activation, _, _ = TASKS[task]
    return keras.layers.Dense(int(num_classes), activation=activation, dtype="float32",
                              name="predictions")(x)


def build_image_classifier(
    backbone: str | keras.Model,
    num_classes: int,
    *,
    task: str = "single_label",
    weights: str | os.PathLike | None = "imagenet",
    input_shape: tuple[int, int, int] | None = None,
    trainable_blocks: TrainableBlocks = 0,
    train_batchnorm: bool = False,
    pooling: str = "avg",
    hidden_units: Sequence[int] = (),
    dropout: float = 0.2,
    compile: bool = True,
    learning_rate: float | None = None,
) -> keras.Model:
    """Builds an image classifier (or regressor) on a pretrained backbone.

    The model takes raw images in [0, 255] (preprocessing is inside) and returns probabilities
    (softmax for ``single_label``, sigmoid for ``multi_label``) or values (``regression``). The
    output layer is named ``predictions`` and always computes in float32 (mixed precision safe).
    Every builder shares ``weights``, ``trainable_blocks``, ``compile`` and ``learning_rate``;
    a bad argument raises `BadInputError` naming it, before anything is built.

    Args:
        backbone: a backbone name (see `list_backbones()`) or a model from `build_backbone`.
        num_classes: classes (or regression targets).
        task: ``"single_label"``, ``"multi_label"`` or ``"regression"``.
        weights: the backbone's weights when `backbone` is a name: ``"imagenet"``, a weights
            file or preset (loaded), or None (random).
        input_shape: ``(height, width, 3)`` when `backbone` is a name; default: the size the
            weights were trained at.
        trainable_blocks: which backbone blocks train: 0/None = frozen (the default: feature
            extraction), an int N = the last N blocks, ``"all"``, or a list of block names.
        train_batchnorm: let the backbone's BatchNormalization layers train.
        pooling: ``"avg"`` or ``"max"`` global pooling of the feature map.
        hidden_units: widths of optional hidden Dense+ReLU layers before the output.
        dropout: dropout rate before each Dense layer (0 disables it).
        compile: compile with the ``image_classification`` task's defaults (Adam, the head's
            loss and metrics).
        learning_rate: default: the task's ``default_learning_rate`` (1e-3).

    Example:
    >>> model = build_image_classifier("mobilenet_v2", num_classes=5, weights=None,
    ...                                input_shape=(64, 64, 3))
    >>> model.output_shape
    (None, 5)
    """
    _check_classifier_arguments(backbone, num_classes, task, input_shape, trainable_blocks,
                                pooling, hidden_units, dropout)
    if isinstance(backbone, str):
        backbone = build_backbone(backbone, weights=weights, input_shape=input_shape)
    apply_trainable_blocks(backbone, trainable_blocks, train_batchnorm=train_batchnorm)

    inputs = keras.Input(backbone.input_shape[1:], name="images")
    x = backbone(inputs)
    pool = {"avg": keras.layers.GlobalAveragePooling2D, "max": keras.layers.GlobalMaxPooling2D}
    x = pool[pooling](name="pool")(x)
    outputs = dense_head(x, num_classes, task=task, hidden_units=hidden_units, dropout=dropout)
    model = TaskModel(inputs, outputs, name=f"{backbone.name}_{task}_classifier",
                      task="image_classification", task_config={"head": task})
    if compile:  # the task's optimizer, loss and metrics: the same defaults as the recipes
        get_task("image_classification").compile_model(model, learning_rate)
    return model
