"""Image file sources: a folder per class, or a CSV/JSONL table of ``path,label``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from keras_transfer.data.dataset import ImageDataset, assemble_images
from keras_transfer.data.decode import IMAGE_EXTENSIONS, decode_images, list_image_files
from keras_transfer.data.labels import (
    encode_labels,
    natural_sorted,
    parse_label_cell,
    require_two_classes,
)
from keras_transfer.data.pipeline import PipelineOptions
from keras_transfer.data.records import read_rows
from keras_transfer.data.report import LoadReport
from keras_transfer.data.split_folders import (
    find_split_folders,
    scan_split_folders,
    split_folder_note,
)
from keras_transfer.data.splits import DEFAULT_SEED, split_indices, stratum_keys
from keras_transfer.errors import BadInputError

# Decoded images are kept in memory (no second decode) when they fit in this budget.
MAX_IN_MEMORY_BYTES = 1 << 30


def from_folder(
    directory: str | os.PathLike,
    *,
    image_size: tuple[int, int] = (224, 224),
    resize_mode: str = "stretch",
    batch_size: int = 32,
    validation_split: float = 0.0,
    test_split: float = 0.0,
    seed: int = DEFAULT_SEED,
    class_names: Sequence[str] | None = None,
    augment: Any = None,
    mixup: float | None = None,
    cutmix: float | None = None,
    cache: bool | str = True,
    keep_in_memory: bool | None = None,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
    strict: bool = False,
    verbose: bool = True,
) -> ImageDataset:
    """Images in ``directory/<class name>/...`` (one sub-folder per class, searched recursively),
    or in split folders ``directory/<split>/<class name>/...``.

    Split folders are sub-folders named ``train``, ``val``/``validation``/``valid``/``eval`` or
    ``test`` (any case); the classes are the sub-folders inside them, which must be the same in
    every split folder. The given splits are used as they are, never re-drawn: a missing
    validation or test split is carved (stratified, seeded) out of ``train`` only, by
    ``validation_split`` / ``test_split``, so the given validation and test images stay
    untouched (with train and val only and ``test_split=0`` there is no test split). A
    ``train`` folder is required, and split folders beside other folders raise `BadInputError`.
    The load report says which split folders were found and how each split was made.

    Every file is decoded up front: bad files are skipped and listed in ``data.report`` (or,
    with ``strict=True``, the first one raises `BadInputError` naming it). Classes left with no
    usable image are dropped and reported. Splits are stratified fractions (see `split_indices`);
    ``augment``/``mixup``/``cutmix`` apply to the train split only (see `PipelineOptions`).
    ``keep_in_memory`` (default: if under 1 GiB) keeps the decoded pixels instead of decoding
    again in tf.data; for datasets larger than memory pass ``cache="/fast/disk/prefix"`` (a
    file cache per split) or ``cache=False`` too, since ``cache=True`` keeps them in memory.

    Example:
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ["cat", "dog"]:
    ...     (root / name).mkdir()
    ...     Image.new("RGB", (20, 10)).save(root / name / "1.png")
    >>> data = from_folder(root, image_size=(8, 8), verbose=False)
    >>> data.class_names, data.sizes
    (['cat', 'dog'], {'train': 2})
    """
    root = Path(directory)
    if not root.is_dir():
        raise BadInputError(f"{root}: not a folder (expected one sub-folder per class).")
    options = PipelineOptions.from_arguments(locals())
    report = LoadReport(str(root), strict=strict)
    split_dirs = find_split_folders(root)
    split_of = None
    if split_dirs:  # root/<split>/<class>/...: the given splits, classes from inside them
        paths, labels, class_names, split_of = scan_split_folders(
            root, split_dirs, class_names, extensions, report
        )
        folders = {name: str(root / "*" / name) for name in class_names}
    else:
        paths, labels, class_names = scan_class_folders(root, class_names, extensions, report)
        folders = {name: str(root / name) for name in class_names}
    return assemble_image_files(
        paths,
        np.asarray(labels, np.int64),
        class_names,
        report,
        options,
        validation_split=0.0 if "validation" in split_dirs else validation_split,
        test_split=0.0 if "test" in split_dirs else test_split,
        keep_in_memory=keep_in_memory,
        drop_empty=True,
        verbose=verbose,
        class_folders=folders,
        split_of=split_of,
        split_dirs=split_dirs or None,
    )


def scan_class_folders(
    root: Path,
    class_names: Sequence[str] | None,
    extensions: Sequence[str],
    report: LoadReport,
) -> tuple[list[str], list[int], list[str]]:
    """Candidate image paths and class ids under ``root/<class>/``; notes what was ignored.

    Example:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "a").mkdir(); _ = (root / "a" / "x.png").write_bytes(b"")
    >>> scan_class_folders(root, None, IMAGE_EXTENSIONS, LoadReport("r"))[1:]
    ([0], ['a'])
    """
    folders = natural_sorted(
        p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
    )
    if class_names is None:
        class_names = folders
    else:
        class_names = [str(name) for name in class_names]
        missing = [name for name in class_names if name not in folders]
        if missing:
            raise BadInputError(f"{root}: no sub-folder for class(es) {missing} (found {folders}).")
        if set(folders) - set(class_names):
            report.notes.append(
                f"sub-folders not in class_names ignored: {sorted(set(folders) - set(class_names))}"
            )
    loose = [
        p.name for p in root.iterdir() if p.is_file() and p.name.lower().endswith(tuple(extensions))
    ]
    if loose:
        report.notes.append(
            f"{len(loose)} image(s) directly in {root} ignored: they are in no class folder"
        )
    paths, labels, others = [], [], []
    for class_id, name in enumerate(class_names):
        found, other = list_image_files(root / name, extensions)
        paths.extend(str(p) for p in found)
        labels.extend([class_id] * len(found))
        others.extend(other)
    if others:
        report.notes.append(
            f"{len(others)} file(s) without an image extension ignored, e.g. {others[0]}"
        )
    return paths, labels, class_names


def from_csv(
    path: str | os.PathLike,
    *,
    path_column: str = "path",
    label_column: str = "label",
    multi_label: bool = False,
    label_separator: str = ";",
    root: str | os.PathLike | None = None,
    class_names: Sequence[str] | None = None,
    image_size: tuple[int, int] = (224, 224),
    resize_mode: str = "stretch",
    batch_size: int = 32,
    validation_split: float = 0.0,
    test_split: float = 0.0,
    seed: int = DEFAULT_SEED,
    augment: Any = None,
    mixup: float | None = None,
    cutmix: float | None = None,
    cache: bool | str = True,
    keep_in_memory: bool | None = None,
    delimiter: str | None = None,
    strict: bool = False,
    verbose: bool = True,
) -> ImageDataset:
    """Images listed in a CSV/TSV/JSONL table with a path and a label column.

    Relative paths are resolved against ``root`` (default: the table's folder). Multi-label
    cells hold names separated by ``label_separator`` (or a JSON list). Rows with an empty or
    unknown label (not in ``class_names``) and bad image files are skipped and reported; a
    missing column raises `BadInputError` naming the file and the column. The file type is
    chosen by extension, so `from_jsonl` is the same function.

    Example:
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> for i in range(4):
    ...     Image.new("RGB", (10, 10)).save(folder / f"{i}.png")
    >>> rows = "".join(f"{i}.png,{'ab'[i % 2]}\\n" for i in range(4))
    >>> _ = (folder / "labels.csv").write_text("path,label\\n" + rows)
    >>> from_csv(folder / "labels.csv", image_size=(8, 8), verbose=False).sizes
    {'train': 4}
    """
    table = Path(path)
    options = PipelineOptions.from_arguments(locals())
    report = LoadReport(str(table), strict=strict)
    rows = read_rows(table, [path_column, label_column], delimiter=delimiter)
    base = Path(root) if root is not None else table.parent
    raw_labels, wheres, files = [], [], []
    for row in rows:
        if row.problem:
            report.skip(row.where, row.problem)
            continue
        value = row.values.get(path_column)
        if value is None or not str(value).strip():
            report.skip(row.where, f"empty {path_column!r}")
            continue
        raw_labels.append(
            parse_label_cell(
                row.values.get(label_column), multi_label=multi_label, separator=label_separator
            )
        )
        wheres.append(row.where)
        files.append(str(base / str(value).strip()))  # an absolute path stays as it is
    labels, names, kept = encode_labels(
        raw_labels, wheres, class_names=class_names, multi_label=multi_label, report=report
    )
    return assemble_image_files(
        [files[i] for i in kept],
        labels,
        names,
        report,
        options,
        validation_split=validation_split,
        test_split=test_split,
        keep_in_memory=keep_in_memory,
        drop_empty=class_names is None and not multi_label,
        verbose=verbose,
    )


def from_jsonl(path: str | os.PathLike, **kwargs: Any) -> ImageDataset:
    """`from_csv` for JSON lines (``{"path": "a.jpg", "label": "cat"}``; multi-label as lists).

    Example:
    >>> import tempfile, pathlib, json
    >>> from PIL import Image
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> lines = []
    >>> for i, tags in enumerate([["a"], ["b"], ["a", "b"]]):
    ...     Image.new("RGB", (10, 10)).save(folder / f"{i}.png")
    ...     lines.append(json.dumps({"path": f"{i}.png", "label": tags}))
    >>> _ = (folder / "t.jsonl").write_text("\\n".join(lines))
    >>> data = from_jsonl(folder / "t.jsonl", multi_label=True, image_size=(8, 8), verbose=False)
    >>> data.label_format, data.class_names
    ('multi_hot', ['a', 'b'])
    """
    return from_csv(path, **kwargs)


def assemble_image_files(
    paths: list[str],
    labels: np.ndarray,
    class_names: list[str],
    report: LoadReport,
    options: PipelineOptions,
    *,
    validation_split: float,
    test_split: float,
    keep_in_memory: bool | None,
    drop_empty: bool,
    verbose: bool,
    class_folders: dict[str, str] | None = None,
    split_of: list[str] | None = None,
    split_dirs: dict[str, Path] | None = None,
) -> ImageDataset:
    """Validates the files, drops classes left empty, then splits and batches.

    ``split_of`` names each path's given split ("train", "validation", "test"); the fractions
    then only carve the splits that were not given out of "train". ``split_dirs`` (the split
    folders of `from_folder`) adds a report line on the split folders used.
    """
    if options.image_size is None:
        raise BadInputError("image files need image_size=(height, width) to be batched.")
    height, width = options.image_size
    if keep_in_memory is None:
        keep_in_memory = len(paths) * height * width * 3 <= MAX_IN_MEMORY_BYTES
    good, pixels = decode_images(
        paths,
        report,
        image_size=(height, width),
        resize_mode=options.resize_mode,
        keep_pixels=keep_in_memory,
    )
    labels = labels[good]
    paths = [paths[i] for i in good]
    if drop_empty:
        present = np.unique(labels).tolist()
        for class_id, name in enumerate(class_names):
            if class_id not in present:
                report.empty_class(name, (class_folders or {}).get(name, report.source))
        remap = {old: new for new, old in enumerate(present)}
        labels = np.asarray([remap[v] for v in labels.tolist()], np.int64)
        class_names = [class_names[i] for i in present]
    require_two_classes(class_names, report.source)
    parts = None
    if split_of is not None:
        tags = np.asarray([split_of[i] for i in good])
        if split_dirs:
            counts = {name: int((tags == name).sum()) for name in split_dirs}
            report.notes.insert(
                0, split_folder_note(split_dirs, counts, validation_split, test_split)
            )
        train = np.flatnonzero(tags == "train")
        carved = split_indices(
            stratum_keys(labels[train]),
            validation_split=validation_split,
            test_split=test_split,
            seed=options.seed,
        )
        parts = {"train": train[carved["train"]]}
        for name in ("validation", "test"):
            if name in carved:
                parts[name] = train[carved[name]]
            elif (tags == name).any():
                parts[name] = np.flatnonzero(tags == name)
    return assemble_images(
        labels=labels,
        class_names=class_names,
        report=report,
        options=options,
        validation_split=validation_split,
        test_split=test_split,
        parts=parts,
        pixels=pixels,
        paths=None if keep_in_memory else paths,
        verbose=verbose,
    )
