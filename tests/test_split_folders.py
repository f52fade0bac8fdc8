"""from_folder on ``root/<split>/<class>/``: the split folders are the splits, never classes.

Every image is a 4x4 PNG of one grey level unique in the tree, so each example read back from a
split names the file it came from: the tests check what went where, not only the counts.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image

from keras_transfer.data import from_folder
from keras_transfer.errors import BadInputError

SIZE = (4, 4)
CLASSES = ("cats", "dogs")


def write_tree(root, layout: dict[str, int], classes=CLASSES) -> dict[int, tuple[str, str]]:
    """``root/<split folder>/<class>/<i>.png``, ``layout[folder]`` images per class; returns
    each image's grey level -> (split folder, class)."""
    levels = itertools.count(5, 3)
    where = {}
    for folder, per_class in layout.items():
        for name in classes:
            (root / folder / name).mkdir(parents=True)
            for i in range(per_class):
                level = next(levels)
                Image.fromarray(np.full((*SIZE, 3), level, np.uint8)).save(
                    root / folder / name / f"{i}.png")
                where[level] = (folder, name)
    return where


def read_back(split) -> list[tuple[int, int]]:
    """(grey level, class id) of every example of a split."""
    found = []
    for images, labels in split:
        levels = np.rint(images.numpy()[:, 0, 0, 0]).astype(int)
        found += list(zip(levels.tolist(), labels.numpy().tolist()))
    return found


def levels_in(where, folder: str) -> set[int]:
    return {level for level, (f, _) in where.items() if f == folder}


def test_given_splits_are_used_as_they_are(tmp_path, capsys):
    where = write_tree(tmp_path, {"Train": 6, "val": 3, "TEST": 2})
    data = from_folder(tmp_path, image_size=SIZE, batch_size=8, validation_split=0.3,
                       test_split=0.3)  # fractions of given splits are not used
    assert data.class_names == list(CLASSES)  # not ['TEST', 'Train', 'val']
    assert data.sizes == {"train": 12, "validation": 6, "test": 4}
    seen = {}
    for split, folder in (("train", "Train"), ("validation", "val"), ("test", "TEST")):
        examples = read_back(getattr(data, split))
        levels = [level for level, _ in examples]
        assert len(levels) == len(set(levels))
        assert set(levels) == levels_in(where, folder), split  # exactly that folder's images
        for level, label in examples:  # each image keeps its class
            assert data.class_names[label] == where[level][1]
        seen[split] = set(levels)
    assert not seen["train"] & seen["validation"] and not seen["train"] & seen["test"]
    out = capsys.readouterr().out
    assert "  note: split folders found: Train (12), val (6), TEST (4); used as the splits\n" in out
    assert "splits: train=12, validation=6, test=4" in out


@pytest.mark.parametrize("name", ["validation", "valid", "eval", "VAL", "Validation"])
def test_every_validation_folder_name(tmp_path, name):
    write_tree(tmp_path, {"train": 2, name: 1})
    data = from_folder(tmp_path, image_size=SIZE, verbose=False)
    assert data.class_names == list(CLASSES)
    assert data.sizes == {"train": 4, "validation": 2}


def test_missing_validation_is_carved_from_train_only(tmp_path):
    where = write_tree(tmp_path, {"train": 8, "test": 3})
    data = from_folder(tmp_path, image_size=SIZE, validation_split=0.25, verbose=False)
    assert data.sizes == {"train": 12, "validation": 4, "test": 6}
    train, validation, test = (
        {level for level, _ in read_back(split)}
        for split in (data.train, data.validation, data.test))
    assert test == levels_in(where, "test")
    assert train | validation == levels_in(where, "train") and not train & validation
    assert sorted(where[level][1] for level in validation) == ["cats"] * 2 + ["dogs"] * 2
    assert data.report.notes[0] == ("split folders found: train (16), test (6); used as the "
                                    "splits; validation carved from train (validation_split=0.25)")


def test_train_and_val_only_give_no_test_split_unless_asked(tmp_path):
    write_tree(tmp_path, {"train": 4, "val": 2})
    data = from_folder(tmp_path, image_size=SIZE, verbose=False)
    assert data.sizes == {"train": 8, "validation": 4} and data.test is None
    assert data.report.notes[0].endswith("; no test split (no test folder and test_split=0)")
    asked = from_folder(tmp_path, image_size=SIZE, test_split=0.25, verbose=False)
    assert asked.sizes == {"train": 6, "validation": 4, "test": 2}


def test_split_folders_beside_class_folders_are_refused(tmp_path):
    write_tree(tmp_path, {"train": 1, "val": 1})
    (tmp_path / "birds").mkdir()
    with pytest.raises(BadInputError) as caught:
        from_folder(tmp_path, image_size=SIZE, verbose=False)
    message = str(caught.value)
    assert "mixes split folders (train, val) with other folders (birds)" in message
    assert str(tmp_path) in message


def test_split_folders_with_different_classes_are_refused(tmp_path):
    write_tree(tmp_path, {"train": 1})
    write_tree(tmp_path, {"val": 1}, classes=("cats", "horses"))
    with pytest.raises(BadInputError) as caught:
        from_folder(tmp_path, image_size=SIZE, verbose=False)
    message = str(caught.value)
    assert str(tmp_path / "val") in message
    assert "missing ['dogs']" in message and "not in train: ['horses']" in message


@pytest.mark.parametrize("layout, message", [
    ({"val": 1, "test": 1}, "no 'train' folder"),
    ({"val": 1, "valid": 1, "train": 1}, "are validation folders; keep one"),
])
def test_bad_split_layouts_are_named(tmp_path, layout, message):
    write_tree(tmp_path, layout)
    with pytest.raises(BadInputError, match=message):
        from_folder(tmp_path, image_size=SIZE, verbose=False)


def test_class_folders_are_still_classes(tmp_path):
    write_tree(tmp_path / "photos", {"cats": 2, "dogs": 2}, classes=("a",))
    data = from_folder(tmp_path / "photos", image_size=SIZE, verbose=False)
    assert data.class_names == ["cats", "dogs"] and data.sizes == {"train": 4}
    assert not any("split folders" in note for note in data.report.notes)
