"""Which task an exported artifact was made for, read from the ``metadata.json`` beside it."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

from keras_transfer.errors import BadInputError

METADATA_FILE = "metadata.json"
# Classes whose .keras config names no task: keras-transfer's detectors and keras-cv's YOLOv8.
_DETECTOR_CLASSES = ("SSDDetector", "FasterRCNNDetector", "RetinaNetDetector", "YOLOV8Detector")


def export_folder(artifact: str | os.PathLike) -> Path:
    """The export folder of an artifact: the folder itself, or the one holding the file (or
    holding the ``saved_model/`` folder).

    Example:
    >>> export_folder("exports/flowers/saved_model").as_posix()
    'exports/flowers'
    """
    path = Path(artifact)
    if path.is_dir() and (path / METADATA_FILE).is_file():
        return path
    if path.name == "saved_model":
        return path.parent
    return path.parent.parent if path.parent.name == "saved_model" else path.parent


def metadata_path(artifact: str | os.PathLike) -> Path:
    """The ``metadata.json`` of an export folder or of a file inside one.

    Example:
    >>> metadata_path("exports/flowers/model.tflite").as_posix()
    'exports/flowers/metadata.json'
    """
    return export_folder(artifact) / METADATA_FILE


def read_metadata(artifact: str | os.PathLike) -> dict[str, Any]:
    """The ``metadata.json`` beside an artifact as a dict (``{}`` when there is none).

    Example:
    >>> import tempfile
    >>> read_metadata(tempfile.mkdtemp())
    {}
    """
    path = metadata_path(artifact)
    if not path.is_file():
        return {}
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise BadInputError(f"{path} is not readable JSON ({error}).") from error
    if not isinstance(metadata, dict):
        raise BadInputError(f"{path}: expected a JSON object.")
    return metadata


def _task_from_layout(metadata: dict[str, Any]) -> str | None:
    """The task of an export of format 1, which recorded no top-level ``task``."""
    image_task = (metadata.get("model") or {}).get("output", {}).get("task")
    if image_task == "segmentation":
        return "segmentation"
    if image_task in ("single_label", "multi_label", "regression", "unknown"):
        return "image_classification"
    if "decoder" in metadata or "detector" in metadata:
        return "detection"
    if "preprocessor" in metadata or "tokenizer" in metadata:
        strings = metadata.get("string_inputs") or []
        return "question_answering" if "question" in strings else "text_classification"
    return None


def keras_archive_task(path: str | os.PathLike) -> str:
    """The task of a ``.keras`` archive, read from its ``config.json`` without loading it: the
    ``task`` a `TaskModel` records, else the class (a detector, a keras-hub ``CausalLM``);
    image classification for an untagged functional model (what keras-transfer 0.1 exported).

    Example:
    >>> # keras_archive_task("runs/flowers/model.keras")  ->  'image_classification'
    """
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise BadInputError(f"{path}: not a readable .keras archive ({error}).") from None
    task = (config.get("config") or {}).get("task")
    if task:
        return str(task)
    name, module = str(config.get("class_name", "")), str(config.get("module", ""))
    if name in _DETECTOR_CLASSES or name.split(">")[-1] in _DETECTOR_CLASSES:
        return "detection"
    if module.startswith("keras_hub") and name.endswith("CausalLM"):
        return "causal_lm"
    return "image_classification"


def artifact_task(artifact: str | os.PathLike) -> str:
    """The task name recorded in the artifact's ``metadata.json``.

    Exports from keras-transfer < 0.2 recorded no top-level ``task``; their layout tells it
    (a ``model.output.task`` of the image export, the text or detector sections). A file with
    no ``metadata.json`` beside it: a ``.keras`` archive's own config says (see
    `keras_archive_task`); a bare ``.tflite`` or SavedModel is read as an image classifier, as
    keras-transfer 0.1 did.

    Example:
    >>> # artifact_task("saved_models/elpv_efficientnet_lite0")  ->  'image_classification'
    """
    path = Path(artifact)
    if not path.exists():
        raise BadInputError(f"{path}: no such file or folder.")
    metadata = read_metadata(path)
    if metadata.get("task"):
        return str(metadata["task"])
    task = _task_from_layout(metadata) if metadata else None
    if task is not None:
        return task
    if metadata:
        raise BadInputError(f"{metadata_path(path)} does not say which task the model is for.")
    keras_file = path / "model.keras" if path.is_dir() else path
    if keras_file.suffix == ".keras" and keras_file.is_file():
        return keras_archive_task(keras_file)
    return "image_classification"
