"""The predict adapters of the image tasks, and what every task's predict shares.

Each adapter takes an artifact (an export folder, ``model.keras``, ``saved_model/`` or a
``.tflite`` file, loaded by the one loader `keras_transfer.export.runner.load_runner`) and
returns what its task means; with ``output_dir`` it also writes ``predictions.json`` (and a
PNG per image where a picture says more: a segmentation overlay, the drawn detections).

- image classification: top-k ``(label, score)`` per image (`classify_images`);
- segmentation: a class-id mask ``(H, W)`` per image at the image's own size (`segment_images`);
- detection: ``{"boxes", "scores", "classes", "labels"}`` per image, boxes ``xyxy`` in the
  image's own pixels (`detect_images`).

Masks and boxes are mapped back from the model's input through the resize the image went
through (`tasks.geometry.Resize`); ``in_model_pixels=True`` keeps them at the model's size.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from keras_transfer.errors import BadInputError
from keras_transfer.tasks.artifacts import export_folder, read_metadata

PREDICTIONS_FILE = "predictions.json"


def input_names(inputs: Any, prefix: str = "image") -> list[str]:
    """A name per input: the file path of a path, else ``<prefix>000``, ``<prefix>001``, ...

    Example:
    >>> input_names(["a/cat.png", np.zeros((2, 2, 3))])
    ['a/cat.png', 'image001']
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    if isinstance(inputs, np.ndarray):
        inputs = list(inputs) if inputs.ndim == 4 else [inputs]
    return [str(item) if isinstance(item, (str, os.PathLike)) else f"{prefix}{i:03d}"
            for i, item in enumerate(inputs)]


def write_predictions(output_dir: str | os.PathLike, task: str, rows: list[dict[str, Any]]
                      ) -> Path:
    """Writes ``predictions.json`` (``{"task", "predictions": rows}``) into `output_dir`.

    Example:
    >>> import tempfile
    >>> write_predictions(tempfile.mkdtemp(), "image_classification", []).name
    'predictions.json'
    """
    from keras_transfer.export.schema import json_default
    from keras_transfer.utils.files import atomic_write_bytes

    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"task": task, "predictions": rows}, indent=2, default=json_default)
    return atomic_write_bytes(folder / PREDICTIONS_FILE, (text + "\n").encode("utf-8"))


def top_k(scores: np.ndarray, names: Sequence[str] | None, k: int, where: Any
          ) -> list[list[tuple[str, float]]]:
    """The `k` best ``(label, score)`` of each row of `scores`.

    Example:
    >>> top_k(np.array([[0.25, 0.75]]), ["cat", "dog"], 1, "toy")
    [[('dog', 0.75)]]
    """
    if k <= 0:
        raise BadInputError(f"predict: top_k must be positive, got {k}.")
    scores = np.asarray(scores, "float32").reshape(len(scores), -1)
    if names is not None and len(names) != scores.shape[1]:
        raise BadInputError(f"predict: {len(names)} labels for {scores.shape[1]} outputs of "
                            f"{where}.")
    names = list(names) if names is not None else [str(i) for i in range(scores.shape[1])]
    results = []
    for row in scores:
        order = np.argsort(-row, kind="stable")[:min(k, len(row))]
        results.append([(names[i], float(row[i])) for i in order])
    return results


def file_stems(names: Sequence[str], suffix: str) -> list[str]:
    """Distinct file names ``<stem><suffix>`` for the inputs' names.

    Example:
    >>> file_stems(["a/cat.png", "b/cat.png"], "_mask.png")
    ['cat_mask.png', 'cat_2_mask.png']
    """
    from keras_transfer.explain.overlay import unique_stems

    return [stem + suffix for stem in unique_stems(list(names))]


def classify_images(artifact: Any, inputs: Any, *, top_k: int = 3,
                    labels: Sequence[str] | None = None, tta: Any = False,
                    output_dir: str | os.PathLike | None = None, threads: int | None = None
                    ) -> list[list[tuple[str, float]]]:
    """Top-k ``(label, score)`` per image (`keras_transfer.export.predict.predict`, TTA and
    all), plus ``predictions.json`` with `output_dir`.

    Example:
    >>> # classify_images("exports/flowers", ["rose.jpg"], top_k=2)  ->  [[('rose', 0.93), ...]]
    """
    from keras_transfer.export.predict import Artifact, load_artifact, predict

    if not isinstance(artifact, Artifact):
        artifact = load_artifact(artifact, threads=threads)
    results = predict(artifact, inputs, top_k=top_k, labels=labels, tta=tta)
    if output_dir is not None:
        write_predictions(output_dir, "image_classification", [
            {"input": name, "top_k": [{"label": label, "score": score} for label, score in row]}
            for name, row in zip(input_names(inputs), results)])
    return results


def segment_images(artifact: Any, inputs: Any, *, labels: Sequence[str] | None = None,
                   output_dir: str | os.PathLike | None = None, threads: int | None = None,
                   alpha: float = 0.5, in_model_pixels: bool = False) -> list[np.ndarray]:
    """A class-id mask ``(H, W)`` (int32) per image, at the image's own size (nearest class
    through the resize it went through), or the model's input size with `in_model_pixels`.

    With `output_dir`: ``<name>_mask.png`` per image (the class colours over the image,
    background left clear) and ``predictions.json`` (per image: each class's share of the
    pixels, and the PNG's name).

    Example:
    >>> # masks = segment_images("exports/shapes", ["street.jpg"]); masks[0].shape  ->  (64, 64)
    """
    from keras_transfer.export.images import to_image_batch
    from keras_transfer.export.predict import load_artifact

    loaded = load_artifact(artifact, threads=threads)
    batch = to_image_batch(inputs, loaded.image_size, what="predict images",
                           resize_mode=loaded.resize_mode)
    probabilities = loaded(batch)
    if probabilities.ndim != 4:
        raise BadInputError(f"{loaded.path}: outputs {probabilities.shape[1:]}, not a per-pixel "
                            "class map (is it a segmenter?).")
    masks = [mask.astype(np.int32) for mask in probabilities.argmax(-1)]
    images, drawn = list(batch), masks  # what the overlays show: as the model saw it
    if not in_model_pixels:
        from keras_transfer.tasks.geometry import Resize, source_images, source_sizes

        resizes = [Resize.of(size, batch.shape[1:3], loaded.resize_mode)
                   for size in source_sizes(inputs)]
        if output_dir is not None:  # drawn on each image as decoded (its own size)
            images = source_images(inputs)
            drawn = [r.mask_to_original(m, i.shape[:2]) for r, m, i in zip(resizes, masks, images)]
        masks = [resize.mask_to_original(mask) for resize, mask in zip(resizes, masks)]
    if output_dir is not None:
        names = list(labels or loaded.labels or range(probabilities.shape[-1]))
        _write_masks(output_dir, input_names(inputs), images, drawn, [str(n) for n in names],
                     alpha)
    return masks


def _write_masks(output_dir, names: list[str], batch: Sequence[np.ndarray],
                 masks: list[np.ndarray],
                 labels: list[str], alpha: float) -> None:
    from keras_transfer.explain.overlay import png_bytes
    from keras_transfer.evaluation.segmentation import overlay
    from keras_transfer.utils.files import atomic_write_bytes

    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, file, image, mask in zip(names, file_stems(names, "_mask.png"), batch, masks):
        atomic_write_bytes(folder / file, png_bytes(overlay(image, mask, alpha=alpha)))
        ids, counts = np.unique(mask, return_counts=True)
        shares = {labels[i] if i < len(labels) else str(i): round(float(c) / mask.size, 4)
                  for i, c in zip(ids, counts)}
        rows.append({"input": name, "mask_shape": list(mask.shape), "class_share": shares,
                     "overlay": file})
    write_predictions(folder, "segmentation", rows)


def _decoder_and_nms(metadata: dict[str, Any], model: Any):
    from keras_transfer.detection.decode import NMS_DEFAULTS, BoxDecoder, box_decoder

    config = metadata.get("task_config") or {}
    if config.get("decoder") or metadata.get("decoder"):
        decoder = BoxDecoder.from_json(config.get("decoder") or metadata["decoder"])
    elif model is not None:
        decoder = box_decoder(model)
    else:
        raise BadInputError("predict: no decoder parameters for this detector (no "
                            "metadata.json beside it); pass the export folder or model.keras.")
    recorded = config.get("nms") if isinstance(config.get("nms"), dict) else {}
    nms = {key: recorded.get(key, value) for key, value in NMS_DEFAULTS.items()}
    return decoder, nms


def detect_images(artifact: Any, inputs: Any, *, labels: Sequence[str] | None = None,
                  iou_threshold: float | None = None, score_threshold: float | None = None,
                  max_detections: int | None = None, output_dir: str | os.PathLike | None = None,
                  threads: int | None = None, in_model_pixels: bool = False
                  ) -> list[dict[str, Any]]:
    """Detections per image: ``boxes`` ``(k, 4)`` ``xyxy`` in the image's own pixels (or the
    model's input with `in_model_pixels`), ``scores``, ``classes`` and their ``labels``, best
    first.

    An exported graph's own NMS is used when the thresholds are those it was exported with;
    other thresholds (or a ``.keras`` file) decode its raw outputs on the host, with the same
    decoder. With `output_dir`: ``predictions.json`` and ``<name>_detections.png`` per image.

    Example:
    >>> # detect_images("exports/shapes", ["street.jpg"])[0]["labels"]  ->  ['car', 'person']
    """
    from keras_transfer.detection.decode import decode_detections, detections_from_outputs
    from keras_transfer.export.images import to_image_batch
    from keras_transfer.export.runner import load_runner

    runner = load_runner(artifact, threads=threads)
    metadata = read_metadata(runner.path)
    decoder, nms = _decoder_and_nms(metadata, runner.model)
    wanted = {"iou_threshold": iou_threshold, "score_threshold": score_threshold,
              "max_detections": max_detections}
    chosen = {**nms, **{k: v for k, v in wanted.items() if v is not None}}
    batch = to_image_batch(inputs, decoder.image_size, what="predict images")
    outputs = runner(batch)
    if "num_detections" in outputs and chosen == nms:
        detections = detections_from_outputs(outputs)
    else:
        raw = {k: v for k, v in outputs.items() if not k.startswith(("detection_", "num_det"))}
        detections = decode_detections(decoder, raw, **chosen)
    names = list(labels or metadata.get("labels") or metadata.get("class_names") or []) or None
    for detection in detections:
        detection["labels"] = [names[c] if names and c < len(names) else str(int(c))
                               for c in detection["classes"]]
    images = list(batch)
    if not in_model_pixels:
        from keras_transfer.tasks.geometry import Resize, source_images, source_sizes

        for detection, size in zip(detections, source_sizes(inputs)):
            resize = Resize.of(size, batch.shape[1:3], "stretch")  # as to_image_batch resized
            detection["boxes"] = resize.boxes_to_original(detection["boxes"]).astype(np.float32)
        images = source_images(inputs) if output_dir is not None else images
    if output_dir is not None:
        _write_detections(output_dir, input_names(inputs), images, detections, names)
    return detections


def _write_detections(output_dir, names: list[str], batch: Sequence[np.ndarray],
                      detections: list[dict[str, Any]], labels: list[str] | None) -> None:
    from keras_transfer.detection.plots import plot_detections

    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, file, image, found in zip(names, file_stems(names, "_detections.png"), batch,
                                        detections):
        plot_detections([image], [found], folder / file, class_names=labels, columns=1)
        rows.append({"input": name, "image_size": list(image.shape[:2]), "drawing": file,
                     "detections": [{"label": label, "class": int(c), "score": float(s),
                                     "box": [round(float(v), 2) for v in box]}
                                    for box, s, c, label in zip(found["boxes"], found["scores"],
                                                                found["classes"],
                                                                found["labels"])]})
    write_predictions(folder, "detection", rows)


def tokenizer_folder(artifact: Any) -> Path:
    """The ``tokenizer/`` folder of a text export, which token-ids files need.

    Example:
    >>> # tokenizer_folder("exports/sentiment/model.tflite")
    >>> # PosixPath('exports/sentiment/tokenizer')
    """
    folder = export_folder(artifact) / "tokenizer"
    if not folder.is_dir():
        raise BadInputError(f"{artifact}: no tokenizer/ folder beside it; a text model's "
                            "SavedModel and .tflite files need the export folder's tokenizer.")
    return folder
