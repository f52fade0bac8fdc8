"""Segmentation heads on registry backbones: DeepLabV3+ and U-Net, as plain functional graphs.

Both heads read feature maps off the backbone's named blocks (the block map of its
`BackboneSpec`): each block ends at a stride, and the last block ending at a stride is that
stride's feature. The backbone stays one nested model named after its spec, so `freeze`,
`unfreeze`, `set_trainable` and `describe` work on a segmenter exactly as on a classifier, before
and after `load_model`. The output is a per-pixel softmax at the input resolution (float32).
"""

from __future__ import annotations

import math
import os
from typing import Callable, Sequence

import keras

from keras_transfer.backbones import blocks as _blocks
from keras_transfer.backbones import build_backbone, find_backbone, get_spec, list_backbones
from keras_transfer.errors import BadInputError
from keras_transfer.heads.classification import (
    TrainableBlocks,
    apply_trainable_blocks,
    check_choice,
    check_input_shape,
    check_num_classes,
    check_rate,
    check_trainable_blocks,
)
from keras_transfer.tasks.base import TaskModel, get_task

# DeepLab's atrous rates (6, 12, 18) go with a ~32-pixel map (513 px crops at stride 16); the
# defaults keep that ratio to the map's side, so small inputs get small rates.
_PAPER_RATES, _PAPER_SIDE = (6, 12, 18), 32


# --------------------------------------------------------------------------- backbone taps


def _owner(backbone: keras.Model) -> keras.Model:
    """The model whose graph holds the block ends: the backbone, or the hub model nested in it."""
    nested = [layer for layer in backbone.layers if _blocks.is_nested_backbone(layer)]
    return nested[0] if nested else backbone


def block_strides(backbone: keras.Model) -> dict[str, int]:
    """Block name → the stride of its output (2, 4, 8, …), for blocks that downsample.

    Blocks outside the backbone's own graph (a hub wrapper's preprocessing) and stride-1 blocks
    are left out. The backbone needs a fixed input size.

    Example:
    >>> bb = build_backbone("mobilenet_v2", weights=None, input_shape=(64, 64, 3))
    >>> block_strides(bb)
    {'stem': 2, 'block1': 4, 'block2': 8, 'block3': 16, 'block4': 32, 'top': 32}
    """
    backbone, _ = find_backbone(backbone)
    height = backbone.input_shape[1]
    if height is None or backbone.input_shape[2] is None:
        raise BadInputError(
            f"Backbone '{backbone.name}' has no fixed input size; build it with "
            "input_shape=(H, W, 3) to attach a segmentation head."
        )
    owner = _owner(backbone)
    inside = {id(layer) for layer in owner.layers}
    ends = [b for b in _blocks.blocks_of(backbone) if id(b.output_layer) in inside]
    probe = keras.Model(owner.inputs, [b.output_layer.output for b in ends])
    shapes = probe.compute_output_shape((1, *backbone.input_shape[1:]))
    strides = {}
    for block, shape in zip(ends, shapes):
        stride = 2 ** round(math.log2(height / shape[1]))  # odd sizes round up at each stride
        if stride >= 2:
            strides[block.name] = stride
    return strides


def feature_extractor(backbone: keras.Model, block_names: Sequence[str]) -> keras.Model:
    """A model: raw images → the outputs of the named blocks (in block order), sharing weights.

    The model is named after the backbone's spec and keeps the backbone's whole graph, so per-block
    freezing keeps working: when the deepest named block is not the last one, the backbone's own
    output is appended as an extra (unused) last output. A keras-hub backbone nested in our
    wrapper is tapped inside and called on the wrapper's preprocessing.

    Example:
    >>> bb = build_backbone("mobilenet_v2", weights=None, input_shape=(64, 64, 3))
    >>> [tuple(s[1:]) for s in feature_extractor(bb, ["block1", "top"]).output_shape]
    [(16, 16, 24), (2, 2, 1280)]
    """
    backbone, spec = find_backbone(backbone)
    owner = _owner(backbone)
    inside = {id(layer) for layer in owner.layers}
    blocks = [b for b in _blocks.blocks_of(backbone) if id(b.output_layer) in inside]
    by_name = {block.name: block for block in blocks}
    unknown = [name for name in block_names if name not in by_name]
    if unknown or not block_names:
        raise BadInputError(f"Block(s) {unknown or block_names} of '{spec.name}' cannot be "
                            f"tapped; choose from {list(by_name)}.")
    chosen = [block for block in blocks if block.name in set(block_names)]
    if chosen[-1] is not blocks[-1]:
        chosen.append(blocks[-1])  # keeps every block in the graph (their ends must be found)
    outputs = [block.output_layer.output for block in chosen]
    if owner is backbone:
        return keras.Model(backbone.inputs, outputs, name=spec.name)
    tapped = keras.Model(owner.inputs, outputs, name=spec.name + _blocks.FEATURE_VIEW_SUFFIX)
    inputs = keras.Input(backbone.input_shape[1:], name="images")
    x = inputs
    for layer in backbone.layers[1 : backbone.layers.index(owner)]:  # e.g. preprocessing
        x = layer(x)
    return keras.Model(inputs, tapped(x), name=spec.name)


# --------------------------------------------------------------------------- head pieces


def _conv_bn_relu(x, filters: int, kernel: int, name: str, dilation: int = 1):
    x = keras.layers.Conv2D(filters, kernel, padding="same", dilation_rate=dilation,
                            use_bias=False, name=f"{name}_conv")(x)
    # Momentum 0.9 (PyTorch's default) rather than Keras' 0.99: the moving statistics of a fresh
    # head settle in tens of steps, not hundreds, so short fine-tuning runs evaluate correctly.
    x = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def _resize(x, size: Sequence[int], name: str):
    if tuple(x.shape[1:3]) == tuple(size):
        return x
    return keras.layers.Resizing(int(size[0]), int(size[1]), interpolation="bilinear",
                                 name=name)(x)


def default_atrous_rates(side: int) -> tuple[int, ...]:
    """DeepLab's (6, 12, 18) scaled to a feature map of `side` pixels (duplicates dropped).

    Example:
    >>> default_atrous_rates(32), default_atrous_rates(4)
    ((6, 12, 18), (1, 2))
    """
    return tuple(dict.fromkeys(max(1, round(r * side / _PAPER_SIDE)) for r in _PAPER_RATES))


def _deeplab_v3_plus(features: list, strides: list[int], options: dict):
    """ASPP on the deep feature, fused with a projected low-level feature (stride ~4)."""
    low, deep = features[0], features[1]
    filters = options["filters"] or 256
    rates = options["atrous_rates"] or default_atrous_rates(min(deep.shape[1:3]))
    branches = [_conv_bn_relu(deep, filters, 1, "aspp_1x1")]
    branches += [_conv_bn_relu(deep, filters, 3, f"aspp_rate{r}", dilation=r) for r in rates]
    pooled = keras.layers.GlobalAveragePooling2D(keepdims=True, name="aspp_pool")(deep)
    pooled = _conv_bn_relu(pooled, filters, 1, "aspp_pool_project")
    branches.append(_resize(pooled, deep.shape[1:3], "aspp_pool_upsample"))
    x = keras.layers.Concatenate(name="aspp_concat")(branches)
    x = _conv_bn_relu(x, filters, 1, "aspp_project")
    low = _conv_bn_relu(low, max(8, filters * 48 // 256), 1, "low_level_project")
    x = _resize(x, low.shape[1:3], "decoder_upsample")
    x = keras.layers.Concatenate(name="decoder_concat")([x, low])
    x = _conv_bn_relu(x, filters, 3, "decoder_block1")
    return _conv_bn_relu(x, filters, 3, "decoder_block2")


def _unet(features: list, strides: list[int], options: dict):
    """Upsample, concatenate the skip of the next shallower stride, two 3×3 convs; repeat."""
    filters = options["filters"] or 256
    x, stage = features[-1], 0
    for stage, skip in enumerate(reversed(features[:-1]), start=1):
        width = max(8, filters >> (stage - 1))
        x = _resize(x, skip.shape[1:3], f"decoder{stage}_upsample")
        x = keras.layers.Concatenate(name=f"decoder{stage}_concat")([x, skip])
        x = _conv_bn_relu(x, width, 3, f"decoder{stage}_block1")
        x = _conv_bn_relu(x, width, 3, f"decoder{stage}_block2")
    if strides[0] > 1:  # the shallowest skip is at stride 2: one more stage at full resolution
        stage += 1
        width = max(8, filters >> (stage - 1))
        x = _resize(x, options["image_size"], f"decoder{stage}_upsample")
        x = _conv_bn_relu(x, width, 3, f"decoder{stage}_block1")
        x = _conv_bn_relu(x, width, 3, f"decoder{stage}_block2")
    return x


def _deeplab_taps(strides: dict[str, int]) -> list[str]:
    # Low level: the last block at stride 4 (the paper's choice), else the nearest stride to 4.
    low_stride = min(strides.values(), key=lambda s: (abs(math.log2(s / 4)), s))
    low = [name for name, s in strides.items() if s == low_stride][-1]
    return [low, list(strides)[-1]]


def _unet_taps(strides: dict[str, int]) -> list[str]:
    last_at = {stride: name for name, stride in strides.items()}  # later blocks replace earlier
    return sorted(last_at.values(), key=list(strides).index)


# kind -> (default feature blocks from {block: stride}, head builder, number of feature blocks)
SEGMENTERS: dict[str, tuple[Callable, Callable, int | None]] = {
    "deeplab_v3_plus": (_deeplab_taps, _deeplab_v3_plus, 2),
    "unet": (_unet_taps, _unet, None),
}


# --------------------------------------------------------------------------- the task


def build_segmenter(
    kind: str,
    backbone: str | keras.Model,
    num_classes: int,
    *,
    weights: str | os.PathLike | None = "imagenet",
    input_shape: tuple[int, int, int] | None = None,
    trainable_blocks: TrainableBlocks = 0,
    train_batchnorm: bool = False,
    feature_blocks: Sequence[str] | None = None,
    filters: int | None = None,
    atrous_rates: Sequence[int] | None = None,
    dropout: float = 0.1,
    ignore_class: int | None = None,
    compile: bool = True,
    learning_rate: float | None = None,
) -> keras.Model:
    """Builds a semantic segmentation model (DeepLabV3+ or U-Net) on a pretrained backbone.

    The model takes raw images in [0, 255] (preprocessing is inside) and returns per-pixel class
    probabilities ``(batch, H, W, num_classes)`` at the input resolution, from a float32 softmax
    layer named ``predictions``. Train it on integer masks ``(batch, H, W)``.

    Every builder shares ``weights``, ``trainable_blocks``, ``compile`` and ``learning_rate``;
    a bad argument raises `BadInputError` naming it, before anything is built.

    Args:
        kind: ``"deeplab_v3_plus"`` or ``"unet"`` (positional or ``kind=``).
        backbone: a registered backbone name (see `list_backbones()`) or a model from
            `build_backbone` (with a fixed input size).
        num_classes: classes, background included.
        weights: the backbone's weights when `backbone` is a name: ``"imagenet"``, a weights
            file (loaded), or None (random).
        input_shape: ``(height, width, 3)`` when `backbone` is a name; default: the size the
            weights were trained at.
        trainable_blocks: which backbone blocks train: 0/None = frozen (the default: the head
            trains), an int N = the last N blocks, ``"all"``, or a list of block names.
        train_batchnorm: let the backbone's BatchNormalization layers train.
        feature_blocks: backbone blocks feeding the head, shallow to deep. Default: DeepLabV3+
            takes ``[last block at stride 4, last block]``; U-Net the last block at each stride.
        filters: head width (default 256): DeepLab's ASPP/decoder channels; U-Net's deepest
            decoder stage (halved at each shallower stage).
        atrous_rates: DeepLab's ASPP rates; default (6, 12, 18) scaled to the feature map.
        dropout: dropout rate before the per-pixel classifier (0 disables it).
        ignore_class: a mask value (e.g. 255) left out of the loss and the IoU metric.
        compile: compile with the ``segmentation`` task's defaults: Adam, sparse
            cross-entropy, pixel accuracy and mean IoU.
        learning_rate: default: the task's ``default_learning_rate`` (1e-3).

    Example:
    >>> model = build_segmenter("unet", "mobilenet_v2", num_classes=3, weights=None,
    ...                         input_shape=(64, 64, 3), filters=32)
    >>> model.output_shape
    (None, 64, 64, 3)
    """
    check_choice("kind", kind, SEGMENTERS)
    num_classes = check_num_classes(num_classes, minimum=2)
    check_rate("dropout", dropout)
    check_trainable_blocks(trainable_blocks)
    check_input_shape(input_shape, backbone)
    if isinstance(backbone, str):
        if get_spec(backbone).name not in list_backbones():  # unknown names raise there
            raise BadInputError(
                f"backbone={backbone!r}: segmentation heads need a registered backbone (its "
                "block map gives the feature maps); list_backbones() lists them."
            )
        backbone = build_backbone(backbone, weights=weights, input_shape=input_shape)
    backbone, spec = find_backbone(backbone)
    strides = block_strides(backbone)
    default_taps, head, count = SEGMENTERS[kind]
    names = list(feature_blocks) if feature_blocks is not None else default_taps(strides)
    unknown = [name for name in names if name not in strides]
    if unknown or (count is not None and len(names) != count) or len(names) < 2:
        raise BadInputError(
            f"feature_blocks={names}: {kind} needs {count or 'at least 2'} block names from "
            f"{list(strides)} (block: stride {strides})."
        )
    names = sorted(names, key=list(strides).index)
    features_model = feature_extractor(backbone, names)

    image_size = tuple(backbone.input_shape[1:3])
    inputs = keras.Input(backbone.input_shape[1:], name="images")
    features = features_model(inputs)[: len(names)]  # a trailing extra output stays unused
    options = dict(filters=filters, atrous_rates=atrous_rates, image_size=image_size)
    x = head(features, [strides[name] for name in names], options)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    x = keras.layers.Conv2D(num_classes, 1, name="logits")(x)
    x = _resize(x, image_size, "upsample_logits")
    outputs = keras.layers.Activation("softmax", dtype="float32", name="predictions")(x)
    model = TaskModel(inputs, outputs, name=f"{spec.name}_{kind}", task="segmentation",
                      task_config={"kind": kind, "num_classes": num_classes,
                                   "ignore_class": ignore_class})
    apply_trainable_blocks(model, trainable_blocks, train_batchnorm=train_batchnorm)
    if compile:  # the task's optimizer, loss and metrics: the same defaults as the recipes
        get_task("segmentation").compile_model(model, learning_rate)
    return model


def compile_segmenter(
    model: keras.Model,
    num_classes: int,
    *,
    learning_rate: float = 1e-3,
    optimizer: keras.optimizers.Optimizer | None = None,
    ignore_class: int | None = None,
    loss: keras.losses.Loss | str | None = None,
) -> keras.Model:
    """Compiles (again, e.g. after unfreezing) with sparse cross-entropy, pixel accuracy, mean IoU.

    Example:
    >>> model = build_segmenter("deeplab_v3_plus", "mobilenet_v2", num_classes=2, weights=None,
    ...                         input_shape=(64, 64, 3), filters=16, compile=False)
    >>> compile_segmenter(model, 2).loss.name
    'sparse_categorical_crossentropy'
    """
    from keras_transfer.evaluation.segmentation import mean_iou_metric

    model.compile(
        optimizer or keras.optimizers.Adam(learning_rate),
        loss=loss or keras.losses.SparseCategoricalCrossentropy(ignore_class=ignore_class),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="pixel_accuracy"),
                 mean_iou_metric(num_classes, ignore_class=ignore_class)],
    )
    return model
