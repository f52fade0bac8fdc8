"""Turning raw label cells into class ids (single-label) or multi-hot vectors (multi-label)."""

from __future__ import annotations

import re
from typing import Any, Iterable, Sequence

import numpy as np

from keras_transfer.data.report import LoadReport
from keras_transfer.errors import BadInputError


def natural_sorted(names: Iterable[str]) -> list[str]:
    """Sorts class names so that "2" comes before "10" and "img2" before "img10".

    Example:
    >>> natural_sorted(["10", "2", "1"])
    ['1', '2', '10']
    """

    def key(name: str):
        return [
            (0, int(part), "") if part.isdigit() else (1, 0, part)
            for part in re.split(r"(\d+)", name)
            if part
        ]

    return sorted(set(names), key=key)


def parse_label_cell(value: Any, *, multi_label: bool, separator: str = ";") -> list[str]:
    """Label names in one cell: a string (split on ``separator`` if multi-label), number or list.

    Example:
    >>> parse_label_cell("cat; dog", multi_label=True)
    ['cat', 'dog']
    >>> parse_label_cell(3.0, multi_label=False)
    ['3']
    """
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        items = [_label_text(v) for v in value]
    elif multi_label and isinstance(value, str):
        items = value.split(separator)
    else:
        items = [_label_text(value)]
    return [item.strip() for item in items if item.strip()]


def _label_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # JSON 3.0 and CSV "3" name the same class
    return str(value)


def encode_labels(
    raw_labels: Sequence[list[str]],
    wheres: Sequence[str],
    *,
    class_names: Sequence[str] | None,
    multi_label: bool,
    report: LoadReport,
) -> tuple[np.ndarray, list[str], list[int]]:
    """Encodes label-name lists; rows with no label or an unknown one are skipped in ``report``.

    Returns ``(labels, class_names, kept)`` where ``kept`` are the positions of the rows kept.
    Labels are int64 class ids, or float32 multi-hot rows when ``multi_label``. Without
    ``class_names`` the classes are every label found, naturally sorted.

    Example:
    >>> report = LoadReport("t.csv")
    >>> labels, names, kept = encode_labels([["b"], ["a"], []], ["r1", "r2", "r3"],
    ...     class_names=None, multi_label=False, report=report)
    >>> labels.tolist(), names, kept, report.skipped
    ([1, 0], ['a', 'b'], [0, 1], [('r3', 'empty label')])
    """
    if class_names is None:
        class_names = natural_sorted(name for names in raw_labels for name in names)
    class_names = [str(name) for name in class_names]
    if len(set(class_names)) != len(class_names):
        raise BadInputError(f"class_names has duplicates: {class_names}.")
    index = {name: i for i, name in enumerate(class_names)}
    kept, encoded = [], []
    for position, (names, where) in enumerate(zip(raw_labels, wheres)):
        if not names:
            report.skip(where, "empty label")
            continue
        unknown = [name for name in names if name not in index]
        if unknown:
            report.skip(where, f"label {unknown[0]!r} is not one of the classes {class_names}")
            continue
        kept.append(position)
        encoded.append([index[name] for name in names])
    if multi_label:
        labels = np.zeros((len(encoded), len(class_names)), dtype=np.float32)
        for row, ids in enumerate(encoded):
            labels[row, ids] = 1.0
    else:
        labels = np.asarray([ids[0] for ids in encoded], dtype=np.int64)
    return labels, class_names, kept


def require_two_classes(class_names: Sequence[str], source: str) -> None:
    """Raises `BadInputError` unless there are at least two classes to tell apart.

    Example:
    >>> require_two_classes(["cat"], "photos/")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    keras_transfer.errors.BadInputError: photos/: found 1 class (['cat']); classification needs ...
    """
    if len(class_names) < 2:
        raise BadInputError(
            f"{source}: found {len(class_names)} class{'es' if len(class_names) != 1 else ''} "
            f"({list(class_names)}); classification needs at least 2 classes with usable examples."
        )


def class_counts(labels: np.ndarray, class_names: Sequence[str]) -> dict[str, int]:
    """Examples per class name (positives per class for multi-hot labels).

    Example:
    >>> class_counts(np.array([0, 1, 1]), ["a", "b"])
    {'a': 1, 'b': 2}
    """
    labels = np.asarray(labels)
    if labels.ndim == 2:
        totals = (labels > 0.5).sum(axis=0)
    else:
        totals = np.bincount(labels.astype(np.int64), minlength=len(class_names))
    return {name: int(totals[i]) for i, name in enumerate(class_names)}
