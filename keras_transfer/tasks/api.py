"""One export and one predict for every task: each asks the model's (or artifact's) task."""

from __future__ import annotations

import os
import re
from typing import Any, Sequence

import keras

from keras_transfer.errors import BadInputError
from keras_transfer.tasks.base import get_task, task_of

# The keywords every task's export takes (each adapter maps them to its own names).
SHARED_EXPORT_OPTIONS = ("formats", "labels", "verify_data", "representative_data", "metadata",
                         "overwrite", "verbose", "require_parity")


def _requested(quantization: str | Sequence[str]) -> tuple[str, ...]:
    return (quantization,) if isinstance(quantization, str) else tuple(quantization)


def export(model: keras.Model, directory: str | os.PathLike, *,
           quantization: str | Sequence[str] = ("float32",), **options: Any) -> dict[str, Any]:
    """Exports `model` with its task's adapter into one folder: ``model.keras``,
    ``saved_model/``, ``model[.flavour].tflite`` for each `quantization`, ``labels.txt`` where
    there are labels, and ``metadata.json`` in the schema every task shares
    (`keras_transfer.export.schema`: ``task``, ``input``, ``output``, ``files``,
    ``checksums``, ``verification``, ``task_config``, ``user``, ...).

    Every task takes the same keywords: ``formats`` (``"keras"``, ``"saved_model"``,
    ``"tflite"``), ``labels``, ``verify_data`` (images, texts, (question, context) pairs or
    prompts, as the task reads), ``representative_data`` (what int8 calibrates on; default
    `verify_data`), ``metadata`` (→ ``user``), ``overwrite``, ``verbose``,
    ``require_parity``; a task's own options (``num_verify``, a detector's ``nms``, ...) pass
    through. ``quantization="all"`` means every flavour the task's ops allow
    (``kt.get_task(name).quantizations``).

    Example:
    >>> import tempfile, keras_transfer as kt
    >>> model = kt.build_image_classifier("vgg16", 2, weights=None, input_shape=(32, 32, 3))
    >>> info = kt.export(model, tempfile.mkdtemp() + "/out", formats="tflite", verbose=False,
    ...                  labels=["cat", "dog"], num_verify=2)
    >>> info["task"], info["format_version"], sorted(info["files"])
    ('image_classification', 2, ['labels.txt', 'model.tflite'])
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
    if not wanted:  # no TFLite file asked for: the other formats only
        formats = options.get("formats", ("keras", "saved_model"))
        formats = (formats,) if isinstance(formats, str) else tuple(formats)
        options["formats"] = tuple(f for f in formats if f != "tflite") or ("keras",)
        wanted = ("float32",)
    try:
        info = task.export(model, directory, quantization=wanted, **options)
    except TypeError as error:
        unknown = re.search(r"unexpected keyword argument '(\w+)'", str(error))
        if unknown is None:
            raise
        raise BadInputError(
            f"export: {unknown.group(1)}= is not an export option of a {task.name} model; "
            f"every task takes quantization, {', '.join(SHARED_EXPORT_OPTIONS)}.") from None
    info.setdefault("task", task.name)
    return info


def predict(artifact: str | os.PathLike, inputs: Any, **options: Any) -> Any:
    """Runs an exported model (export folder, ``.keras``, SavedModel or ``.tflite``) on
    `inputs` and returns what its task means; the task is read from ``metadata.json``.

    ====================  ==================================  ================================
    task                  inputs                              returns
    ====================  ==================================  ================================
    image_classification  image files or arrays               top-k ``(label, score)`` per image
    segmentation          image files or arrays               a class-id mask per image
    detection             image files or arrays               ``{"boxes", "scores", "classes",
                                                              "labels"}`` per image
    text_classification   strings (pairs: tuples of two)      top-k ``(label, score)`` per text
    question_answering    ``{"question", "context"}`` dicts   ``{"answer", "score", "start",
                          or (question, context) pairs        "end"}`` per question
    causal_lm             prompts                             the generated text per prompt
    ====================  ==================================  ================================

    ``output_dir=`` also writes ``predictions.json`` (and a PNG per image for segmentation and
    detection); other options are the task's (``top_k``, ``tta``, ``labels``,
    ``score_threshold``, ``max_length``, ...).

    Example:
    >>> # kt.predict("saved_models/flowers", ["rose.jpg"])  ->  [[('rose', 0.93), ...]]
    >>> # kt.predict("exports/qa", {"question": "Where?", "context": "In Paris."})
    """
    from keras_transfer.tasks.artifacts import artifact_task

    task = get_task(artifact_task(artifact))
    if task.predict is None:
        raise BadInputError(f"predict: {task.name} artifacts have no predict adapter yet.")
    try:
        return task.predict(artifact, inputs, **options)
    except TypeError as error:
        unknown = re.search(r"unexpected keyword argument '(\w+)'", str(error))
        if unknown is None:
            raise
        raise BadInputError(f"predict: {unknown.group(1)}= is not an option of a {task.name} "
                            "model's predict.") from None
