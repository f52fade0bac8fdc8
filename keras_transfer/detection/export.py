"""Export a detector: ``model.keras``, SavedModel and TFLite with the raw head outputs.

The exported graphs end at the head (e.g. ``boxes``/``classes`` for YOLOv8,
``bbox_regression``/``cls_logits`` for RetinaNet, ``box_deltas``/``class_logits`` for SSD,
``proposals``/``class_logits``/``box_deltas`` for Faster R-CNN, whose proposal NMS is in the
graph): box decoding and the final NMS run on the host with
`keras_transfer.detection.decode_detections`, using the decoder parameters written to
``metadata.json`` (and embedded in the ``.tflite`` file). That NMS is not put inside the graph:
keras-cv and keras-hub run a batched, padded NMS that the built-in TFLite op set does not
convert, and one host-side decoder keeps Keras, SavedModel and TFLite results identical. Each
export is verified: the TFLite raw outputs must match Keras.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import keras
import numpy as np

from keras_transfer.detection.decode import box_decoder, decode_detections
from keras_transfer.errors import BadInputError
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

    Example:
    >>> # raw = run_tflite("export/model.tflite", images); raw["cls_logits"].shape
    """
    from keras_transfer.export.interpreter import interpreter_class

    kwargs = ({"model_content": bytes(path_or_bytes)} if isinstance(path_or_bytes, bytes)
              else {"model_path": str(path_or_bytes)})
    runner = interpreter_class()[0](**kwargs).get_signature_runner("serve")
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
) -> dict[str, Any]:
    """Writes the detector into `directory` (atomically) and checks TFLite against Keras.

    Args:
        formats: any of ``"keras"``, ``"saved_model"`` (``serve``: float32 images of any batch
            → raw outputs) and ``"tflite"`` (float32, batch 1, built-in ops only).
        verify_images: raw images to compare TFLite and Keras on (default: 2 noise images).
        class_names: written to ``labels.txt`` and the metadata.
        tolerance: the largest raw-output difference (relative to the output's range) accepted.

    Returns:
        The ``metadata.json`` content: decoder parameters, files and sizes, and the verification
        (``max_abs_diff`` per output, detections equal after decoding).

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
            import shutil

            shutil.rmtree(batch1)
            info["verification"] = verify_tflite(model, tmp / "model.tflite", verify_images,
                                                 tolerance=tolerance)
        if class_names is not None:
            (tmp / "labels.txt").write_text("\n".join(class_names) + "\n")
        for path in sorted(tmp.iterdir()):
            size = (sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
                    if path.is_dir() else path.stat().st_size)
            info["files"][path.name] = size
        (tmp / "metadata.json").write_text(json.dumps(info, indent=2))
    info["directory"] = str(Path(directory))
    return info


def verify_tflite(
    model: keras.Model, tflite_path: str | os.PathLike, images: np.ndarray, *,
    tolerance: float = 1e-3,
) -> dict[str, Any]:
    """Compares TFLite raw outputs (and decoded detections) with Keras; raises on a mismatch.

    Example:
    >>> # verify_tflite(detector, "export/model.tflite", images)["detections_equal"]  ->  True
    """
    images = np.asarray(images, np.float32)
    reference = {k: keras.ops.convert_to_numpy(v) for k, v in model(images, training=False).items()}
    outputs = run_tflite(tflite_path, images)
    if set(outputs) != set(reference):
        raise BadInputError(
            f"TFLite outputs {sorted(outputs)} differ from Keras {sorted(reference)}.")
    diffs = {k: float(np.abs(outputs[k] - reference[k]).max()) for k in reference}
    scale = {k: float(np.abs(reference[k]).max()) or 1.0 for k in reference}
    bad = {k: d for k, d in diffs.items() if d > tolerance * max(1.0, scale[k])}
    if bad:
        raise BadInputError(f"TFLite raw outputs differ from Keras beyond tolerance: {bad}.")
    decoder = box_decoder(model)
    ours = decode_detections(decoder, outputs, score_threshold=0.05)
    theirs = decode_detections(decoder, reference, score_threshold=0.05)
    same = all(a["classes"].tolist() == b["classes"].tolist()
               and np.allclose(a["boxes"], b["boxes"], atol=0.05) for a, b in zip(ours, theirs))
    return {"images": len(images), "max_abs_diff": diffs, "detections_equal": bool(same)}
