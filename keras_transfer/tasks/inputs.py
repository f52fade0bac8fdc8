"""What `keras-transfer predict` (and `export --verify-data`) reads: image files, texts, pairs,
questions and prompts, given on the command line or in a file.

Texts come as arguments or from a file: ``.txt`` (one per line; pairs: two tab-separated
columns), ``.csv`` / ``.tsv`` (a header naming ``text``, or ``text_a`` and ``text_b``, else the
first one or two columns), ``.jsonl`` (one JSON object per line, with the same keys, or a JSON
string). Questions come as ``--question`` / ``--context`` or from a ``.json`` (a list of
``{"question", "context"}`` objects, or a SQuAD file) or ``.jsonl`` file. Every problem is a
`BadInputError` naming the file, line or argument.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any, Sequence

from keras_transfer.errors import BadInputError

TEXT_FILES = (".txt", ".csv", ".tsv", ".jsonl")
QUESTION_FILES = (".json", ".jsonl")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")
# Column / key names of each text input, by what the model reads.
_KEYS = {1: (("text",), ("sentence",), ("prompt",)),
         2: (("text_a", "text_b"), ("premise", "hypothesis"), ("sentence1", "sentence2"))}


def image_files(values: Sequence[str]) -> list[str]:
    """Image paths, checked; a folder stands for the images inside it (sorted).

    Example:
    >>> image_files(["/nonexistent/cat.png"])
    Traceback (most recent call last):
    ...
    keras_transfer.errors.BadInputError: /nonexistent/cat.png: no such image file.
    """
    if not values:
        raise BadInputError("predict: no image files given.")
    paths: list[str] = []
    for value in values:
        path = Path(value)
        if path.is_dir():
            found = sorted(str(p) for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise BadInputError(f"{value}: a folder without images "
                                    f"({', '.join(IMAGE_SUFFIXES)}).")
            paths += found
        elif path.is_file():
            paths.append(value)
        else:
            raise BadInputError(f"{value}: no such image file.")
    return paths


def _row(values: Sequence[Any], arity: int, where: str) -> str | tuple[str, ...]:
    cells = [str(v).strip() for v in values]
    if len(cells) < arity or not all(cells[:arity]):
        raise BadInputError(f"{where}: expected {arity} non-empty text(s), got {len(cells)}.")
    return cells[0] if arity == 1 else tuple(cells[:arity])


def _from_mapping(item: dict, arity: int, where: str) -> str | tuple[str, ...]:
    for keys in _KEYS[arity]:
        if all(key in item for key in keys):
            return _row([item[key] for key in keys], arity, where)
    wanted = " or ".join("/".join(keys) for keys in _KEYS[arity])
    raise BadInputError(f"{where}: no {wanted} key (it has {sorted(item)}).")


def _read_table(path: Path, arity: int, delimiter: str) -> list:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        rows = [row for row in csv.reader(handle, delimiter=delimiter)
                if any(cell.strip() for cell in row)]
    if not rows:
        return []
    header = [cell.strip().lower() for cell in rows[0]]
    for keys in _KEYS[arity]:
        if all(key in header for key in keys):
            at = [header.index(key) for key in keys]
            return [_row([row[i] if i < len(row) else "" for i in at], arity,
                         f"{path}, line {n}") for n, row in enumerate(rows[1:], start=2)]
    return [_row(row, arity, f"{path}, line {n}") for n, row in enumerate(rows, start=1)]


def _read_jsonl(path: Path, arity: int) -> list:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            raise BadInputError(f"{path}, line {n}: not JSON ({error.msg}).") from None
        where = f"{path}, line {n}"
        if isinstance(item, dict):
            rows.append(_from_mapping(item, arity, where))
        elif isinstance(item, (str, list)):
            rows.append(_row([item] if isinstance(item, str) else item, arity, where))
        else:
            raise BadInputError(f"{where}: expected an object, a string or a list.")
    return rows


def read_text_file(path: str | os.PathLike, arity: int = 1) -> list:
    """The texts (``arity`` 1) or pairs (``arity`` 2) in a ``.txt``/``.csv``/``.tsv``/``.jsonl``.

    Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "pairs.csv"
    >>> _ = p.write_text("text_a,text_b\\na cat,a feline\\n")
    >>> read_text_file(p, 2)
    [('a cat', 'a feline')]
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".jsonl":
            rows = _read_jsonl(path, arity)
        elif suffix in (".csv", ".tsv"):
            rows = _read_table(path, arity, "," if suffix == ".csv" else "\t")
        else:
            lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            rows = [_row(line.split("\t") if arity > 1 else [line], arity, f"{path}, line {n}")
                    for n, line in enumerate(lines, start=1)]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise BadInputError(f"{path}: cannot read it as text ({error}).") from None
    if not rows:
        raise BadInputError(f"{path}: no texts in it.")
    return rows


def read_texts(values: Sequence[str], arity: int = 1) -> list:
    """Texts from command-line arguments: each a text, or a file of texts (see the module).

    For a pair model (``arity`` 2), arguments pair up in order: ``a1 b1 a2 b2 ...``.

    Example:
    >>> read_texts(["a great film", "an awful day"])
    ['a great film', 'an awful day']
    """
    if not values:
        raise BadInputError("predict: no texts given (pass texts, or a .txt/.csv/.jsonl file).")
    rows: list = []
    loose: list[str] = []

    def flush() -> None:
        if arity > 1 and len(loose) % arity:
            raise BadInputError(f"predict: this model reads pairs of texts; {len(loose)} text "
                                "argument(s) do not pair up (give them as A B A B ..., or a "
                                "file).")
        rows.extend(tuple(loose[i:i + arity]) if arity > 1 else loose[i]
                    for i in range(0, len(loose), arity))
        loose.clear()

    for value in values:  # in the order given: loose texts and files of texts
        path = Path(value)
        if path.suffix.lower() in TEXT_FILES and "\n" not in value:
            if not path.is_file():
                raise BadInputError(f"{value}: no such file (texts are read from .txt, .csv, "
                                    ".tsv and .jsonl files).")
            flush()
            rows += read_text_file(path, arity)
        else:
            loose.append(value)
    flush()
    return rows


def _questions_from_json(path: Path) -> list[dict[str, str]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise BadInputError(f"{path}: not a readable JSON file ({error}).") from None
    if isinstance(data, dict) and "data" in data:  # SQuAD: every question of every paragraph
        return [{"question": qa.get("question", ""), "context": paragraph.get("context", "")}
                for article in data["data"] for paragraph in article.get("paragraphs", [])
                for qa in paragraph.get("qas", [])]
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise BadInputError(f"{path}: expected a list of {{\"question\", \"context\"}} objects "
                            "or a SQuAD file.")
    return data


def read_questions(values: Sequence[str], questions: Sequence[str] | None = None,
                   contexts: Sequence[str] | None = None) -> list[dict[str, str]]:
    """``{"question", "context"}`` items from ``--question``/``--context`` (repeatable, in
    pairs) and from ``.json``/``.jsonl`` files.

    Example:
    >>> read_questions([], ["where?"], ["in paris."])
    [{'question': 'where?', 'context': 'in paris.'}]
    """
    questions, contexts = list(questions or []), list(contexts or [])
    if len(questions) != len(contexts):
        raise BadInputError(f"predict: {len(questions)} --question but {len(contexts)} "
                            "--context; give them in pairs.")
    items = [{"question": q, "context": c} for q, c in zip(questions, contexts)]
    for value in values:
        path = Path(value)
        if path.suffix.lower() not in QUESTION_FILES or not path.is_file():
            raise BadInputError(f"{value}: question answering reads --question Q --context C, "
                                "or a .json/.jsonl file of {\"question\", \"context\"} objects.")
        if path.suffix.lower() == ".jsonl":
            pairs = _read_jsonl_questions(path)
        else:
            pairs = _questions_from_json(path)
        items += pairs
    for i, item in enumerate(items):
        if not str(item.get("question", "")).strip() or not str(item.get("context", "")).strip():
            raise BadInputError(f"predict: question {i} has an empty question or context.")
    if not items:
        raise BadInputError("predict: no question given (--question Q --context C, or a file).")
    return [{"question": str(i["question"]), "context": str(i["context"])} for i in items]


def _read_jsonl_questions(path: Path) -> list[dict[str, str]]:
    items = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                item = json.loads(line)
            except json.JSONDecodeError as error:
                raise BadInputError(f"{path}, line {n}: not JSON ({error.msg}).") from None
            if not isinstance(item, dict):
                raise BadInputError(f"{path}, line {n}: expected a {{\"question\", \"context\"}} "
                                    "object.")
            items.append(item)
    return items
