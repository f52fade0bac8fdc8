"""Image sources of keras_transfer.data: bad input is skipped and reported, odd modes kept,
splits stratified, augmentation train-only. Fixture trees are built on the fly with PIL."""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from keras_transfer.data import (
    LoadReport,
    augmentation,
    balanced_class_weights,
    from_arrays,
    from_csv,
    from_folder,
    from_jsonl,
    load_image,
    split_indices,
)
from keras_transfer.errors import BadInputError

SIZE = (16, 16)


# ---------------------------------------------------------------- fixture builders


def save_image(path: Path, mode: str = "RGB", size: tuple[int, int] = (12, 10)) -> Path:
    """A small valid image in PIL ``mode`` (size is PIL's (width, height))."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "P":  # palette with a transparent index
        image = Image.new("RGB", size, (200, 10, 10)).convert("P", palette=Image.ADAPTIVE)
        image.save(path, transparency=0)
    elif mode == "I;16":
        Image.fromarray(np.full(size[::-1], 65535, np.uint16)).save(path)
    else:
        colors = {
            "RGB": (10, 200, 30),
            "RGBA": (10, 200, 30, 128),
            "LA": (90, 255),
            "CMYK": (0, 255, 255, 0),
            "1": 1,
            "L": 100,
        }
        Image.new(mode, size, colors[mode]).save(path)
    return path


def write_bad_files(folder: Path) -> list[Path]:
    """One file of every bad kind in ``folder``; returns their paths, sorted."""
    folder.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)
    png, jpeg = io.BytesIO(), io.BytesIO()
    Image.fromarray(noise).save(png, "PNG")
    Image.fromarray(noise).save(jpeg, "JPEG")
    files = {
        "zero_bytes.jpg": b"",
        "actually_text.jpg": b"this is not an image\n",
        "truncated.png": png.getvalue()[: len(png.getvalue()) // 2],
        "truncated.jpg": jpeg.getvalue()[: len(jpeg.getvalue()) // 3],
        "garbage_after_header.png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
    }
    bad = []
    for name, data in files.items():
        (folder / name).write_bytes(data)
        bad.append(folder / name)
    # Tests run as root (chmod 000 stays readable), so unreadable = a dangling link / a folder.
    os.symlink(folder / "missing_target.png", folder / "dangling_link.png")
    (folder / "folder_named_like.jpg").mkdir()
    bad += [folder / "dangling_link.png", folder / "folder_named_like.jpg"]
    return sorted(bad)


ODD_MODES = {
    "cmyk.jpg": "CMYK",
    "gray16.png": "I;16",
    "palette.png": "P",
    "gray_alpha.png": "LA",
    "rgba.png": "RGBA",
    "bilevel.bmp": "1",
    "gray.tif": "L",
}


@pytest.fixture
def messy_tree(tmp_path):
    """root/{cat,dog,empty}: good RGB files, odd-mode files (kept) and bad files (skipped)."""
    root = tmp_path / "photos"
    good = {"cat": [], "dog": []}
    for i in range(3):
        good["cat"].append(save_image(root / "cat" / f"good_{i}.png"))
        good["dog"].append(save_image(root / "dog" / f"good_{i}.jpg", size=(30, 9)))
    good["cat"] += [save_image(root / "cat" / name, mode) for name, mode in ODD_MODES.items()]
    bad = write_bad_files(root / "cat") + write_bad_files(root / "dog" / "nested")
    (root / "dog" / "notes.txt").write_text("not an image, ignored")
    (root / "empty").mkdir()
    (root / ".hidden").mkdir()
    return root, good, bad


def all_batches(ds):
    images, labels = [], []
    for x, y in ds:
        images.append(x.numpy())
        labels.append(y.numpy())
    return np.concatenate(images), np.concatenate(labels)


# ---------------------------------------------------------------- folders


def test_folder_skips_exactly_the_bad_files_and_keeps_odd_modes(messy_tree):
    root, good, bad = messy_tree
    data = from_folder(root, image_size=SIZE, batch_size=4, verbose=False)
    assert data.class_names == ["cat", "dog"]
    assert sorted(data.report.skipped_items) == sorted(map(str, bad))
    assert data.report.empty_classes == ["empty"]
    assert data.report.good == len(good["cat"]) + len(good["dog"]) == 13
    images, labels = all_batches(data.train)
    assert images.shape == (13, *SIZE, 3) and images.dtype == np.float32
    assert 0.0 <= images.min() and images.max() <= 255.0
    assert np.bincount(labels).tolist() == [10, 3]
    assert data.validation is None and data.test is None
    text = data.report.summary()
    assert "13 good examples, 14 skipped" in text and "dangling_link.png" in text


def test_folder_reasons_are_specific(messy_tree):
    root, _, _ = messy_tree
    reasons = dict(from_folder(root, image_size=SIZE, verbose=False).report.skipped)
    cat = root / "cat"
    assert reasons[str(cat / "zero_bytes.jpg")] == "empty file (0 bytes)"
    assert reasons[str(cat / "dangling_link.png")] == "broken symbolic link"
    assert reasons[str(cat / "folder_named_like.jpg")] == "is a directory, not an image file"
    assert "not an image" in reasons[str(cat / "actually_text.jpg")]
    assert "truncated" in reasons[str(cat / "truncated.jpg")].lower()


def test_folder_strict_raises_on_first_bad_path(messy_tree):
    root, _, bad = messy_tree
    first_bad = min(p for p in bad if p.parent.name == "cat")  # cat is read first, sorted
    with pytest.raises(BadInputError, match=re.escape(str(first_bad))):
        from_folder(root, image_size=SIZE, strict=True, verbose=False)


def test_folder_strict_raises_on_empty_class(tmp_path):
    for name in ["a", "b"]:
        save_image(tmp_path / name / "x.png")
    (tmp_path / "c").mkdir()
    with pytest.raises(BadInputError, match="class 'c' has no usable image"):
        from_folder(tmp_path, image_size=SIZE, strict=True, verbose=False)


def test_folder_decoding_lazily_gives_the_same_examples(messy_tree):
    root, _, _ = messy_tree
    eager = from_folder(root, image_size=SIZE, verbose=False)
    lazy = from_folder(root, image_size=SIZE, keep_in_memory=False, verbose=False)
    assert lazy.report.skipped == eager.report.skipped
    x_lazy, y_lazy = all_batches(lazy.train)
    x_eager, y_eager = all_batches(eager.train)
    assert sorted(y_lazy.tolist()) == sorted(y_eager.tolist())
    assert np.isclose(
        np.sort(x_lazy.sum(axis=(1, 2, 3))), np.sort(x_eager.sum(axis=(1, 2, 3)))
    ).all()


def test_single_class_is_an_error(tmp_path):
    save_image(tmp_path / "only" / "a.png")
    (tmp_path / "also_empty").mkdir()
    with pytest.raises(BadInputError, match="at least 2 classes"):
        from_folder(tmp_path, image_size=SIZE, verbose=False)


def test_odd_modes_are_converted_to_rgb(tmp_path):
    pixels = {
        name: load_image(save_image(tmp_path / name, mode), SIZE)
        for name, mode in ODD_MODES.items()
    }
    assert all(p.shape == (*SIZE, 3) and p.dtype == np.uint8 for p in pixels.values())
    assert (pixels["gray16.png"] == 255).all()  # 16-bit 65535 scaled, not clipped to garbage
    assert tuple(pixels["palette.png"][0, 0]) == (200, 10, 10)
    assert tuple(pixels["rgba.png"][0, 0]) == (10, 200, 30)
    assert (pixels["gray_alpha.png"] == 90).all()
    assert tuple(pixels["cmyk.jpg"][0, 0])[0] > 200  # cyan-less, magenta+yellow = red


def test_letterbox_keeps_aspect_ratio(tmp_path):
    path = save_image(tmp_path / "wide.png", size=(40, 10))  # 4:1 image
    padded = load_image(path, (16, 16), "pad")
    assert (padded[0] == 0).all() and (padded[-1] == 0).all()  # black bars top and bottom
    assert (padded[8] > 0).any()
    stretched = load_image(path, (16, 16), "stretch")
    assert (stretched > 0).all()


# ---------------------------------------------------------------- CSV / JSONL


def test_csv_relative_paths_bad_rows_and_unknown_labels(tmp_path):
    for i in range(4):
        save_image(tmp_path / "img" / f"{i}.png")
    (tmp_path / "img" / "empty.png").write_bytes(b"")
    table = tmp_path / "labels.csv"
    table.write_text(
        "path,label\n"
        "img/0.png,cat\n"
        "img/1.png,dog\n"
        "img/2.png,cat\n"
        "img/3.png,dog\n"
        "img/0.png,horse\n"  # line 6: label outside class_names
        "img/1.png,\n"  # line 7: empty label
        "img/empty.png,cat\n"  # line 8: zero-byte file
        "img/missing.png,dog\n"  # line 9: no such file
    )
    data = from_csv(table, class_names=["cat", "dog"], image_size=SIZE, verbose=False)
    assert data.report.skipped_items == [
        f"{table}:6",
        f"{table}:7",
        str(tmp_path / "img" / "empty.png"),
        str(tmp_path / "img" / "missing.png"),
    ]
    assert "horse" in data.report.skipped[0][1]
    _, labels = all_batches(data.train)
    assert sorted(labels.tolist()) == [0, 0, 1, 1]
    with pytest.raises(BadInputError, match=re.escape(f"{table}:6")):
        from_csv(table, class_names=["cat", "dog"], image_size=SIZE, strict=True, verbose=False)


def test_csv_missing_column_names_file_and_column(tmp_path):
    table = tmp_path / "bad.csv"
    table.write_text("filename,label\na.png,cat\n")
    with pytest.raises(BadInputError, match=r"bad\.csv.*'path'"):
        from_csv(table, image_size=SIZE, verbose=False)


def test_csv_multi_label(tmp_path):
    for i in range(4):
        save_image(tmp_path / f"{i}.png")
    table = tmp_path / "tags.csv"
    table.write_text("path,label\n0.png,sky;sea\n1.png,sea\n2.png,sky\n3.png,tree; sky\n")
    data = from_csv(table, multi_label=True, image_size=SIZE, verbose=False)
    assert data.class_names == ["sea", "sky", "tree"] and data.label_format == "multi_hot"
    assert data.class_weights is None
    _, labels = all_batches(data.train)
    assert labels.dtype == np.float32
    assert sorted(map(tuple, labels.tolist())) == sorted(
        [(1, 1, 0), (1, 0, 0), (0, 1, 0), (0, 1, 1)]
    )


def test_jsonl_lists_and_bad_lines(tmp_path):
    for i in range(4):
        save_image(tmp_path / f"{i}.png")
    lines = [
        json.dumps({"path": f"{i}.png", "label": ["a"] if i % 2 else ["a", "b"]}) for i in range(4)
    ]
    lines.insert(2, "{not json")
    table = tmp_path / "t.jsonl"
    table.write_text("\n".join(lines) + "\n")
    data = from_jsonl(table, multi_label=True, image_size=SIZE, verbose=False)
    assert data.report.skipped_items == [f"{table}:3"]
    assert data.report.good == 4 and data.class_names == ["a", "b"]


# ---------------------------------------------------------------- arrays


def test_arrays_labels_images_and_resizing():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (12, 20, 20), np.uint8)
    labels = np.array([0, 1, 2] * 4)
    labels[5] = 7  # outside class_names
    data = from_arrays(images, labels, class_names=["a", "b", "c"], image_size=SIZE, verbose=False)
    assert data.report.skipped_items == ["index 5"]
    x, y = all_batches(data.train)
    assert x.shape == (11, *SIZE, 3) and np.bincount(y).tolist() == [4, 4, 3]
    assert (x[..., 0] == x[..., 2]).all()  # gray tiled to RGB


def test_arrays_string_labels_float_nan_and_16_bit():
    images = np.full((6, 8, 8, 1), 1000.0, np.float32)
    images[2, 0, 0, 0] = np.nan
    data = from_arrays(images, ["x", "y"] * 3, verbose=False)
    assert data.class_names == ["x", "y"] and data.report.skipped_items == ["index 2"]
    deep = from_arrays(np.full((4, 8, 8, 3), 65535, np.uint16), [0, 1, 0, 1], verbose=False)
    x, _ = all_batches(deep.train)
    assert x.max() == 255.0


def test_arrays_of_different_sizes_need_image_size():
    images = [np.zeros((10, 12, 3), np.uint8), np.zeros((20, 8), np.uint8)]
    with pytest.raises(BadInputError, match="image_size"):
        from_arrays(images, [0, 1], verbose=False)
    data = from_arrays(images, [0, 1], image_size=SIZE, verbose=False)
    assert data.report.good == 2


# ---------------------------------------------------------------- splits and class weights


def test_split_proportions_stratified_and_seeded():
    labels = np.array([0] * 60 + [1] * 30 + [2] * 10)
    parts = split_indices(labels.tolist(), validation_split=0.2, test_split=0.25, seed=3)
    assert {k: len(v) for k, v in parts.items()} == {"train": 60, "validation": 15, "test": 25}
    assert sorted(np.concatenate(list(parts.values())).tolist()) == list(range(100))
    for name, part in parts.items():
        expected = np.bincount(labels) * len(part) / len(labels)
        assert (np.abs(np.bincount(labels[part], minlength=3) - expected) <= 1).all(), name
    again = split_indices(labels.tolist(), validation_split=0.2, test_split=0.25, seed=3)
    assert all((again[k] == parts[k]).all() for k in parts)
    other = split_indices(labels.tolist(), validation_split=0.2, test_split=0.25, seed=4)
    assert not (other["test"] == parts["test"]).all()


def test_class_weights_balanced_on_the_train_split():
    assert balanced_class_weights(np.array([0, 0, 0, 1]), 2) == {0: 4 / 6, 1: 2.0}
    labels = np.array([0] * 30 + [1] * 10)
    data = from_arrays(np.zeros((40, 4, 4, 3), np.uint8), labels, test_split=0.25, verbose=False)
    assert data.sizes == {"train": 30, "test": 10}
    assert data.class_weights == pytest.approx({0: 30 / (2 * 22.5), 1: 30 / (2 * 7.5)}, rel=0.1)
    assert data.report.class_counts == {"0": 30, "1": 10}


# ---------------------------------------------------------------- augmentation and mixing


def test_augmentation_changes_train_batches_only():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 255, (24, *SIZE, 3), np.uint8)
    originals = {image.astype(np.float32).tobytes() for image in images}
    augment = augmentation(
        SIZE, flip="horizontal", rotation=0.2, zoom=0.2, contrast=0.3, crop=0.8, seed=0
    )
    data = from_arrays(
        images,
        np.arange(24) % 2,
        validation_split=0.25,
        test_split=0.25,
        augment=augment,
        batch_size=8,
        verbose=False,
    )
    train, _ = all_batches(data.train)
    assert data.sizes == {"train": 13, "validation": 5, "test": 6} and len(train) == 13
    assert not any(image.tobytes() in originals for image in train)
    for split in (data.validation, data.test):
        held_out, _ = all_batches(split)
        assert all(image.tobytes() in originals for image in held_out)
    second, _ = all_batches(data.train)
    assert not np.allclose(np.sort(train.ravel()), np.sort(second.ravel()))  # new draws each epoch


@pytest.mark.parametrize("mix", [{"mixup": 0.4}, {"cutmix": 1.0}, {"mixup": 0.4, "cutmix": 1.0}])
def test_mixup_cutmix_one_hot_labels_everywhere(mix):
    rng = np.random.default_rng(2)
    images = rng.integers(0, 255, (16, *SIZE, 3), np.uint8)
    data = from_arrays(
        images, np.arange(16) % 4, validation_split=0.25, batch_size=12, verbose=False, **mix
    )
    assert data.label_format == "one_hot"
    _, train_labels = all_batches(data.train)
    assert train_labels.shape == (12, 4) and np.allclose(train_labels.sum(axis=1), 1.0, atol=1e-5)
    assert not np.isin(train_labels, [0.0, 1.0]).all()  # mixed
    _, validation_labels = all_batches(data.validation)
    assert np.isin(validation_labels, [0.0, 1.0]).all() and validation_labels.shape == (4, 4)


def test_report_strict_message_names_the_item():
    with pytest.raises(BadInputError, match=r"^x\.png: bad"):
        LoadReport("src", strict=True).skip("x.png", "bad")
