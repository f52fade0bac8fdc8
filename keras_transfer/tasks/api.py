"""One export and one predict for every task: each asks the model's (or artifact's) task."""

from __future__ import annotations

import os
from typing import Any, Sequence

import keras

from keras_transfer.errors import BadInputError
from keras_transfer.tasks.base import get_task, task_of


def _requested(quantization: str | Sequence[str]) -> tuple[str, ...]:
    return (quantization,) if isinstance(quantization, str) else tuple(quantization)


def export(model: keras.Model, directory: str | os.PathLike, *,
           quantization: str | Sequence[str] = ("float32",), **options: Any) -> dict[str, Any]:
    """Exports `model` with its task's adapter: ``model.keras``, ``saved_model/``, ``.tflite``
    files for each `quantization` the task allows, ``labels.txt`` and ``metadata.json``.

    ``quantization="all"`` means every flavour the task's ops allow (see
    ``kt.get_task(name).quantizations``); other keywords (``labels``, ``verify_data``,
    ``formats``, ``metadata``, ``overwrite``, ``verbose`` …) go to the task's adapter.

    Example:
    >>> import tempfile, keras_transfer as kt
    >>> model = kt.build_image_classifier("vgg16", 2, weights=None, input_shape=(32, 32, 3))
    >>> info = kt.export(model, tempfile.mkdtemp() + "/out", formats="tflite", verbose=False,
    ...                  labels=["cat", "dog"], num_verify=2)
    >>> info["task"], sorted(info["files"])
    ('image_classification', ['labels.txt', 'model.tflite'])
    """
    task = task_of(model)
    wanted = _requested(quantization)
    if wanted == ("all",):
        wanted = task.quantizations
    unsupported = [flavour for flavour in wanted if flavour not in task.quantizations]
    if unsupported or task.export is None:
        allowed = task.quantizations or "none: this task has no TFLite export"
        raise BadInputError(
            f"export: quantization {unsupported or list(wanted)} is not available for a "
            f"{task.name} model; it allows {allowed}.")
    if not wanted:  # e.g. a causal LM: no TFLite flavour at all
        options.setdefault("formats", ("keras", "saved_model"))
    info = task.export(model, directory, quantization=wanted, **options)
    info.setdefault("task", task.name)
    return info


def predict(artifact: str | os.PathLike, inputs: Any, **options: Any) -> Any:
    """Runs an exported model (folder, ``.keras``, SavedModel or ``.tflite``) on `inputs` and
    returns what its task means (see each task's predict adapter).

    Example:
    >>> # kt.predict("saved_models/flowers", ["rose.jpg"])  ->  [[('rose', 0.93), ...]]
    """
    from keras_transfer.tasks.artifacts import artifact_task

    task = get_task(artifact_task(artifact))
    if task.predict is None:
        raise BadInputError(f"predict: {task.name} artifacts have no predict adapter yet.")
    return task.predict(artifact, inputs, **options)
