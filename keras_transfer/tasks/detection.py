"""Object detection (YOLOv8, RetinaNet, SSD, Faster R-CNN): the task entry and its adapters."""

from __future__ import annotations

from typing import Any

import keras

from keras_transfer.errors import BadInputError
from keras_transfer.tasks.base import Metric, Task, lazy, register_class_rule, register_task


def _optimizer(model: keras.Model, learning_rate: Any, weight_decay: float | None = None):
    from keras_transfer.detection.builders import detector_optimizer

    return detector_optimizer(model, learning_rate, weight_decay)


def compile_detector(model: keras.Model, optimizer: keras.optimizers.Optimizer,
                     loss: Any = None) -> None:
    """Compiles a detector with its kind's losses (a detector's losses cannot be replaced).

    Example:
    >>> # compile_detector(detector, keras.optimizers.Adam(1e-4))
    """
    from keras_transfer.detection.builders import KINDS, detector_kind

    if loss is not None:
        raise BadInputError("loss=: a detector trains with its kind's box and class losses; "
                            "they cannot be replaced.")
    KINDS[detector_kind(model)].compile(model, optimizer)


def _build(*args, **kwargs) -> keras.Model:
    from keras_transfer.detection.builders import build_detector

    return build_detector(*args, **kwargs)


# The shared export keywords under the detector export's own names.
_EXPORT_NAMES = {"labels": "class_names", "verify_data": "verify_images",
                 "representative_data": "representative_images"}


def _export(model: keras.Model, directory, **options) -> dict:
    from keras_transfer.detection.export import export_detector

    for shared, own in _EXPORT_NAMES.items():
        if shared in options:
            options[own] = options.pop(shared)
    return export_detector(model, directory, **options)


def _predict(artifact, inputs, **options):
    from keras_transfer.tasks.predictors import detect_images

    return detect_images(artifact, inputs, **options)


def _is_yolov8(model: keras.Model) -> bool:
    from keras_transfer.detection._keras_cv import is_yolov8

    return is_yolov8(model)


DETECTION = register_task(Task(
    name="detection", alias="detection",
    description="object detection: YOLOv8, RetinaNet, SSDLite-style or Faster R-CNN on a "
                "registered backbone's strides 8/16/32, boxes after NMS",
    inputs="images", build=_build, optimizer=_optimizer, compile=compile_detector,
    head_loss=None, default_learning_rate=1e-3,
    # int8: integer convolutions; the decoding and the NMS inside the graph stay float32.
    quantizations=("float32", "float16", "dynamic", "int8"),
    export=_export, predict=_predict,
    evaluate=lazy("keras_transfer.evaluation.tasks", "evaluate_detector"),
    headline=(Metric("map", "mAP@0.5:0.95"), Metric("map50", "mAP@0.5")),
))

register_class_rule(_is_yolov8, "detection")  # keras-cv's class; ours carry task_name
