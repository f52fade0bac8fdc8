"""Artifacts are checked before they are used: recorded size and sha256, then their structure.

`export` records every file it writes in ``metadata.json`` → ``checksums``
(``{"model.tflite": {"size_bytes": ..., "sha256": ...}, "saved_model/saved_model.pb": ...}``).
Before a ``.tflite``, ``.keras`` or SavedModel is loaded, `check_artifact` compares the file with
that record, so a truncated copy fails with a message naming the file and both sizes instead of
a segfault in the TFLite interpreter or Keras's misleading "File not found". Without a record
(a file copied on its own, another tool's file) the structure is checked: a ``.tflite`` must be
a whole TFLite flatbuffer (identifier, root table and every buffer inside the file), a ``.keras``
a complete zip archive whose members pass their CRC check.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import zipfile
from pathlib import Path
from typing import Any, Iterable

from keras_transfer.errors import BadInputError

METADATA_FILE = "metadata.json"
CHECKSUMS_KEY = "checksums"
TFLITE_IDENTIFIER = b"TFL3"
_CHUNK = 1 << 20
_AGAIN = "re-export or copy it again"


def file_record(path: str | os.PathLike) -> dict[str, Any]:
    """``{"size_bytes", "sha256"}`` of one file.

    Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.bin"; _ = p.write_bytes(b"abc")
    >>> file_record(p)["size_bytes"], file_record(p)["sha256"][:12]
    (3, 'ba7816bf8f01')
    """
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return {"size_bytes": size, "sha256": digest.hexdigest()}


def checksums(folder: str | os.PathLike, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Records (`file_record`) of the files `names` in `folder`, and of every file under the
    folders among them, keyed by their ``/``-separated path relative to `folder`.

    Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "model.tflite").write_bytes(b"x"); (folder / "sm").mkdir()
    >>> _ = (folder / "sm" / "saved_model.pb").write_bytes(b"yz")
    >>> {k: v["size_bytes"] for k, v in checksums(folder, ["model.tflite", "sm"]).items()}
    {'model.tflite': 1, 'sm/saved_model.pb': 2}
    """
    folder = Path(folder)
    records = {}
    for name in names:
        path = folder / name
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            records[file.relative_to(folder).as_posix()] = file_record(file)
    return records


def recorded_checksums(path: str | os.PathLike) -> tuple[Path, dict[str, dict]] | None:
    """The ``metadata.json`` beside an artifact and its records of that artifact's files (the
    file itself, or every file of a SavedModel folder), or None when nothing is recorded.

    Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "model.tflite").write_bytes(b"abc")
    >>> _ = (folder / "metadata.json").write_text(
    ...     json.dumps({"checksums": checksums(folder, ["model.tflite"])}))
    >>> list(recorded_checksums(folder / "model.tflite")[1])
    ['model.tflite']
    """
    path = Path(path)
    folder = path.parent
    metadata = folder / METADATA_FILE
    if not metadata.is_file():
        return None
    try:
        records = json.loads(metadata.read_text(encoding="utf-8")).get(CHECKSUMS_KEY)
    except (OSError, ValueError, AttributeError):
        return None  # an unreadable or foreign metadata.json: the structure is checked instead
    if not isinstance(records, dict):
        return None
    prefix = path.name + "/"
    mine = {k: v for k, v in records.items()
            if isinstance(v, dict) and (k == path.name or k.startswith(prefix))}
    return (metadata, mine) if mine else None


def _mismatch(file: Path, expected: dict, actual_size: int, metadata: Path) -> BadInputError:
    size = int(expected.get("size_bytes", -1))
    if actual_size != size:
        return BadInputError(
            f"{file}: truncated or modified: {actual_size:,} of {size:,} bytes (as recorded in "
            f"{metadata}); {_AGAIN}.")
    return BadInputError(
        f"{file}: modified or corrupt: {actual_size:,} bytes as recorded, but its sha256 differs "
        f"from the one in {metadata}; {_AGAIN}.")


def check_recorded(path: str | os.PathLike, data: bytes | None = None) -> bool:
    """Compares an artifact with the size and sha256 recorded in the ``metadata.json`` beside
    it; raises `BadInputError` naming the file on a difference. `data`: the file's bytes when
    already read. Returns whether anything was recorded (False: nothing to compare with).

    Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "model.tflite").write_bytes(b"abcdef")
    >>> _ = (folder / "metadata.json").write_text(
    ...     json.dumps({"checksums": checksums(folder, ["model.tflite"])}))
    >>> check_recorded(folder / "model.tflite")
    True
    >>> _ = (folder / "model.tflite").write_bytes(b"abc")
    >>> check_recorded(folder / "model.tflite")
    Traceback (most recent call last):
    ...
    keras_transfer.errors.BadInputError: ...model.tflite: truncated or modified: 3 of 6 bytes ...
    """
    path = Path(path)
    found = recorded_checksums(path)
    if found is None:
        return False
    metadata, records = found
    for relative, expected in records.items():
        file = path.parent / relative
        if data is not None and file == path:
            actual = {"size_bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        elif not file.is_file():
            raise BadInputError(f"{file}: missing (recorded in {metadata}); {_AGAIN}.")
        else:
            size = file.stat().st_size
            if size != expected.get("size_bytes"):  # no need to read a file of the wrong size
                raise _mismatch(file, expected, size, metadata)
            actual = file_record(file)
        if actual["size_bytes"] != expected.get("size_bytes") or (
                "sha256" in expected and actual["sha256"] != expected["sha256"]):
            raise _mismatch(file, expected, actual["size_bytes"], metadata)
    return True


def check_tflite_bytes(data: bytes, name: str | os.PathLike = "<bytes>") -> None:
    """Raises `BadInputError` unless `data` is a whole TFLite flatbuffer.

    Checked in Python, before any interpreter sees the bytes (a truncated file can crash one):
    the ``TFL3`` identifier, the root table inside the data, the whole ``Model`` table read with
    the schema's generated (bounds-checked) reader, and every weight buffer inside the data.

    Example:
    >>> check_tflite_bytes(b"\\x00" * 64, "fake.tflite")
    Traceback (most recent call last):
    ...
    keras_transfer.errors.BadInputError: fake.tflite: not a TFLite model (no 'TFL3' file ...).
    """
    size = len(data)
    if size < 8:
        raise BadInputError(
            f"{name}: not a TFLite model (only {size} bytes: truncated?); {_AGAIN}.")
    if bytes(data[4:8]) != TFLITE_IDENTIFIER:
        raise BadInputError(f"{name}: not a TFLite model (no 'TFL3' file identifier at bytes 4-8).")
    (root,) = struct.unpack_from("<I", data, 0)
    if root + 4 > size:
        raise BadInputError(
            f"{name}: truncated or corrupt TFLite file (its root table at byte {root:,} is "
            f"beyond its {size:,} bytes); {_AGAIN}.")
    from keras_transfer.compat.tflite_internals import tflite_schema

    try:
        schema = tflite_schema()
    except ImportError:  # a LiteRT-only install: the interpreter's own verifier is what is left
        return
    try:
        model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    except Exception as error:  # noqa: BLE001 - struct.error, ValueError, IndexError, ...
        raise BadInputError(
            f"{name}: truncated or corrupt TFLite file ({error}); {_AGAIN}.") from None
    for index, buffer in enumerate(model.buffers or []):
        # Models over 2 GB keep weights after the flatbuffer, at (offset, size).
        if buffer.offset and buffer.offset > 1 and buffer.offset + buffer.size > size:
            raise BadInputError(
                f"{name}: truncated or corrupt TFLite file (buffer {index} spans bytes "
                f"{buffer.offset:,}-{buffer.offset + buffer.size:,} of {size:,}); {_AGAIN}.")


def read_tflite(path: str | os.PathLike) -> bytes:
    """The bytes of a ``.tflite`` file, checked (`check_recorded`, `check_tflite_bytes`): give
    them to the interpreter as ``model_content``.

    Example:
    >>> # interpreter = tf.lite.Interpreter(model_content=read_tflite("export/model.tflite"))
    """
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{path}: TFLite file not found.")
    data = path.read_bytes()
    check_recorded(path, data)
    check_tflite_bytes(data, path)
    return data


def check_keras_archive(path: str | os.PathLike, *, read_all: bool = True) -> None:
    """Raises `BadInputError` unless `path` is a complete ``.keras`` zip archive.

    `read_all` also reads every member and checks its CRC (skip it when the sha256 was checked).

    Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.keras"; _ = p.write_bytes(b"PK\\x03\\x04 cut")
    >>> check_keras_archive(p)
    Traceback (most recent call last):
    ...
    keras_transfer.errors.BadInputError: ...m.keras: not a complete .keras archive (truncated or corrupt zip: ...
    """
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{path}: no such .keras file.")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            bad = archive.testzip() if read_all else None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as error:
        raise BadInputError(f"{path}: not a complete .keras archive (truncated or corrupt zip: "
                            f"{error}); {_AGAIN}.") from None
    if bad is not None:
        raise BadInputError(f"{path}: not a complete .keras archive (member {bad!r} fails its "
                            f"CRC check); {_AGAIN}.")
    if "config.json" not in names:
        raise BadInputError(f"{path}: a zip file but not a .keras archive (no config.json in it).")


def check_artifact(path: str | os.PathLike) -> None:
    """Checks a ``.tflite``/``.keras`` file or a SavedModel folder before it is loaded: the
    recorded size and sha256 when ``metadata.json`` beside it has them, and the file structure.

    Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "model.tflite"; _ = p.write_bytes(b"TFL3")
    >>> check_artifact(p)
    Traceback (most recent call last):
    ...
    keras_transfer.errors.BadInputError: ...model.tflite: not a TFLite model (only 4 bytes: ...
    """
    path = Path(path)
    if path.suffix == ".tflite":
        read_tflite(path)
    elif path.suffix == ".keras":
        recorded = check_recorded(path)
        check_keras_archive(path, read_all=not recorded)
    elif path.is_dir():
        check_recorded(path)
