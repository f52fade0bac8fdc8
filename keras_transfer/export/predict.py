"""`predict` / `load_artifact`: run any exported artifact on image files or arrays.

An artifact is a ``.keras`` file, a SavedModel folder, a ``.tflite`` file, or an export folder
(then its float model is used: ``model.keras``, else ``saved_model/``, else ``model.tflite``).
Labels come from the ``labels`` argument, else ``labels.txt`` beside the artifact (or in the
export folder around a ``saved_model/``), else the class indices as strings.

Test-time augmentation (``predict(..., tta=True)``) averages the outputs over every view of the
symmetries recorded at training (``metadata.json`` → ``user.symmetries``, else ``report.json`` →
``decisions.augment.symmetries``, found like ``labels.txt``); the files stay single-view.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

import keras_transfer.layers  # noqa: F401 - registers ImagePreprocessing for loading .keras files
from keras_transfer.data.symmetry import (
    PRESETS,
    apply_view,
    check_square,
    group_views,
    parse_symmetries,
)
from keras_transfer.errors import BadInputError
from keras_transfer.data.decode import check_resize_mode
from keras_transfer.export.images import to_image_batch

METADATA_FILE = "metadata.json"
REPORT_FILE = "report.json"


@dataclass
class Artifact:
    """A loaded model: call it on raw float32 images ``(N, H, W, 3)`` to get its outputs.

    Example:
    >>> # artifact = load_artifact("export/model.int8.tflite")
    >>> # artifact(np.zeros((1, *artifact.image_size, 3), "float32")).shape  ->  (1, 3)
    """

    path: Path
    kind: str
    image_size: tuple[int, int] | None
    run: Callable[[np.ndarray], np.ndarray] = field(repr=False)
    labels: list[str] | None = None
    resize_mode: str = "stretch"  # as the training images were resized (metadata.json)
    model: Any = field(default=None, repr=False)  # the keras.Model of a .keras file (explain)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return np.asarray(self.run(np.asarray(images, dtype="float32")), dtype="float32")


def read_labels(path: str | os.PathLike) -> list[str]:
    """Reads ``labels.txt`` (one label per line; blank trailing lines ignored).

    Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "labels.txt"; _ = p.write_text("cat\\ndog\\n")
    >>> read_labels(p)
    ['cat', 'dog']
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise BadInputError(f"{path}: cannot read labels ({error.strerror or error}).") from None
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _beside(path: Path, name: str) -> Path:
    """Where file `name` of the artifact's export folder lives: beside a file, in a bare
    SavedModel folder, or in the export folder around a ``saved_model/``."""
    folder = path if path.is_dir() else path.parent
    if folder.name == "saved_model" and not (folder / name).is_file():
        return folder.parent / name
    return folder / name


def recorded_resize_mode(artifact_path: str | os.PathLike) -> str:
    """How the training images were resized to the input ("stretch", "pad", "crop"), as
    ``metadata.json`` beside the artifact records it (``input.resize_mode``, or
    ``model.input.resize_mode`` in exports of format 1); "stretch" when nothing is recorded
    (exports made before it was).

    Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "metadata.json").write_text('{"model": {"input": {"resize_mode": "pad"}}}')
    >>> recorded_resize_mode(folder / "model.tflite"), recorded_resize_mode(tempfile.mkdtemp())
    ('pad', 'stretch')
    """
    metadata = _beside(Path(artifact_path), METADATA_FILE)
    if not metadata.is_file():
        return "stretch"
    info = _read_json(metadata)
    model = info.get("model")
    sections = [info.get("input"), model.get("input") if isinstance(model, dict) else None]
    mode = next((section["resize_mode"] for section in sections
                 if isinstance(section, dict) and "resize_mode" in section), "stretch")
    check_resize_mode(mode)
    return mode


def _find_labels(path: Path) -> list[str] | None:
    candidate = _beside(path, "labels.txt")
    return read_labels(candidate) if candidate.is_file() else None


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise BadInputError(f"{path}: cannot read it as JSON ({error}).") from None
    return value if isinstance(value, dict) else {}


def recorded_symmetries(artifact_path: str | os.PathLike) -> tuple[str, ...] | None:
    """The label-preserving symmetries recorded with an export, or None when none are.

    Looked up in ``metadata.json`` (``user.symmetries``, as `export(metadata={"symmetries":
    ...})` writes it, or a top-level ``symmetries``), else ``report.json``
    (``decisions.augment.symmetries``), in the folder of the artifact (as for ``labels.txt``).
    An empty list is a record too: no symmetry keeps the label, so TTA is one view.

    Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "metadata.json").write_text('{"user": {"symmetries": ["hflip"]}}')
    >>> recorded_symmetries(folder / "model.tflite"), recorded_symmetries(tempfile.mkdtemp())
    (('hflip',), None)
    """
    path = Path(artifact_path)
    metadata = _beside(path, METADATA_FILE)
    if metadata.is_file():
        info = _read_json(metadata)
        user = info.get("user") if isinstance(info.get("user"), dict) else {}
        for source in (user, info):
            if source.get("symmetries") is not None:
                return parse_symmetries(source["symmetries"])
    report = _beside(path, REPORT_FILE)
    if report.is_file():
        decisions = _read_json(report).get("decisions")
        augment = decisions.get("augment") if isinstance(decisions, dict) else None
        if isinstance(augment, dict) and augment.get("symmetries") is not None:
            return parse_symmetries(augment["symmetries"])
    return None


def resolve_tta(tta: bool | str | Sequence[str] | None,
                artifact_path: str | os.PathLike) -> tuple[str, ...]:
    """The symmetries `tta` asks for: none for False/None, the recorded ones for True (see
    `recorded_symmetries`; a clear error when there are none), else `tta` itself parsed.

    Example:
    >>> resolve_tta("flips", "anywhere/model.tflite"), resolve_tta(False, "anywhere")
    (('hflip', 'vflip'), ())
    """
    if tta is None or tta is False:
        return ()
    if tta is True:
        symmetries = recorded_symmetries(artifact_path)
        if symmetries is None:
            path = Path(artifact_path)
            raise BadInputError(
                f"{_beside(path, METADATA_FILE)}: no symmetries recorded for test-time "
                f"augmentation (no 'symmetries' in it, nor 'decisions.augment.symmetries' in "
                f"{_beside(path, REPORT_FILE).name}). Pass them explicitly: tta='hflip,vflip' "
                f"(CLI: --tta hflip,vflip), or a preset ({', '.join(PRESETS)})."
            )
        return symmetries
    return parse_symmetries(tta)


def _single_output(outputs: dict[str, np.ndarray]) -> np.ndarray:
    return outputs["predictions"] if "predictions" in outputs else next(iter(outputs.values()))


def load_artifact(path: str | os.PathLike, *, threads: int | None = None) -> Artifact:
    """Loads a ``.keras`` file, SavedModel folder, ``.tflite`` file or export folder of an image
    model (one image batch in, one output), through the one loader of every task
    (`keras_transfer.export.runner.load_runner`).

    The files are checked first (`keras_transfer.export.integrity.check_artifact`): against the
    size and sha256 recorded in ``metadata.json`` beside them, and for their structure, so a
    truncated or modified copy raises `BadInputError` naming the file.

    Example:
    >>> # model = load_artifact("exports/flowers")   # picks model.keras, else saved_model/, ...
    >>> # model(np.zeros((1, 224, 224, 3), "float32"))
    """
    from keras_transfer.export.runner import load_runner, resolve_artifact

    path = resolve_artifact(path)
    runner = load_runner(path, threads=threads)
    if len(runner.input_names) != 1:
        raise BadInputError(f"{path}: takes {len(runner.input_names)} inputs "
                            f"({', '.join(runner.input_names)}), expected one image batch.")
    artifact = Artifact(path, runner.kind, runner.image_size,
                        lambda x: _single_output(runner(x)), model=runner.model)
    artifact.labels = _find_labels(path)
    artifact.resize_mode = recorded_resize_mode(path)
    return artifact


def predict(
    artifact_path: str | os.PathLike | Artifact,
    images: Any,
    *,
    top_k: int = 3,
    labels: Sequence[str] | None = None,
    tta: bool | str | Sequence[str] | None = False,
) -> list[list[tuple[str, float]]]:
    """Top-k ``(label, score)`` per image, from any artifact, on image files or raw arrays.

    ``images``: a path, a list of paths, an array ``(H, W, 3)`` / ``(N, H, W, 3)`` in [0, 255],
    or a list of arrays. Files are decoded as training decodes them, and everything is resized
    to the model's input size the way the export records (``resize_mode``: stretch, pad, crop).

    ``tta``: test-time augmentation. ``True`` uses the symmetries recorded with the export
    (`recorded_symmetries`); a preset (``"flips"``, ``"dihedral"``), ``"hflip,vflip"`` or a
    sequence of names uses those. The scores are then the mean of the artifact's outputs over
    every view of their group: one run of the artifact per view (2, 4 or 8 × the latency).

    Example:
    >>> # predict("exports/flowers", ["rose.jpg"], top_k=2)
    >>> # [[('rose', 0.93), ('tulip', 0.04)]]
    >>> toy = Artifact(Path("toy.keras"), "keras", (1, 2), lambda x: x[:, 0, :, 0] / 255)
    >>> white_left = np.array([[[255, 255, 255], [0, 0, 0]]])  # one 1x2 image
    >>> predict(toy, white_left, labels=["left", "right"])  # scores: is each side white?
    [[('left', 1.0), ('right', 0.0)]]
    >>> predict(toy, white_left, labels=["left", "right"], tta="hflip")  # mean with the mirror
    [[('left', 0.5), ('right', 0.5)]]
    """
    if isinstance(artifact_path, Artifact):
        artifact = artifact_path
    else:
        artifact = load_artifact(artifact_path)
    if top_k <= 0:
        raise BadInputError(f"predict: top_k must be positive, got {top_k}.")
    symmetries = resolve_tta(tta, artifact.path)
    batch = to_image_batch(images, artifact.image_size, what="predict images",
                           resize_mode=artifact.resize_mode)  # as training resized them
    check_square(symmetries, batch.shape[1:3])
    # The views are made from the decoded pixels, so every artifact kind gets the same TTA.
    scores = np.mean([artifact(apply_view(batch, view)) for view in group_views(symmetries)], axis=0)
    scores = scores.reshape(len(batch), -1)
    names = list(labels) if labels is not None else artifact.labels
    if names is not None and len(names) != scores.shape[1]:
        raise BadInputError(
            f"predict: {len(names)} labels for {scores.shape[1]} outputs of {artifact.path}."
        )
    names = names or [str(i) for i in range(scores.shape[1])]
    k = min(top_k, scores.shape[1])
    results = []
    for row in scores:
        order = np.argsort(-row, kind="stable")[:k]
        results.append([(names[i], float(row[i])) for i in order])
    return results
