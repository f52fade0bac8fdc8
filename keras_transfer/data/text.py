"""Text classification sources: CSV/TSV/JSONL with one or two text columns and a label column."""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import tensorflow as tf

from keras_transfer.data.dataset import TextDataset, record_splits
from keras_transfer.data.labels import encode_labels, parse_label_cell, require_two_classes
from keras_transfer.data.records import read_rows
from keras_transfer.data.report import LoadReport
from keras_transfer.data.splits import DEFAULT_SEED, split_indices, stratum_keys
from keras_transfer.errors import BadInputError


def text_from_csv(
    path: str | os.PathLike,
    text_column: str | Sequence[str] = "text",
    label_column: str = "label",
    *,
    multi_label: bool = False,
    label_separator: str = ";",
    class_names: Sequence[str] | None = None,
    batch_size: int = 32,
    validation_split: float = 0.0,
    test_split: float = 0.0,
    seed: int = DEFAULT_SEED,
    cache: bool = True,
    delimiter: str | None = None,
    encoding_errors: str = "replace",
    strict: bool = False,
    verbose: bool = True,
) -> TextDataset:
    """Labelled texts from a CSV/TSV/JSONL file (by extension; `text_from_jsonl` is the same).

    ``text_column`` may be two names for sentence pairs: batches are then
    ``((text_a, text_b), label)``, the input keras-hub text classifiers take. Rows with an empty
    text (after stripping) or an empty/unknown label are skipped and reported with their
    ``file:line``; a missing column raises `BadInputError` naming the file and the column.
    Undecodable bytes become U+FFFD (``encoding_errors="replace"``).

    Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "reviews.csv"
    >>> _ = p.write_text("text,label\\ngreat,pos\\n,neg\\nawful,neg\\nfine,pos\\n")
    >>> data = text_from_csv(p, verbose=False)
    >>> data.class_names, data.sizes, data.report.skipped[0][1]
    (['neg', 'pos'], {'train': 3}, "empty 'text'")
    """
    columns = (text_column,) if isinstance(text_column, str) else tuple(text_column)
    if len(columns) not in (1, 2):
        raise BadInputError(f"text_column must be one column name or two (a pair); got {columns}.")
    report = LoadReport(str(path), strict=strict)
    rows = read_rows(
        path, [*columns, label_column], delimiter=delimiter, encoding_errors=encoding_errors
    )
    texts, raw_labels, wheres = _texts_and_labels(
        rows, columns, label_column, multi_label=multi_label, separator=label_separator,
        report=report)
    labels, names, kept = encode_labels(
        raw_labels, wheres, class_names=class_names, multi_label=multi_label, report=report
    )
    require_two_classes(names, report.source)
    texts = [texts[i] for i in kept]
    parts = split_indices(
        stratum_keys(labels), validation_split=validation_split, test_split=test_split, seed=seed
    )
    class_weights = record_splits(report, labels, parts, names)
    splits = {
        name: _text_pipeline(
            [texts[i] for i in index],
            labels[index],
            batch_size=batch_size,
            training=name == "train",
            seed=seed,
            cache=cache,
        )
        for name, index in parts.items()
    }
    if verbose:
        print(report.summary())
    return TextDataset(
        train=splits.get("train"),
        validation=splits.get("validation"),
        test=splits.get("test"),
        class_names=names,
        report=report,
        class_weights=class_weights,
        multi_label=multi_label,
        text_columns=columns,
    )


def text_from_jsonl(path: str | os.PathLike, *args: Any, **kwargs: Any) -> TextDataset:
    """`text_from_csv` for JSON lines; a multi-label ``label`` may be a JSON list.

    Example:
    >>> import tempfile, pathlib, json
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "pairs.jsonl"
    >>> rows = [{"a": "hi", "b": "hello", "label": 1}, {"a": "hi", "b": "bye", "label": 0}]
    >>> _ = p.write_text("\\n".join(json.dumps(r) for r in rows))
    >>> data = text_from_jsonl(p, ("a", "b"), verbose=False)
    >>> (a, b), y = next(iter(data.train))
    >>> a.dtype.name, y.dtype.name, data.class_names
    ('string', 'int32', ['0', '1'])
    """
    return text_from_csv(path, *args, **kwargs)


def _texts_and_labels(rows, columns: tuple[str, ...], label_column: str, *, multi_label: bool,
                      separator: str, report: LoadReport
                      ) -> tuple[list[tuple[str, ...]], list[list[str]], list[str]]:
    """The rows' texts, parsed label cells and ``file:line``; unreadable rows and rows with an
    empty text are skipped in `report`."""
    texts: list[tuple[str, ...]] = []
    raw_labels, wheres = [], []
    for row in rows:
        if row.problem:
            report.skip(row.where, row.problem)
            continue
        values = tuple(_text(row.values.get(column)) for column in columns)
        empty = [column for column, value in zip(columns, values) if not value]
        if empty:
            report.skip(row.where, f"empty {empty[0]!r}")
            continue
        texts.append(values)
        raw_labels.append(
            parse_label_cell(
                row.values.get(label_column), multi_label=multi_label, separator=separator
            )
        )
        wheres.append(row.where)
    return texts, raw_labels, wheres


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _text_pipeline(
    texts: list[tuple[str, ...]],
    labels: np.ndarray,
    *,
    batch_size: int,
    training: bool,
    seed: int,
    cache: bool,
) -> tf.data.Dataset:
    width = len(texts[0]) if texts else 1
    columns = tuple(tf.constant([t[i] for t in texts], dtype=tf.string) for i in range(width))
    features = columns[0] if width == 1 else columns
    targets = labels.astype(np.float32) if labels.ndim == 2 else labels.astype(np.int32)
    ds = tf.data.Dataset.from_tensor_slices((features, targets))
    if cache:
        ds = ds.cache()
    if training:
        ds = ds.shuffle(min(max(len(texts), 1), 100_000), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
