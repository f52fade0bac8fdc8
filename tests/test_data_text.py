"""Text sources of keras_transfer.data: CSV/JSONL, single/multi-label, sentence pairs, bad rows."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from keras_transfer.data import text_from_csv, text_from_jsonl
from keras_transfer.errors import BadInputError


def batches(ds):
    features, labels = [], []
    for x, y in ds:
        features.append(x)
        labels.append(y.numpy())
    return features, np.concatenate(labels)


def test_csv_single_label_skips_empty_text_with_line_numbers(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text(
        "text,label\n"
        "loved it,pos\n"
        "   ,neg\n"  # line 3: blank after stripping
        "hated it,neg\n"
        ",pos\n"  # line 5: empty
        '"multi\nline review",pos\n'  # lines 6-7, one record
        "meh,neutral\n"  # line 8: not in class_names
        "ok,\n"  # line 9: empty label
        "terrible,neg\n"
    )
    data = text_from_csv(path, class_names=["neg", "pos"], verbose=False)
    assert data.report.skipped == [
        (f"{path}:3", "empty 'text'"),
        (f"{path}:5", "empty 'text'"),
        (f"{path}:8", "label 'neutral' is not one of the classes ['neg', 'pos']"),
        (f"{path}:9", "empty label"),
    ]
    features, labels = batches(data.train)
    texts = sorted(t.decode() for batch in features for t in batch.numpy())
    assert texts == ["hated it", "loved it", "multi\nline review", "terrible"]
    assert labels.dtype == np.int32 and sorted(labels.tolist()) == [0, 0, 1, 1]
    assert data.class_weights == {0: 1.0, 1: 1.0}


def test_strict_raises_naming_the_row(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text,label\na,x\n,y\nb,y\n")
    with pytest.raises(BadInputError, match=re.escape(f"{path}:3: empty 'text'")):
        text_from_csv(path, strict=True, verbose=False)


def test_missing_column_names_file_and_column(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("sentence,label\na,x\n")
    with pytest.raises(
        BadInputError, match=r"t\.csv: missing column\(s\) 'text' \(found: 'sentence', 'label'\)"
    ):
        text_from_csv(path, verbose=False)
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text(json.dumps({"text": "a", "label": "x"}) + "\n")
    with pytest.raises(BadInputError, match=r"t\.jsonl: missing column\(s\) 'stars'"):
        text_from_jsonl(jsonl, label_column="stars", verbose=False)


def test_multi_label_split_on_separator(tmp_path):
    path = tmp_path / "tags.tsv"
    path.write_text("text\ttags\nrain and wind\tweather|wind\nsunny\tweather\ngale\twind\n")
    data = text_from_csv(
        path, label_column="tags", multi_label=True, label_separator="|", verbose=False
    )
    assert (
        data.class_names == ["weather", "wind"] and data.multi_label and data.class_weights is None
    )
    _, labels = batches(data.train)
    assert labels.dtype == np.float32
    assert sorted(map(tuple, labels.tolist())) == [(0, 1), (1, 0), (1, 1)]


def test_sentence_pairs_from_jsonl_with_bad_lines(tmp_path):
    rows = [{"premise": f"p{i}", "hypothesis": f"h{i}", "label": i % 2} for i in range(10)]
    lines = [json.dumps(r) for r in rows]
    lines[3] = "{broken"
    lines[4] = json.dumps({"premise": "p", "hypothesis": "", "label": 1})
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    data = text_from_jsonl(
        path, ("premise", "hypothesis"), test_split=0.25, batch_size=4, verbose=False
    )
    assert [item for item, _ in data.report.skipped] == [f"{path}:4", f"{path}:5"]
    assert "invalid JSON" in data.report.skipped[0][1]
    assert data.report.skipped[1][1] == "empty 'hypothesis'"
    assert data.sizes == {"train": 6, "test": 2} and data.class_names == ["0", "1"]
    (premise, hypothesis), labels = next(iter(data.test))
    assert premise.dtype.name == "string" and hypothesis.shape == labels.shape == (2,)
    assert [p.decode()[1:] for p in premise.numpy()] == [h.decode()[1:] for h in hypothesis.numpy()]


def test_undecodable_bytes_are_replaced_not_fatal(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("text,label\ncaf\xe9 ok,a\nfine,b\n".encode("latin-1"))
    data = text_from_csv(path, verbose=False)
    features, _ = batches(data.train)
    texts = {t.decode() for batch in features for t in batch.numpy()}
    assert "caf\ufffd ok" in texts


def test_single_class_text_is_an_error(tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("text,label\na,x\nb,x\n")
    with pytest.raises(BadInputError, match="at least 2 classes"):
        text_from_csv(path, verbose=False)
