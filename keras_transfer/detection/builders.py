"""`build_detector`: one signature for every detection head on any registry backbone.

A detector is backbone → `PyramidBackbone` (P3, P4, P5 from the backbone's named blocks) → the
kind's neck and head. The model's ``__call__`` returns the raw head outputs (what export
checks); `keras_transfer.detection.detect` decodes them with NMS. All kinds train on
``(images, {"boxes": (B, M, 4) xyxy pixels, "classes": (B, M)})`` padded with -1.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable

import keras

from keras_transfer.backbones.registry import build_backbone
from keras_transfer.detection import _keras_cv
from keras_transfer.detection.pyramid import PyramidBackbone, set_detector_trainable
from keras_transfer.errors import BadInputError
from keras_transfer.heads.classification import (
    TrainableBlocks,
    apply_trainable_blocks,
    check_input_shape,
    check_num_classes,
    check_trainable_blocks,
)
from keras_transfer.tasks.base import get_task


@dataclasses.dataclass(frozen=True)
class DetectorKind:
    """How to build and compile one kind of detector (the kinds are data, see `KINDS`)."""

    name: str
    build: Callable[..., keras.Model]
    compile: Callable[[keras.Model, keras.optimizers.Optimizer], None]
    description: str
    options: tuple[str, ...] = ()


def _build_yolov8(pyramid, num_classes, fpn_depth: int = 1):
    return _keras_cv.yolov8_detector(pyramid, num_classes, fpn_depth=fpn_depth)


def _compile_yolov8(model, optimizer):
    model.compile(
        optimizer=optimizer,
        box_loss="ciou", classification_loss="binary_crossentropy", jit_compile=False,
    )


def _build_retinanet(pyramid, num_classes, **options):
    from keras_transfer.detection.retinanet import build_retinanet

    return build_retinanet(pyramid, num_classes, **options)


def _compile_retinanet(model, optimizer):
    model.compile(optimizer=optimizer, jit_compile=False)


def _build_ssd(pyramid, num_classes, **options):
    from keras_transfer.detection.ssd import SSDDetector

    return SSDDetector(pyramid, num_classes, name="ssd", **options)


def _compile_ssd(model, optimizer):
    model.compile(optimizer=optimizer, jit_compile=False)


def _build_faster_rcnn(pyramid, num_classes, **options):
    from keras_transfer.detection.faster_rcnn import FasterRCNNDetector

    return FasterRCNNDetector(pyramid, num_classes, name="faster_rcnn", **options)


KINDS: dict[str, DetectorKind] = {
    kind.name: kind
    for kind in (
        DetectorKind("yolov8", _build_yolov8, _compile_yolov8,
                     "keras-cv YOLOV8Detector: anchor-free, PAN neck, CIoU + BCE (needs the "
                     "'detection' extra)", ("fpn_depth",)),
        DetectorKind("retinanet", _build_retinanet, _compile_retinanet,
                     "keras-hub RetinaNetObjectDetector: FPN, 9 anchors per cell, focal loss",
                     ("max_level", "head_convs", "anchor_size")),
        DetectorKind("ssd", _build_ssd, _compile_ssd,
                     "SSDLite-style single-shot head: depthwise-separable heads, 4 anchors per "
                     "cell, hard-negative mining",
                     ("extra_levels", "head_width", "min_scale", "max_scale", "aspect_ratios",
                      "negative_ratio")),
        DetectorKind("faster_rcnn", _build_faster_rcnn, _compile_ssd,
                     "two-stage Faster R-CNN: FPN + RPN, greedy-NMS proposals, RoI Align, "
                     "2-layer box head",
                     ("fpn_width", "fc_units", "roi_size", "num_proposals", "pre_nms_topk",
                      "rois_per_image", "anchor_size", "aspect_ratios", "anchor_scales")),
    )
}


def list_detectors() -> list[str]:
    """The detector kinds `build_detector` accepts.

    Example:
    >>> list_detectors()
    ['yolov8', 'retinanet', 'ssd', 'faster_rcnn']
    """
    return list(KINDS)


def build_detector(
    kind: str,
    backbone: str | keras.Model = "efficientnet_lite0",
    num_classes: int = 1,
    *,
    weights: str | os.PathLike | None = "imagenet",
    input_shape: tuple[int, int, int] = (128, 128, 3),
    trainable_blocks: TrainableBlocks = "all",
    train_batchnorm: bool = False,
    compile: bool = True,
    learning_rate: float | None = None,
    **head_options,
) -> keras.Model:
    """Builds an object detector of one `kind` on a (pretrained) registry backbone.

    Every builder shares ``weights``, ``trainable_blocks``, ``compile`` and ``learning_rate``;
    a bad argument raises `BadInputError` naming it, before anything is built.

    Args:
        kind: ``"yolov8"``, ``"retinanet"``, ``"ssd"`` or ``"faster_rcnn"`` (see
            `list_detectors()`; positional or ``kind=``).
        backbone: a registry name (`list_backbones()`, ``"hub:<preset>"``) or a model from
            `build_backbone`; it needs blocks ending at strides 8, 16 and 32.
        num_classes: object classes (no background class; ids 0 … num_classes - 1).
        weights: backbone weights, as in `build_backbone` (``"imagenet"``: the offline asset
            for ``efficientnet_lite0``, a download for others; None: random).
        input_shape: fixed ``(height, width, 3)``; sides should be multiples of 32.
        trainable_blocks: which backbone blocks train: ``"all"`` (the default), an int N = the
            last N blocks, 0/None = frozen, or a list of block names; the neck and head always
            train.
        train_batchnorm: let the backbone's BatchNormalization layers train.
        compile: compile with the ``detection`` task's defaults: Adam (gradient norm clipped at
            10) and the kind's losses.
        learning_rate: default: the task's ``default_learning_rate`` (1e-3).
        **head_options: per kind: ``yolov8``: ``fpn_depth``; ``retinanet``: ``max_level``,
            ``head_convs``, ``anchor_size``; ``ssd``: ``extra_levels``, ``head_width``,
            ``min_scale``, ``max_scale``, ``aspect_ratios``, ``negative_ratio``;
            ``faster_rcnn``: ``fpn_width``, ``fc_units``, ``roi_size``, ``num_proposals``,
            ``pre_nms_topk``, ``rois_per_image``, ``anchor_size``, ``aspect_ratios``,
            ``anchor_scales`` (see `FasterRCNNDetector`).

    Returns:
        A `keras.Model` taking raw images in [0, 255]; calling it gives raw head outputs.

    Example:
    >>> detector = build_detector("ssd", "mobilenet_v2", num_classes=3, weights=None,
    ...                           input_shape=(64, 64, 3))
    >>> detector.output["class_logits"].shape
    (None, 336, 4)
    """
    input_shape = _check_detector_arguments(kind, backbone, num_classes, input_shape,
                                            trainable_blocks, head_options)
    if isinstance(backbone, str):
        backbone = build_backbone(backbone, weights=weights, input_shape=input_shape)
    pyramid = PyramidBackbone.from_backbone(backbone)
    model = KINDS[kind].build(pyramid, int(num_classes), **head_options)
    apply_trainable_blocks(model, trainable_blocks, apply=set_detector_trainable,
                           train_batchnorm=train_batchnorm)
    if compile:
        compile_detector(model, learning_rate)
    return model


def _check_detector_arguments(kind, backbone, num_classes, input_shape, trainable_blocks,
                              head_options) -> tuple[int, int, int]:
    if kind not in KINDS:
        raise BadInputError(f"kind={kind!r}: Unknown detector kind; choose one of "
                            f"{list(KINDS)}.")
    check_num_classes(num_classes)
    check_trainable_blocks(trainable_blocks)
    shape = check_input_shape(input_shape, backbone)
    if shape is None or any(side % 32 for side in shape[:2]):
        raise BadInputError(
            f"input_shape={input_shape}: a detector needs (height, width, 3) with sides that "
            "are multiples of 32 (features at strides 8, 16 and 32)."
        )
    unknown = sorted(set(head_options) - set(KINDS[kind].options))
    if unknown:
        raise BadInputError(
            f"build_detector({kind!r}): unknown option(s) {unknown}; {kind} takes "
            f"{list(KINDS[kind].options)}."
        )
    return shape


def detector_kind(model: keras.Model) -> str:
    """The kind of a detector built by `build_detector` (also after `load_model`).

    Example:
    >>> # detector_kind(keras.models.load_model("det.keras"))  ->  'retinanet'
    """
    from keras_transfer.detection.faster_rcnn import FasterRCNNDetector
    from keras_transfer.detection.retinanet import RetinaNetDetector
    from keras_transfer.detection.ssd import SSDDetector

    if isinstance(model, SSDDetector):
        return "ssd"
    if isinstance(model, FasterRCNNDetector):
        return "faster_rcnn"
    if isinstance(model, RetinaNetDetector):
        return "retinanet"
    if _keras_cv.is_yolov8(model):
        return "yolov8"
    raise BadInputError(f"Model '{model.name}' is not a detector built by build_detector().")


def compile_detector(model: keras.Model, learning_rate: float | None = None) -> None:
    """(Re)compiles a detector with the ``detection`` task's defaults: `detector_optimizer`
    at `learning_rate` (default: the task's, 1e-3) and its kind's losses.

    Example:
    >>> # set_detector_trainable(detector, "all"); compile_detector(detector, 1e-4)
    """
    get_task("detection").compile_model(model, learning_rate)


def detector_optimizer(model: keras.Model, learning_rate, weight_decay: float | None = None
                       ) -> keras.optimizers.Optimizer:
    """Adam (AdamW with `weight_decay`) with the gradient norm clipped at 10: detection losses
    spike on the first batches of a random head.

    Example:
    >>> detector_optimizer(None, 1e-3).global_clipnorm
    10.0
    """
    if weight_decay:
        return keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay,
                                      global_clipnorm=10.0)
    return keras.optimizers.Adam(learning_rate, global_clipnorm=10.0)
