"""Explanations where the other tools write files: the evaluation report's grid of Grad-CAM
overlays of the confidently wrong examples, and ``keras-transfer predict --explain``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import keras
import numpy as np

from keras_transfer.errors import BadInputError
from keras_transfer.explain.core import explain
from keras_transfer.explain.gradcam import gradcam_batch
from keras_transfer.explain.overlay import overlay
from keras_transfer.explain.taps import tap_layer

WRONG_EXAMPLES_GRADCAM = "wrong_examples_gradcam.png"
# A handful: the grid is a glance at what misled the model, and costs one backward pass each.
WRONG_EXAMPLES_LIMIT = 8


def plot_wrong_examples_gradcam(
    model: keras.Model,
    examples: Sequence[Any],
    rows: Sequence[Mapping],
    class_names: Sequence[str],
    path: str | os.PathLike,
    *,
    limit: int = WRONG_EXAMPLES_LIMIT,
) -> Path | None:
    """A grid of Grad-CAM overlays of the predicted (wrong) class on the first `limit` confidently
    wrong images, titled like ``confidently_wrong.png``; None when there is no image to explain.

    `examples` and `rows` are an evaluation's `Evaluation.examples` and
    ``report["confidently_wrong"]``; the class explained is each row's ``predicted``.

    Example:
    >>> import tempfile, pathlib, numpy as np
    >>> from keras_transfer import build_image_classifier
    >>> model = build_image_classifier("vgg16", 2, weights=None, input_shape=(32, 32, 3))
    >>> row = {"index": 3, "label": "a", "predicted": "b", "confidence": 0.9}
    >>> p = pathlib.Path(tempfile.mkdtemp()) / WRONG_EXAMPLES_GRADCAM
    >>> plot_wrong_examples_gradcam(model, [np.zeros((32, 32, 3))], [row], ["a", "b"], p).exists()
    True
    """
    from keras_transfer.evaluation.plots import plot_confidently_wrong

    pairs = [(np.asarray(example, np.float32), row) for example, row in zip(examples, rows)
             if isinstance(example, np.ndarray) and example.ndim == 3][:limit]
    if not pairs:
        return None
    names = list(class_names)
    predicted = [names.index(row["predicted"]) if row["predicted"] in names else None
                 for _, row in pairs]
    tap = tap_layer(model)
    batch = np.stack([image for image, _ in pairs])

    def choose(outputs: np.ndarray) -> list[list[int]]:
        return [[c if c is not None else int(out.argmax())] for c, out in zip(predicted, outputs)]

    maps = [heat for _, _, heat, _ in gradcam_batch(tap, batch, choose)]
    overlays = [overlay(image, heat) for image, heat in zip(batch, maps)]
    return plot_confidently_wrong(
        overlays, [row for _, row in pairs], path,
        title=f"Grad-CAM of the predicted class (layer {tap.layer}): most confidently wrong")


def write_wrong_examples_gradcam(model: keras.Model, examples: Sequence[Any],
                                 rows: Sequence[Mapping], class_names: Sequence[str],
                                 output_dir: str | os.PathLike) -> Path | None:
    """`plot_wrong_examples_gradcam` into `output_dir`, never failing the report: when the
    explanation fails it prints one line saying why and returns None.

    Example:
    >>> import tempfile, keras, numpy as np
    >>> inputs = keras.Input((4, 4, 3))  # no backbone, no convolution: nothing to explain
    >>> flat = keras.layers.Dense(2, "softmax")(keras.layers.Flatten()(inputs))
    >>> row = {"index": 0, "label": "a", "predicted": "b", "confidence": 0.9}
    >>> write_wrong_examples_gradcam(keras.Model(inputs, flat), [np.zeros((4, 4, 3))], [row],
    ...                              ["a", "b"], tempfile.mkdtemp())  # doctest: +ELLIPSIS
    evaluate: no wrong_examples_gradcam.png (explain: ... has no backbone block map ...
    """
    try:
        return plot_wrong_examples_gradcam(model, examples, rows, class_names,
                                           Path(output_dir) / WRONG_EXAMPLES_GRADCAM)
    except Exception as error:  # noqa: BLE001 - an explanation must never cost the report
        reason = " ".join(str(error).split())
        print(f"evaluate: no {WRONG_EXAMPLES_GRADCAM} ({reason[:300]})", flush=True)
        return None


def explain_artifact(artifact: Any, images: Any, output_dir: str | os.PathLike, *,
                     names: Sequence[str] | None = None) -> list[Path]:
    """Writes a Grad-CAM overlay PNG per image for a loaded artifact (`load_artifact`) of a
    ``.keras`` model: images are decoded and resized as `predict` does; files are named after
    `names` (default: the image paths) as ``<name>_gradcam.png``.

    Other artifacts (``.tflite``, SavedModel) raise `BadInputError`: Grad-CAM needs the layers
    and gradients of the Keras model.

    Example:
    >>> # explain_artifact(load_artifact("exports/flowers"), ["rose.jpg"], "gradcam/")
    >>> # [PosixPath('gradcam/rose_gradcam.png')]
    """
    check_explainable(artifact)
    from keras_transfer.export.images import to_image_batch

    batch = to_image_batch(images, artifact.image_size, what="explain images",
                           resize_mode=artifact.resize_mode)
    if names is None and isinstance(images, (list, tuple)):
        names = [str(image) if isinstance(image, (str, os.PathLike)) else f"image{i:03d}"
                 for i, image in enumerate(images)]
    result = explain(artifact.model, batch, output_dir=output_dir, names=names,
                     class_names=artifact.labels)
    return result.files


def check_explainable(artifact: Any) -> None:
    """Raises `BadInputError` unless the artifact holds a Keras model (Grad-CAM needs its layers
    and gradients; a ``.tflite`` file or a SavedModel has neither to offer).

    Example:
    >>> from keras_transfer.export.predict import Artifact
    >>> check_explainable(Artifact(Path("m.tflite"), "tflite", (8, 8), run=None))
    Traceback (most recent call last):
    ...
    keras_transfer.errors.BadInputError: m.tflite: Grad-CAM needs the Keras model ...
    """
    if getattr(artifact, "model", None) is None:
        raise BadInputError(
            f"{artifact.path}: Grad-CAM needs the Keras model (its layers and gradients), and "
            f"this is a {artifact.kind} artifact. Pass a .keras file or an export folder "
            "holding model.keras.")
