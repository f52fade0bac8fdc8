"""Export a detector: ``model.keras``, SavedModel and TFLite that return boxes, scores, classes.

Every exported graph (the ``serve`` signature of ``saved_model/`` and of each ``.tflite``) returns
the head's raw outputs (e.g. ``box_deltas``/``class_logits`` for SSD, ``bbox_regression``/
``cls_logits`` for RetinaNet, ``boxes``/``classes`` for YOLOv8, ``proposals``/``class_logits``/
``box_deltas`` for Faster R-CNN) **and** the decoded detections after class-wise NMS:
``detection_boxes`` (``xyxy`` pixels of the input), ``detection_scores``, ``detection_classes``
(-1 past the end) and ``num_detections``. The NMS in the graph is TFLite's built-in
``NON_MAX_SUPPRESSION_V4`` (`keras_transfer.detection.decode.graph_detections`: one
single-class NMS over boxes moved apart by class, which is exactly a class-wise NMS), so the
files need no Flex ops; its thresholds are fixed at export (``nms=``, recorded in
``metadata.json``). keras-cv's and keras-hub's own decoders run a batched, padded NMS that the
built-in op set does not convert, hence this one. The raw outputs stay, so a caller can decode
them on the host with other thresholds (`decode_detections`, with the decoder parameters in
``metadata.json``) and so parity is checked on them.

Quantized files: ``float16``, ``dynamic`` and ``int8`` (integer convolutions calibrated on
representative images; the decoding and NMS ops, which have no int8 kernels, stay float32).
Each export is verified on images: a float32 file's raw outputs must match Keras, and so must
its detections (decoded on the host and from the graph's NMS), else nothing is written (unless
``require_parity=False``); a quantized file's agreement is recorded, not enforced.
``metadata.json`` has the schema every task's export shares (`keras_transfer.export.schema`)
and records the size and sha256 of every file (``checksums``), checked before a file is run.
What parity means for detections is `keras_transfer.detection.parity`'s.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Sequence

import keras
import numpy as np

from keras_transfer.detection.decode import (
    DETECTION_OUTPUTS,
    NMS_DEFAULTS,
    BoxDecoder,
    box_decoder,
    graph_detections,
)
from keras_transfer.detection.parity import (  # noqa: F401 - compare_detections: its old home
    compare_detections,
    parity_record,
)
from keras_transfer.errors import BadInputError
from keras_transfer.export import schema
from keras_transfer.export.progress import step
from keras_transfer.export.verify import fail_or_warn
from keras_transfer.utils.files import atomic_directory

FORMATS = schema.FORMATS
QUANTIZATIONS = ("float32", "float16", "dynamic", "int8")


def _archive(model: keras.Model, decoder: BoxDecoder, nms: dict[str, Any],
             batch_size: int | None):
    """The ``serve`` endpoint: images → raw head outputs + detections after NMS."""
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(model)
    decoder.anchors()  # computed eagerly (keras-hub's anchor generator), constants in the graph

    def serve(images):
        raw = dict(model(images, training=False))
        return {**raw, **graph_detections(decoder, raw, **nms)}

    archive.add_endpoint(
        "serve", serve, input_signature=[
            tf.TensorSpec((batch_size, *decoder.image_size, 3), tf.float32, name="images")])
    return archive


def run_tflite(
    path_or_bytes: str | os.PathLike | bytes, images: np.ndarray, *, threads: int | None = None
) -> dict[str, np.ndarray]:
    """Runs a detector's ``.tflite`` (``serve`` signature, batch 1) on images, image by image:
    its raw outputs and, for files of this version, ``detection_*`` / ``num_detections``.

    A thin use of `keras_transfer.export.interpreter.TFLiteModel`: the file is checked first,
    so a truncated or modified one raises `BadInputError` naming it.

    Example:
    >>> # raw = run_tflite("export/model.tflite", images); raw["cls_logits"].shape
    """
    from keras_transfer.export.interpreter import TFLiteModel

    return TFLiteModel(path_or_bytes, threads=threads, signature="serve")(
        np.asarray(images, np.float32))


def _nms_options(nms: dict[str, Any] | None) -> dict[str, Any]:
    options = {**NMS_DEFAULTS, **(nms or {})}
    unknown = sorted(set(options) - set(NMS_DEFAULTS))
    if unknown:
        raise BadInputError(f"export_detector: nms={nms!r}: unknown key(s) {unknown}; it takes "
                            f"{sorted(NMS_DEFAULTS)}.")
    if (not 0.0 <= float(options["iou_threshold"]) <= 1.0 or int(options["max_detections"]) < 1
            or float(options["score_threshold"]) < 0.0):
        raise BadInputError(f"export_detector: nms={nms!r}: iou_threshold must lie in [0, 1], "
                            "score_threshold be >= 0 and max_detections be positive.")
    return {"iou_threshold": float(options["iou_threshold"]),
            "score_threshold": float(options["score_threshold"]),
            "max_detections": int(options["max_detections"])}


def _images(images: Any, size: tuple[int, int], what: str) -> np.ndarray:
    from keras_transfer.export.images import collect_samples

    if isinstance(images, np.ndarray) and images.ndim == 4 and images.shape[1:3] == size:
        return images.astype(np.float32)
    return collect_samples(images, 32, size, what=what)[0]


def _metadata(model: keras.Model, decoder: BoxDecoder, nms: dict[str, Any], formats,
              quantization, class_names, user) -> dict[str, Any]:
    raw = sorted(model.output)
    height, width = decoder.image_size
    nms_record = {**nms, "inside_graph": True, "op": "NON_MAX_SUPPRESSION_V4 (class-wise)"}
    info = schema.new_metadata(
        "detection", model={"name": model.name, "num_params": int(model.count_params()),
                            "kind": decoder.kind},
        labels=class_names, formats=formats, quantization=quantization,
        input={"kind": "images", "names": ["images"], "shape": [height, width, 3],
               "dtype": "float32", "range": [0.0, 255.0], "layout": "NHWC", "color": "RGB",
               "resize_mode": "stretch"},
        output={"kind": "detections", "names": raw + list(DETECTION_OUTPUTS), "raw": raw,
                "detections": list(DETECTION_OUTPUTS), "box_format": "xyxy input pixels",
                "max_detections": nms["max_detections"]},
        task_config={"kind": decoder.kind, "decoder": decoder.to_json(), "nms": nms_record},
        user=user)
    # The keys of format 1, which earlier readers use.
    info.update(decoder=decoder.to_json(), class_names=list(class_names or []), outputs=raw,
                nms=f"in the graph ({nms_record['op']}); raw outputs kept for host decoding")
    return info


def export_detector(
    model: keras.Model,
    directory: str | os.PathLike,
    *,
    formats: str | Sequence[str] = FORMATS,
    quantization: str | Sequence[str] = ("float32",),
    verify_images: Any = None,
    class_names: Sequence[str] | None = None,
    representative_images: Any = None,
    nms: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    tolerance: float = 1e-3,
    overwrite: bool = True,
    require_parity: bool = True,
    verbose: bool = True,
) -> dict[str, Any]:
    """Writes the detector into `directory` (atomically) and checks every file against Keras.

    Args:
        formats: any of ``"keras"``, ``"saved_model"`` (``serve``: float32 images of any batch
            → raw outputs + detections) and ``"tflite"`` (batch 1, built-in ops only).
        quantization: TFLite flavours: ``"float32"``, ``"float16"``, ``"dynamic"``, ``"int8"``
            (or ``"all"``); int8 calibrates on `representative_images` (else `verify_images`).
        verify_images: raw images (array, file paths, ...) to compare the files and Keras on
            (default: 2 noise images).
        class_names: written to ``labels.txt`` and the metadata.
        nms: the graph's NMS: ``iou_threshold`` (0.5), ``score_threshold`` (0.25),
            ``max_detections`` (100).
        metadata: extra JSON facts (``metadata.json`` → ``user``).
        tolerance: the largest raw-output difference (relative to the output's range) accepted.
        require_parity: when the float32 TFLite outputs or detections differ from Keras (see
            `verify_tflite`), raise `BadInputError` saying on which images and by how much, and
            write nothing (a previous export stays). ``False`` exports anyway and records the
            differences in ``metadata.json`` → ``verification.problems``.

    Returns:
        The ``metadata.json`` content plus ``"directory"``: decoder parameters, NMS, files and
        sizes, their ``checksums`` and the verification (per file; for ``model.tflite`` also at
        the top: ``max_abs_diff`` per raw output, ``detections_equal``, ``parity``).

    Example:
    >>> # info = export_detector(detector, "exports/shapes", class_names=["square", "disc"])
    >>> # info["verification"]["max_abs_diff"]  ->  {'box_deltas': 2e-06, 'class_logits': 3e-06}
    """
    formats = schema.choices(formats, FORMATS, "formats", "export_detector")
    quantization = schema.choices(quantization, QUANTIZATIONS, "quantization", "export_detector")
    quantization = quantization if "tflite" in formats else ()
    decoder = box_decoder(model)
    class_names = schema.check_labels(class_names, decoder.num_classes, "export_detector")
    options = _nms_options(nms)
    data_source = "verify_data" if verify_images is not None else "random"
    if verify_images is None:
        verify_images = np.random.default_rng(0).uniform(
            0, 255, (2, *decoder.image_size, 3)).astype(np.float32)
    verify_images = _images(verify_images, decoder.image_size, "verify_data")
    calibration = None
    if "int8" in quantization:
        source = representative_images if representative_images is not None else verify_images
        calibration = _images(source, decoder.image_size, "representative_data")
    info = _metadata(model, decoder, options, formats, quantization, class_names, metadata)
    directory = schema.check_target(directory, overwrite)
    with atomic_directory(directory, overwrite=overwrite) as tmp:
        _write_files(model, tmp, decoder, options, formats, quantization, calibration, info,
                     verbose)
        schema.write_labels(tmp, class_names, info["files"])
        with step("verifying on the Keras model", verbose=verbose):
            info["verification"] = _verification(model, tmp, info["files"], verify_images,
                                                  options, tolerance)
            info["verification"]["data"] = data_source
        problems = info["verification"].get("problems")
        if problems:  # named by where the file would have gone, not the temporary folder
            fail_or_warn(directory / "model.tflite", len(verify_images), problems,
                         require_parity)
        schema.write_metadata(tmp, info)
    info["directory"] = str(directory)
    return info


def _write_files(model, tmp: Path, decoder: BoxDecoder, nms: dict[str, Any], formats,
                 quantization, calibration, info: dict[str, Any], verbose: bool) -> None:
    from keras_transfer.export.integrity import check_keras_archive
    from keras_transfer.export.tflite import convert_saved_model, embed_metadata, tflite_filename

    files = info["files"]
    if "keras" in formats:
        with step("writing model.keras", verbose=verbose):
            model.save(tmp / schema.KERAS_FILE)
            check_keras_archive(tmp / schema.KERAS_FILE)
        files[schema.KERAS_FILE] = {"format": "keras"}
    if "saved_model" in formats:
        with step("writing saved_model/ (serve: raw outputs + detections)", verbose=verbose):
            _archive(model, decoder, nms, None).write_out(str(tmp / "saved_model"), verbose=False)
        files[schema.SAVED_MODEL_DIR] = {"format": "saved_model", "signatures": ["serve"]}
    if not quantization:
        return
    batch1 = tmp / ".saved_model_batch1"
    _archive(model, decoder, nms, 1).write_out(str(batch1), verbose=False)
    embedded = {"task": "detection", "decoder": decoder.to_json(), "nms": nms,
                "class_names": info["class_names"]}
    for flavour in quantization:
        name = tflite_filename(flavour)
        with step(f"converting {name}", verbose=verbose):
            data = convert_saved_model(batch1, flavour, representative_images=calibration,
                                       float_fallback=True)
            (tmp / name).write_bytes(embed_metadata(data, {**embedded, "quantization": flavour}))
        files[name] = {"format": "tflite", "quantization": flavour}
        if flavour == "int8":
            files[name]["calibration_images"] = int(len(calibration))
    shutil.rmtree(batch1)


def _verification(model, folder: Path, files: dict[str, dict], images: np.ndarray,
                  nms: dict[str, Any], tolerance: float) -> dict[str, Any]:
    """Every written graph compared with Keras; ``model.tflite``'s record also at the top."""
    result: dict[str, Any] = {"num_samples": len(images), "data": "verify_data",
                              "images": len(images), "tflite": {}}
    if schema.SAVED_MODEL_DIR in files:
        from keras_transfer.export.runner import load_runner

        saved = load_runner(folder / schema.SAVED_MODEL_DIR)
        result["saved_model"] = parity_record(model, saved(images), images,
                                              tolerance=tolerance, nms=nms)
    for name, entry in files.items():
        if entry["format"] == "tflite":
            record = parity_record(model, run_tflite(folder / name, images), images,
                                   tolerance=tolerance, nms=nms)
            result["tflite"][name] = {"quantization": entry["quantization"], **record}
    problems = [f"saved_model/: {p}" for p in result.get("saved_model", {}).get("problems", [])]
    if "model.tflite" in result["tflite"]:
        float32 = result["tflite"]["model.tflite"]
        result.update({key: float32[key] for key in
                       ("max_abs_diff", "detections_equal", "graph_detections_equal")
                       if key in float32})
        problems += float32.get("problems", [])
    result["parity"] = not problems
    if problems:
        result["problems"] = problems
    return result


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
    images = np.asarray(images, np.float32)
    result = parity_record(model, run_tflite(tflite_path, images), images,
                           tolerance=tolerance, score_threshold=score_threshold)
    if "problems" in result:
        fail_or_warn(tflite_path, len(images), result["problems"], require_parity)
    return result
