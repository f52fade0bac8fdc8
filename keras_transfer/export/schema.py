"""The one ``metadata.json`` of every export (format 2), whatever the task.

Every export folder (image classifier, segmenter, detector, text classifier, QA, causal LM)
holds the same files where they apply (``model.keras``, ``saved_model/``,
``model[.flavour].tflite``, ``labels.txt`` where there are labels, ``metadata.json``) and a
``metadata.json`` with the same top-level keys (`COMMON_KEYS`):

================  ===========================================================================
``task``          the registry name (``kt.list_tasks()``): what `kt.predict` dispatches on
``format_version`` 2 (1: the image-only layout of keras-transfer 0.1, still read)
``created``       UTC time of the export; ``versions``: keras, tensorflow, keras-transfer
``model``         name and parameter count (image exports: also the input, output and
                  normalization description of format 1)
``labels``        class names in output order, or null
``formats``       what was asked for; ``quantization``: the TFLite flavours written
``files``         every file or folder written: ``format``, ``size_bytes``, and per file facts
``checksums``     size and sha256 of every file (`keras_transfer.export.integrity`)
``verification``  what was compared with the Keras model, per file (``saved_model``,
                  ``tflite``), ``parity`` and, when something differs, ``problems``
``input``         what the model takes: ``kind`` (images, texts, pairs, question_context,
                  prompts) and its shape / range / resize mode or names / sequence length
``output``        what comes out: ``kind`` (scores, masks, detections, spans, logits) and names
``task_config``   the task's own settings: the head, a detector's decoder and NMS, the
                  tokenizer of a text model
``user``          the caller's ``metadata=`` (JSON)
================  ===========================================================================

Each export also keeps the few keys its earlier readers used (``int8_io`` of images; ``decoder``,
``class_names``, ``outputs``, ``nms`` of detectors; ``string_inputs``, ``outputs``, ``tflite``,
``tokenizer`` of text models).
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from keras_transfer.errors import BadInputError

FORMAT_VERSION = 2
METADATA_FILE = "metadata.json"
LABELS_FILE = "labels.txt"
KERAS_FILE = "model.keras"
SAVED_MODEL_DIR = "saved_model"
FORMATS = ("keras", "saved_model", "tflite")
COMMON_KEYS = ("task", "format_version", "created", "versions", "model", "labels", "formats",
               "quantization", "files", "checksums", "verification", "input", "output",
               "task_config", "user")


def choices(value: str | Sequence[str], allowed: Sequence[str], what: str,
            caller: str = "export") -> tuple[str, ...]:
    """`value` (one name, several, or ``"all"``) checked against `allowed`, duplicates dropped.

    Example:
    >>> choices("all", FORMATS, "formats")
    ('keras', 'saved_model', 'tflite')
    """
    values = (value,) if isinstance(value, str) else tuple(value)
    if values == ("all",):
        values = tuple(allowed)
    unknown = [v for v in values if v not in allowed]
    if unknown or not values:
        raise BadInputError(f"{caller}: {what}={value!r}; choose from {tuple(allowed)} "
                            "(or 'all').")
    return tuple(dict.fromkeys(values))


def json_default(value: Any) -> Any:
    """`json.dumps` ``default=`` for numpy values and paths.

    Example:
    >>> json.dumps({"n": np.int64(3), "p": Path("a")}, default=json_default)
    '{"n": 3, "p": "a"}'
    """
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def as_json(value: Any) -> Any:
    """`value` as plain JSON types (what ``metadata.json`` will hold).

    Example:
    >>> as_json({"a": np.float32(0.5)})
    {'a': 0.5}
    """
    return json.loads(json.dumps(value or {}, default=json_default))


def versions() -> dict[str, str]:
    """The versions of keras, tensorflow and keras-transfer (when installed).

    Example:
    >>> sorted(versions())[-1]
    'tensorflow'
    """
    import keras
    import tensorflow as tf

    found = {"keras": keras.__version__, "tensorflow": tf.__version__}
    try:
        from importlib.metadata import version

        found["keras_transfer"] = version("keras-transfer")
    except Exception:  # noqa: BLE001 - not installed as a distribution
        pass
    return found


def size_of(path: str | os.PathLike) -> int:
    """Bytes of a file, or of every file under a folder.

    Example:
    >>> import tempfile
    >>> size_of(tempfile.mkdtemp())
    0
    """
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def check_labels(labels: Sequence[Any] | None, count: int | None,
                 caller: str = "export") -> list[str] | None:
    """Labels as strings, checked: no newlines, one per output when `count` is known.

    Example:
    >>> check_labels(["cat", 1], 2)
    ['cat', '1']
    """
    if labels is None:
        return None
    labels = [str(label) for label in labels]
    if any("\n" in label for label in labels):
        raise BadInputError(f"{caller}: labels must not contain newlines.")
    if count is not None and len(labels) != count:
        raise BadInputError(f"{caller}: {len(labels)} labels for a model with {count} outputs.")
    return labels


def new_metadata(task: str, *, model: dict[str, Any], labels: list[str] | None,
                 formats: Sequence[str], quantization: Sequence[str], input: dict[str, Any],
                 output: dict[str, Any], task_config: dict[str, Any],
                 user: dict[str, Any] | None) -> dict[str, Any]:
    """The common part of every ``metadata.json`` (``files``, ``checksums`` and
    ``verification`` are filled in while the export runs).

    Example:
    >>> info = new_metadata("image_classification", model={"name": "m"}, labels=None,
    ...                     formats=["keras"], quantization=[], input={"kind": "images"},
    ...                     output={"kind": "scores"}, task_config={}, user=None)
    >>> missing_keys(info)
    ['checksums', 'verification']
    """
    return {
        "task": task,
        "format_version": FORMAT_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": versions(),
        "model": model,
        "labels": labels,
        "formats": list(formats),
        "quantization": list(quantization),
        "files": {},
        "input": input,
        "output": output,
        "task_config": as_json(task_config),
        "user": as_json(user),
    }


def missing_keys(info: dict[str, Any]) -> list[str]:
    """The `COMMON_KEYS` a metadata dict lacks (empty for a complete one).

    Example:
    >>> missing_keys({})[:3]
    ['task', 'format_version', 'created']
    """
    return [key for key in COMMON_KEYS if key not in info]


def write_labels(folder: Path, labels: list[str] | None, files: dict[str, dict]) -> None:
    """Writes ``labels.txt`` (one label per line) when there are labels.

    Example:
    >>> import tempfile
    >>> files = {}; write_labels(Path(tempfile.mkdtemp()), ["a", "b"], files); files
    {'labels.txt': {'format': 'labels'}}
    """
    if labels is None:
        return
    (folder / LABELS_FILE).write_text("\n".join(labels) + "\n", encoding="utf-8")
    files[LABELS_FILE] = {"format": "labels"}


def record_sizes(folder: Path, files: dict[str, dict]) -> None:
    """Adds ``size_bytes`` to each entry of `files` (names relative to `folder`).

    Example:
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp()); _ = (folder / "a").write_bytes(b"xy")
    >>> files = {"a": {}}; record_sizes(folder, files); files
    {'a': {'size_bytes': 2}}
    """
    for name, entry in files.items():
        entry["size_bytes"] = size_of(folder / name)


def write_metadata(folder: Path, info: dict[str, Any]) -> None:
    """Records the files' sizes and checksums in `info`, then writes ``metadata.json``.

    Called last, on the files as they will be renamed into place: every later load is checked
    against these records.

    Example:
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp()); _ = (folder / "labels.txt").write_text("a\\n")
    >>> info = {"files": {"labels.txt": {"format": "labels"}}}
    >>> write_metadata(folder, info); sorted(info["checksums"])
    ['labels.txt']
    """
    from keras_transfer.export import integrity

    record_sizes(folder, info["files"])
    info["checksums"] = integrity.checksums(folder, info["files"])
    text = json.dumps(info, indent=2, default=json_default)
    (folder / METADATA_FILE).write_text(text + "\n", encoding="utf-8")


def check_target(directory: str | os.PathLike, overwrite: bool) -> Path:
    """The export folder as a `Path`; `FileExistsError` when it exists and must not be replaced.

    Example:
    >>> import tempfile
    >>> check_target(tempfile.mkdtemp() + "/new", overwrite=False).name
    'new'
    """
    directory = Path(directory)
    if directory.exists() and not overwrite:
        raise FileExistsError(f"{directory} already exists (pass overwrite=True to replace it).")
    return directory
