"""Semantic segmentation (DeepLabV3+, U-Net): the task entry and its adapters."""

from __future__ import annotations

from typing import Any

import keras

from keras_transfer.tasks.base import Metric, Task, lazy, register_task, task_config_of
from keras_transfer.tasks.image import _export as export_images
from keras_transfer.tasks.image import adam


def compile_segmenter(model: keras.Model, optimizer: keras.optimizers.Optimizer,
                      loss: Any = None) -> None:
    """Sparse cross-entropy (or `loss`), pixel accuracy and mean IoU, honouring the ignore class.

    Example:
    >>> # compile_segmenter(model, keras.optimizers.Adam(1e-4))
    """
    from keras_transfer.heads.segmentation import compile_segmenter as compile_with

    config = task_config_of(model)
    num_classes = config.get("num_classes") or int(model.output_shape[-1])
    compile_with(model, num_classes, optimizer=optimizer, loss=loss,
                 ignore_class=config.get("ignore_class"))


def _build(*args, **kwargs) -> keras.Model:
    from keras_transfer.heads.segmentation import build_segmenter

    return build_segmenter(*args, **kwargs)


def _predict(artifact, inputs, **options):
    from keras_transfer.tasks.predictors import segment_images

    return segment_images(artifact, inputs, **options)


SEGMENTATION = register_task(Task(
    name="segmentation", alias="segmentation",
    description="semantic segmentation: DeepLabV3+ or U-Net on a registered CNN backbone, "
                "per-pixel softmax at the input resolution",
    inputs="images", build=_build, optimizer=adam, compile=compile_segmenter,
    head_loss=None, default_learning_rate=1e-3,
    quantizations=("float32", "float16", "dynamic", "int8"),
    export=export_images, predict=_predict,  # the image export verifies masks too
    evaluate=lazy("keras_transfer.evaluation.tasks", "evaluate_segmentation"),
    headline=(Metric("mean_iou", "mean IoU"), Metric("pixel_accuracy", "pixel accuracy", "{:.2%}")),
))
