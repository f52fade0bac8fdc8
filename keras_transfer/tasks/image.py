"""Image classification (single-label, multi-label, regression): the task entry and its adapters."""

from __future__ import annotations

from typing import Any

import keras

from keras_transfer.tasks.base import Metric, Task, lazy, register_task, task_config_of

# head: (output activation, default loss, default metrics)
HEADS = {
    "single_label": ("softmax", "sparse_categorical_crossentropy", ["accuracy"]),
    "multi_label": ("sigmoid", "binary_crossentropy", ["binary_accuracy"]),
    "regression": ("linear", "mse", ["mae"]),
}


def adam(model: keras.Model, learning_rate: Any, weight_decay: float | None = None
         ) -> keras.optimizers.Optimizer:
    """Adam, or AdamW with `weight_decay` > 0: the image tasks' default optimizer.

    Example:
    >>> type(adam(None, 1e-3, weight_decay=0.01)).__name__
    'AdamW'
    """
    if weight_decay:
        return keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay)
    return keras.optimizers.Adam(learning_rate)


def head_loss(model: keras.Model) -> tuple[str, list[str]]:
    """The loss and metrics of the classifier's head (from the head it was built with).

    Example:
    >>> import keras_transfer as kt
    >>> m = kt.build_image_classifier("vgg16", 2, weights=None, input_shape=(32, 32, 3))
    >>> head_loss(m)
    ('sparse_categorical_crossentropy', ['accuracy'])
    """
    _, loss, metrics = HEADS[task_config_of(model).get("head", "single_label")]
    return loss, list(metrics)


def compile_classifier(model: keras.Model, optimizer: keras.optimizers.Optimizer,
                       loss: Any = None) -> None:
    """Compiles with the head's loss (or `loss`) and metrics.

    Example:
    >>> # compile_classifier(model, keras.optimizers.Adam(1e-4))
    """
    default_loss, metrics = head_loss(model)
    model.compile(optimizer, loss=loss or default_loss, metrics=metrics)


def _build(*args, **kwargs) -> keras.Model:
    from keras_transfer.heads.classification import build_image_classifier

    return build_image_classifier(*args, **kwargs)


def _export(model: keras.Model, directory, **options) -> dict:
    # The image export takes the shared keywords as they are (labels, verify_data, ...).
    from keras_transfer.export.core import export

    return export(model, directory, **options)


def _predict(artifact, inputs, **options):
    from keras_transfer.tasks.predictors import classify_images

    return classify_images(artifact, inputs, **options)


IMAGE_CLASSIFICATION = register_task(Task(
    name="image_classification", alias="image",
    description="image classification: single-label (softmax), multi-label (sigmoid) or "
                "regression, on any registered CNN backbone",
    inputs="images", build=_build, optimizer=adam, compile=compile_classifier,
    head_loss=head_loss, default_learning_rate=1e-3,
    quantizations=("float32", "float16", "dynamic", "int8"),
    export=_export, predict=_predict,
    evaluate=lazy("keras_transfer.evaluation.tasks", "evaluate_image_classifier"),
    headline=(Metric("accuracy", "accuracy", "{:.2%}"), Metric("macro_f1", "macro F1")),
))
