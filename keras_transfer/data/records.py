"""Reading labelled tables (CSV, TSV, JSONL, JSON list) row by row with ``file:line`` positions."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from keras_transfer.errors import BadInputError

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")


@dataclass(frozen=True)
class Row:
    """A table row: ``where`` is ``"file:line"``; ``problem`` is set when it is unreadable."""

    where: str
    values: dict[str, Any]
    problem: str | None = None


def read_rows(
    path: str | os.PathLike,
    required_columns: Sequence[str],
    *,
    delimiter: str | None = None,
    encoding_errors: str = "replace",
) -> list[Row]:
    """Reads a CSV/TSV (by header) or JSONL file and checks the required columns exist.

    A column missing from the CSV header, or from every JSONL object, raises `BadInputError`
    naming the file and the column. Undecodable bytes become U+FFFD by default
    (``encoding_errors="replace"``) because real-world CSVs often mix encodings.

    Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = p.write_text("text,label\\nhello,pos\\n")
    >>> [(r.where.split("/")[-1], r.values["label"]) for r in read_rows(p, ["text", "label"])]
    [('t.csv:2', 'pos')]
    """
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{path}: no such file.")
    if path.suffix.lower() in JSONL_SUFFIXES:
        rows = _read_json_rows(path, encoding_errors)
        present = {key for row in rows for key in row.values}
        known = sorted(present)
    else:
        rows, known = _read_csv_rows(path, delimiter, encoding_errors)
        present = set(known)
    missing = [column for column in required_columns if column not in present]
    if missing:
        raise BadInputError(
            f"{path}: missing column(s) {', '.join(repr(c) for c in missing)} "
            f"(found: {', '.join(repr(c) for c in known) or 'none'})."
        )
    return rows


def _read_csv_rows(
    path: Path, delimiter: str | None, encoding_errors: str
) -> tuple[list[Row], list[str]]:
    if delimiter is None:
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with open(path, newline="", encoding="utf-8-sig", errors=encoding_errors) as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        header = [name.strip() for name in (reader.fieldnames or [])]
        reader.fieldnames = header  # tolerate "path, label" style headers
        rows = []
        try:
            for record in reader:
                # Short rows give None values; treat them as empty cells, not as crashes.
                values = {k: ("" if v is None else v) for k, v in record.items() if k is not None}
                rows.append(Row(f"{path}:{reader.line_num}", values))
        except csv.Error as error:
            raise BadInputError(f"{path}:{reader.line_num}: malformed CSV ({error}).") from error
    return rows, header


def _read_json_rows(path: Path, encoding_errors: str) -> list[Row]:
    text = path.read_text(encoding="utf-8-sig", errors=encoding_errors)
    if text.lstrip().startswith("["):  # a JSON list of objects rather than JSON lines
        try:
            records = json.loads(text)
        except json.JSONDecodeError as error:
            raise BadInputError(f"{path}:{error.lineno}: invalid JSON ({error.msg}).") from error
        return [
            Row(f"{path}:item {i}", r)
            if isinstance(r, dict)
            else Row(f"{path}:item {i}", {}, "not a JSON object")
            for i, r in enumerate(records)
        ]
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            rows.append(Row(where, {}, f"invalid JSON ({error.msg})"))
            continue
        if isinstance(record, dict):
            rows.append(Row(where, record))
        else:
            rows.append(Row(where, {}, "not a JSON object"))
    return rows
