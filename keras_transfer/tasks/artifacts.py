"""Which task an exported artifact was made for, read from the ``metadata.json`` beside it."""

from __future__ import annotations

import json
import os
from pathlib import Path

from keras_transfer.errors import BadInputError

METADATA_FILE = "metadata.json"


def metadata_path(artifact: str | os.PathLike) -> Path:
    """The ``metadata.json`` of an export folder or of a file inside one.

    Example:
    >>> metadata_path("exports/flowers/model.tflite").as_posix()
    'exports/flowers/metadata.json'
    """
    path = Path(artifact)
    if path.is_dir() and (path / METADATA_FILE).is_file():
        return path / METADATA_FILE
    folder = path.parent.parent if path.parent.name == "saved_model" else path.parent
    if path.name == "saved_model":
        folder = path.parent
    return folder / METADATA_FILE


def artifact_task(artifact: str | os.PathLike) -> str:
    """The task name recorded in the artifact's ``metadata.json``.

    Exports from keras-transfer < 0.2 recorded no top-level ``task``; their layout tells it
    (a ``model.output.task`` of the image export, the text or detector sections).

    Example:
    >>> # artifact_task("saved_models/elpv_efficientnet_lite0")  ->  'image_classification'
    """
    path = metadata_path(artifact)
    if not path.is_file():
        raise BadInputError(f"predict: no {METADATA_FILE} beside {artifact}; predict needs "
                            "an export folder written by keras_transfer.export (or kt.export).")
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise BadInputError(f"predict: {path} is not readable JSON ({error}).") from error
    if metadata.get("task"):
        return str(metadata["task"])
    image_task = (metadata.get("model") or {}).get("output", {}).get("task")
    if image_task == "segmentation":
        return "segmentation"
    if image_task in ("single_label", "multi_label", "regression"):
        return "image_classification"
    if "decoder" in metadata or "detector" in metadata:
        return "detection"
    if "preprocessor" in metadata or "tokenizer" in metadata:
        return "text_classification"
    raise BadInputError(f"predict: {path} does not say which task the model is for.")
