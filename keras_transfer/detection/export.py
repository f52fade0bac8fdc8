"""Export a detector: ``model.keras``, SavedModel and TFLite with the raw head outputs.

The exported graphs end at the head (e.g. ``boxes``/``classes`` for YOLOv8,
``bbox_regression``/``cls_logits`` for RetinaNet, ``box_deltas``/``class_logits`` for SSD,
``proposals``/``class_logits``/``box_deltas`` for Faster R-CNN, whose proposal NMS is in the
graph): box decoding and the final NMS run on the host with
`keras_transfer.detection.decode_detections`, using the decoder parameters written to
``metadata.json`` (and embedded in the ``.tflite`` file). That NMS is not put inside the graph:
keras-cv and keras-hub run a batched, padded NMS that the built-in TFLite op set does not
convert, and one host-side decoder keeps Keras, SavedModel and TFLite results identical. Each
export is verified: the TFLite raw outputs must match Keras and so must the decoded detections,
else nothing is written (unless ``require_parity=False``). ``metadata.json`` records the size and
sha256 of every file (``checksums``), checked before a ``.tflite`` is run (`run_tflite`).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Sequence

import keras
import numpy as np

from keras_transfer.detection.decode import box_decoder, decode_detections
from keras_transfer.errors import BadInputError
from keras_transfer.export import integrity
from keras_transfer.export.verify import fail_or_warn
from keras_transfer.weights.cache import atomic_directory

FORMATS = ("keras", "saved_model", "tflite")


def _archive(model: keras.Model, batch_size: int | None):
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(model)
    size = tuple(model.input_shape[1:3])

    def serve(images):
        return {key: value for key, value in model(images, training=False).items()}

    archive.add_endpoint(
        "serve", serve,
        input_signature=[tf.TensorSpec((batch_size, *size, 3), tf.float32, name="images")])
    return archive


def run_tflite(
    path_or_bytes: str | os.PathLike | bytes, images: np.ndarray
) -> dict[str, np.ndarray]:
    """Runs a detector's ``.tflite`` (``serve`` signature, batch 1) on images, image by image.

    The file is checked first (`keras_transfer.export.integrity.read_tflite`): a truncated or
    modified one raises `BadInputError` naming it rather than crashing the interpreter.

    Example:
    >>> # raw = run_tflite("export/model.tflite", images); raw["cls_logits"].shape
    """
    from keras_transfer.export.interpreter import interpreter_class

    if isinstance(path_or_bytes, (bytes, bytearray)):
        content = bytes(path_or_bytes)
        integrity.check_tflite_bytes(content)
    else:
        content = integrity.read_tflite(path_or_bytes)
    runner = interpreter_class()[0](model_content=content).get_signature_runner("serve")
    outputs: dict[str, list] = {}
    for image in np.asarray(images, np.float32):
        for key, value in runner(images=image[None]).items():
            outputs.setdefault(key, []).append(value[0])
    return {key: np.stack(value) for key, value in outputs.items()}


def export_detector(
    model: keras.Model,
    directory: str | os.PathLike,
    *,
    formats: Sequence[str] = FORMATS,
    verify_images: np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    tolerance: float = 1e-3,
    overwrite: bool = True,
    require_parity: bool = True,
) -> dict[str, Any]:
    """Writes the detector into `directory` (atomically) and checks TFLite against Keras.

    Args:
        formats: any of ``"keras"``, ``"saved_model"`` (``serve``: float32 images of any batch
            → raw outputs) and ``"tflite"`` (float32, batch 1, built-in ops only).
        verify_images: raw images to compare TFLite and Keras on (default: 2 noise images).
        class_names: written to ``labels.txt`` and the metadata.
        tolerance: the largest raw-output difference (relative to the output's range) accepted.
        require_parity: when the TFLite outputs or detections differ from Keras (see
            `verify_tflite`), raise `BadInputError` saying on which images and by how much, and
            write nothing (a previous export stays). ``False`` exports anyway and records the
            differences in ``metadata.json`` → ``verification.problems``.

    Returns:
        The ``metadata.json`` content: decoder parameters, files and sizes, their ``checksums``
        and the verification (``max_abs_diff`` per output, ``detections_equal`` after decoding,
        ``parity``).

    Example:
    >>> # info = export_detector(detector, "exports/shapes", class_names=["square", "disc"])
    >>> # info["verification"]["max_abs_diff"]  ->  {'box_deltas': 2e-06, 'class_logits': 3e-06}
    """
    from keras_transfer.export.tflite import convert_saved_model, embed_metadata

    formats = tuple(formats)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise BadInputError(f"export_detector: formats={formats}; choose from {FORMATS}.")
    decoder = box_decoder(model)
    if class_names is not None and len(class_names) != decoder.num_classes:
        raise BadInputError(
            f"export_detector: {len(class_names)} class names for {decoder.num_classes} classes.")
    if verify_images is None:
        verify_images = np.random.default_rng(0).uniform(
            0, 255, (2, *decoder.image_size, 3)).astype(np.float32)
    info: dict[str, Any] = {"decoder": decoder.to_json(), "class_names": list(class_names or []),
                            "outputs": sorted(model.output), "files": {},
                            "nms": "host-side (keras_transfer.detection.decode_detections)"}
    with atomic_directory(directory, overwrite=overwrite) as tmp:
        if "keras" in formats:
            model.save(tmp / "model.keras")
        if "saved_model" in formats:
            _archive(model, None).write_out(str(tmp / "saved_model"), verbose=False)
        if "tflite" in formats:
            batch1 = tmp / ".saved_model_batch1"
            _archive(model, 1).write_out(str(batch1), verbose=False)
            data = convert_saved_model(batch1, "float32")
            data = embed_metadata(data, {"decoder": decoder.to_json(),
                                         "class_names": info["class_names"]})
            (tmp / "model.tflite").write_bytes(data)
            shutil.rmtree(batch1)
            info["verification"] = _parity(model, tmp / "model.tflite", verify_images,
                                           tolerance=tolerance)
            problems = info["verification"].get("problems")
            if problems:  # named by where the file would have gone, not the temporary folder
                fail_or_warn(Path(directory) / "model.tflite", len(verify_images), problems,
                              require_parity)
        if class_names is not None:
            (tmp / "labels.txt").write_text("\n".join(class_names) + "\n")
        if "keras" in formats:
            integrity.check_keras_archive(tmp / "model.keras")
        for path in sorted(tmp.iterdir()):
            size = (sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
                    if path.is_dir() else path.stat().st_size)
            info["files"][path.name] = size
        info["checksums"] = integrity.checksums(tmp, info["files"])
        (tmp / "metadata.json").write_text(json.dumps(info, indent=2))
    info["directory"] = str(Path(directory))
    return info


def verify_tflite(
    model: keras.Model, tflite_path: str | os.PathLike, images: np.ndarray, *,
    tolerance: float = 1e-3, require_parity: bool = True, score_threshold: float = 0.05,
) -> dict[str, Any]:
    """Compares TFLite raw outputs and decoded detections with Keras.

    Raw outputs must agree within `tolerance` (relative to each output's range); detections
    decoded at `score_threshold` must agree as `compare_detections` says (float noise between
    two runtimes is not a difference). With `require_parity` a difference raises
    `BadInputError` naming the images; without, it is returned under ``"problems"``.

    Example:
    >>> # verify_tflite(detector, "export/model.tflite", images)["detections_equal"]  ->  True
    """
    result = _parity(model, tflite_path, images, tolerance=tolerance,
                     score_threshold=score_threshold)
    if "problems" in result:
        fail_or_warn(tflite_path, len(images), result["problems"], require_parity)
    return result


def _parity(model: keras.Model, tflite_path: str | os.PathLike, images: np.ndarray, *,
            tolerance: float, score_threshold: float = 0.05) -> dict[str, Any]:
    """The verification record; ``"problems"`` lists what differs (absent when nothing)."""
    images = np.asarray(images, np.float32)
    reference = {k: keras.ops.convert_to_numpy(v) for k, v in model(images, training=False).items()}
    outputs = run_tflite(tflite_path, images)
    if set(outputs) != set(reference):
        raise BadInputError(
            f"{tflite_path}: TFLite outputs {sorted(outputs)} differ from Keras "
            f"{sorted(reference)}.")
    diffs = {k: float(np.abs(outputs[k] - reference[k]).max()) for k in reference}
    scale = {k: float(np.abs(reference[k]).max()) or 1.0 for k in reference}
    allowed = {k: tolerance * max(1.0, scale[k]) for k in reference}
    problems = [f"raw output {k!r} differs by {d:.3g} (tolerance {allowed[k]:.3g})"
                for k, d in diffs.items() if d > allowed[k]]
    decoder = box_decoder(model)
    theirs = decode_detections(decoder, reference, score_threshold=score_threshold)
    ours = decode_detections(decoder, outputs, score_threshold=score_threshold)
    detection_problems = compare_detections(theirs, ours, score_threshold=score_threshold)
    problems += detection_problems
    result = {"images": len(images), "max_abs_diff": diffs,
              "detections_equal": not detection_problems, "parity": not problems}
    if problems:
        result["problems"] = problems
    return result


def compare_detections(
    reference: Sequence[dict[str, np.ndarray]],
    candidate: Sequence[dict[str, np.ndarray]],
    *,
    score_threshold: float = 0.05,
    max_detections: int = 100,
    score_margin: float = 1e-3,
    box_tolerance: float = 0.5,
) -> list[str]:
    """What differs between two runtimes' detections of the same images (empty: equal).

    Each detection must have one of the same class in the other list with every box coordinate
    within `box_tolerance` pixels and the score within `score_margin`. A detection without a
    counterpart is a difference only if its score is `score_margin` above where the other list
    stops (`score_threshold`, or its lowest score when it holds `max_detections`): float noise
    moves scores that sit right at the cut across it, and that is not a difference. The default
    margins are far above the noise of two float32 runtimes (scores differ by ~1e-6) and far
    below a real difference; comparing lists position by position, as before, failed on
    detections swapping places or crossing the threshold by 1e-6.

    Example:
    >>> a = [{"boxes": np.array([[0, 0, 10, 10], [5, 5, 9, 9]], np.float32),
    ...       "scores": np.array([0.9, 0.0505]), "classes": np.array([1, 0])}]
    >>> b = [{"boxes": np.array([[0, 0, 10.001, 10]], np.float32),
    ...       "scores": np.array([0.9]), "classes": np.array([1])}]
    >>> compare_detections(a, b)   # the 0.0505 one sits at the 0.05 threshold: noise
    []
    >>> compare_detections(a, [{**b[0], "classes": np.array([0])}])
    ['image 0: 2 Keras vs 1 TFLite detections, 1 only in Keras (best score 0.90), 1 only in ...']
    """
    problems = []
    for index, (ref, cand) in enumerate(zip(reference, candidate)):
        cut_ref = _cutoff(ref["scores"], score_threshold, max_detections)
        cut_cand = _cutoff(cand["scores"], score_threshold, max_detections)
        unmatched = list(range(len(cand["scores"])))
        only_ref, box_diff, score_diff = [], 0.0, 0.0
        for i in np.argsort(-np.asarray(ref["scores"]), kind="stable"):
            same = [j for j in unmatched if cand["classes"][j] == ref["classes"][i]]
            gaps = [float(np.abs(cand["boxes"][j] - ref["boxes"][i]).max()) for j in same]
            if gaps and min(gaps) <= box_tolerance:
                j = same[int(np.argmin(gaps))]
                unmatched.remove(j)
                box_diff = max(box_diff, min(gaps))
                score_diff = max(score_diff, abs(float(cand["scores"][j] - ref["scores"][i])))
            elif ref["scores"][i] >= cut_cand + score_margin:
                only_ref.append(float(ref["scores"][i]))
        only_cand = [float(cand["scores"][j]) for j in unmatched
                     if cand["scores"][j] >= cut_ref + score_margin]
        if only_ref or only_cand or score_diff > score_margin:
            parts = [f"{len(ref['scores'])} Keras vs {len(cand['scores'])} TFLite detections"]
            if only_ref:
                parts.append(f"{len(only_ref)} only in Keras (best score {max(only_ref):.2f})")
            if only_cand:
                parts.append(f"{len(only_cand)} only in TFLite (best score {max(only_cand):.2f})")
            if score_diff > score_margin:
                parts.append(f"scores differ by up to {score_diff:.3f}")
            if box_diff:
                parts.append(f"boxes by up to {box_diff:.2f} px")
            problems.append(f"image {index}: " + ", ".join(parts))
    return problems


def _cutoff(scores: np.ndarray, threshold: float, max_detections: int) -> float:
    """The lowest score a list of detections could have kept."""
    if len(scores) >= max_detections:
        return max(threshold, float(np.min(scores)))
    return threshold
