"""Split folders: an image folder laid out as ``root/<split>/<class>/<image>``.

Many downloaded datasets come as ``root/train/<class>/...`` and ``root/val/<class>/...``
(also ``validation``, ``valid``, ``eval``, ``test``; any case). `from_folder` recognises such a
layout, takes the classes from inside the split folders and uses the given splits instead of
drawing random ones; these helpers find the folders, check them and describe what was used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from keras_transfer.data.labels import natural_sorted
from keras_transfer.data.report import LoadReport
from keras_transfer.errors import BadInputError

# Folder name (lowercased) -> the split it holds.
SPLIT_FOLDERS = {
    "train": "train",
    "validation": "validation",
    "val": "validation",
    "valid": "validation",
    "eval": "validation",
    "test": "test",
}
SPLIT_ORDER = ("train", "validation", "test")


def find_split_folders(root: Path) -> dict[str, Path]:
    """The split folders directly under ``root`` by split ("train", "validation", "test"), in
    that order; empty when no sub-folder is named like a split (a ``root/<class>/`` layout).

    Raises `BadInputError` naming the folders when split folders sit beside other folders, two
    folders name the same split, or there is no train folder.

    Example:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ["Train", "val"]:
    ...     (root / name / "cats").mkdir(parents=True)
    >>> {split: path.name for split, path in find_split_folders(root).items()}
    {'train': 'Train', 'validation': 'val'}
    """
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    splits = [p for p in folders if p.name.lower() in SPLIT_FOLDERS]
    if not splits:
        return {}
    others = [p.name for p in folders if p.name.lower() not in SPLIT_FOLDERS]
    if others:
        raise BadInputError(
            f"{root}: mixes split folders ({', '.join(p.name for p in splits)}) with other "
            f"folders ({', '.join(others)}). Use either root/<split>/<class>/<image> (splits: "
            f"{', '.join(SPLIT_FOLDERS)}) or root/<class>/<image>; move or rename the others "
            "(a class named like a split is read as a split folder)."
        )
    found: dict[str, Path] = {}
    for path in splits:
        split = SPLIT_FOLDERS[path.name.lower()]
        if split in found:
            raise BadInputError(f"{root}: both {found[split].name!r} and {path.name!r} are "
                                f"{split} folders; keep one.")
        found[split] = path
    if "train" not in found:
        raise BadInputError(
            f"{root}: split folders ({', '.join(p.name for p in splits)}) but no 'train' folder; "
            "the training images go in root/train/<class>/<image>."
        )
    return {split: found[split] for split in SPLIT_ORDER if split in found}


def scan_split_folders(
    root: Path,
    split_dirs: Mapping[str, Path],
    class_names: Sequence[str] | None,
    extensions: Sequence[str],
    report: LoadReport,
) -> tuple[list[str], list[int], list[str], list[str]]:
    """``(paths, class ids, class names, split of each path)`` for ``root/<split>/<class>/``.

    Every split folder must hold the same class sub-folders (else `BadInputError` naming the
    folder and the classes that differ); with ``class_names`` each must hold those classes.

    Example:
    >>> import tempfile, pathlib
    >>> from keras_transfer.data.decode import IMAGE_EXTENSIONS
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for split in ["train", "val"]:
    ...     for name in ["cats", "dogs"]:
    ...         (root / split / name).mkdir(parents=True)
    ...         _ = (root / split / name / "1.png").write_bytes(b"")
    >>> found = scan_split_folders(root, find_split_folders(root), None, IMAGE_EXTENSIONS,
    ...                            LoadReport("r"))
    >>> found[1:]
    ([0, 1, 0, 1], ['cats', 'dogs'], ['train', 'train', 'validation', 'validation'])
    """
    from keras_transfer.data.images import scan_class_folders

    if class_names is None:
        class_names = _same_classes(split_dirs)
    loose = [p.name for p in root.iterdir() if p.is_file() and p.name.lower().endswith(
        tuple(e.lower() for e in extensions))]
    if loose:
        report.notes.append(f"{len(loose)} image(s) directly in {root} ignored: they are in no "
                            "split folder")
    paths: list[str] = []
    labels: list[int] = []
    split_of: list[str] = []
    for split, folder in split_dirs.items():
        found, ids, names = scan_class_folders(folder, class_names, extensions, report)
        paths += found
        labels += ids
        split_of += [split] * len(found)
    return paths, labels, list(names), split_of


def _same_classes(split_dirs: Mapping[str, Path]) -> list[str]:
    """The class folders of the train folder, after checking every split folder has the same."""
    classes = {split: natural_sorted(c.name for c in folder.iterdir()
                                     if c.is_dir() and not c.name.startswith("."))
               for split, folder in split_dirs.items()}
    train = classes["train"]
    for split, names in classes.items():
        folder = split_dirs[split]
        if not names:
            raise BadInputError(f"{folder}: split folder with no class sub-folders (expected "
                                f"{folder}/<class>/<image>).")
        if names != train:
            missing = [n for n in train if n not in names]
            extra = [n for n in names if n not in train]
            differs = "; ".join(part for part in (
                f"missing {missing}" if missing else "", f"not in train: {extra}" if extra else "")
                if part)
            raise BadInputError(
                f"{folder}: class folders {names} differ from {split_dirs['train']}: {train} "
                f"({differs}). Every split folder needs the same class sub-folders."
            )
    return train


def split_folder_note(
    split_dirs: Mapping[str, Path],
    counts: Mapping[str, int],
    validation_split: float,
    test_split: float,
) -> str:
    """The load-report line saying which split folders were found and used, and how the
    missing splits were made (``counts``: usable images per split folder).

    Example:
    >>> from pathlib import Path
    >>> dirs = {"train": Path("d/train"), "test": Path("d/TEST")}
    >>> note = split_folder_note(dirs, {"train": 8, "test": 4}, 0.25, 0.1)
    >>> for part in note.split("; "):
    ...     print(part)
    split folders found: train (8), TEST (4)
    used as the splits
    validation carved from train (validation_split=0.25)
    """
    found = ", ".join(f"{folder.name} ({counts.get(split, 0)})"
                      for split, folder in split_dirs.items())
    line = f"split folders found: {found}; used as the splits"
    for split, fraction in (("validation", validation_split), ("test", test_split)):
        if split in split_dirs:
            continue
        line += (f"; {split} carved from train ({split}_split={fraction:g})" if fraction else
                 f"; no {split} split (no {split} folder and {split}_split=0)")
    return line
