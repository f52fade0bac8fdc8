"""`export`: one call writes every deployable form of a model into one folder, atomically.

Layout of an export folder (only the requested parts)::

    model.keras                 Keras 3 archive (custom layers are registered: safe_mode loads it)
    saved_model/                SavedModel: signatures `serve` (float32 raw images) and
                                `serve_bytes` (encoded JPEG/PNG strings), `serving_default` = serve
    model.tflite                TFLite float32
    model.float16.tflite        TFLite float16 weights
    model.dynamic.tflite        TFLite int8 weights, float activations
    model.int8.tflite           TFLite full integer (int8/uint8 input+output with `int8_io`)
    labels.txt                  one label per line, in output order
    metadata.json               the schema every task's export shares (format 2, see
                                `keras_transfer.export.schema`): task, input (size, range,
                                resize mode, normalization), output, labels, files and sizes,
                                the verification results, user metadata, and ``checksums``: the
                                size and sha256 of every file above (checked before each load,
                                see `keras_transfer.export.integrity`)

The folder is built beside ``directory`` and renamed into place only once everything (including
verification, and the caller's own files: ``extra_files``) succeeded, so a failure leaves no
half-written export and the previous one intact.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Sequence

import keras
import numpy as np

from keras_transfer.data.decode import check_resize_mode
from keras_transfer.errors import BadInputError
from keras_transfer.export import describe, images, integrity, saved_model, schema, tflite, verify
from keras_transfer.export.interpreter import default_threads, interpreter_class
from keras_transfer.export.progress import step
from keras_transfer.export.schema import (  # noqa: F401 - re-exported: earlier import paths
    FORMAT_VERSION,
    FORMATS,
    KERAS_FILE,
    LABELS_FILE,
    METADATA_FILE,
    SAVED_MODEL_DIR,
)
from keras_transfer.utils.files import atomic_directory


def write_keras(model: keras.Model, path: Path) -> None:
    """Saves the ``.keras`` archive so that `keras.models.load_model` loads it without warnings
    (a separate function so tests can make it fail).

    Loading compiles the model from its compile config, builds that optimizer on the model's
    trainable variables and loads the saved optimizer state into it, which Keras skips with a
    warning when the variables differ: after `unfreeze` with no `fit` since, or a recompile with
    no `fit` (the optimizer is unbuilt). An export is for inference, so such an optimizer is
    saved fresh: same class and settings, built on the trainable variables, zero state. One
    built on exactly the trainable variables is saved as it is (iterations, moments). `model`
    is left as it was: its own optimizer and compile state are not touched.

    Example:
    >>> import tempfile, warnings
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile("adam", "mse")  # not fitted: its optimizer is unbuilt
    >>> path = Path(tempfile.mkdtemp()) / "model.keras"
    >>> write_keras(model, path)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("error")  # "Skipping variable loading ..." would raise
    ...     loaded = keras.models.load_model(path)
    >>> model.optimizer.built, loaded.optimizer.built
    (False, True)
    """
    from keras_transfer.compat.keras_internals import optimizer_built_for

    optimizer = getattr(model, "optimizer", None)
    built_for = optimizer_built_for(optimizer) if optimizer is not None else None
    if optimizer is None or (built_for is not None and list(map(id, built_for)) ==
                             list(map(id, model.trainable_variables))):
        model.save(path)  # nothing to save, or a state load_model takes as it is
        return
    fresh = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    fresh.build(model.trainable_variables)  # what load_model builds, so the state fits
    model.optimizer = fresh  # saving writes `model.optimizer`: swapped for the save only
    try:
        model.save(path)
    finally:
        model.optimizer = optimizer


def export(
    model: keras.Model,
    directory: str | os.PathLike,
    *,
    formats: str | Sequence[str] = FORMATS,
    quantization: str | Sequence[str] = ("float32",),
    labels: Sequence[str] | None = None,
    representative_data: Any = None,
    verify_data: Any = None,
    metadata: dict[str, Any] | None = None,
    int8_io: str | None = None,
    num_verify: int = 32,
    num_calibration: int = 100,
    threads: int | None = None,
    overwrite: bool = True,
    verbose: bool = True,
    extra_files: Callable[[Path, dict[str, Any]], None] | None = None,
    resize_mode: str = "stretch",
    require_parity: bool = True,
) -> dict[str, Any]:
    """Exports ``model`` (raw images in, predictions out) to ``directory`` and verifies the files.

    Args:
        model: a single-input Keras model taking float32 ``(None, H, W, 3)`` pixels in [0, 255],
            with a fixed ``H, W``.
        directory: the export folder; replaced atomically (see `overwrite`).
        formats: any of ``"keras"``, ``"saved_model"``, ``"tflite"`` (or ``"all"``).
        quantization: TFLite flavours: ``"float32"``, ``"float16"``, ``"dynamic"``, ``"int8"``
            (or ``"all"``).
        labels: class names in output order → ``labels.txt``, metadata and TFLite metadata.
        representative_data: raw images to calibrate ``int8`` on (array, ``(x, y)``, file paths,
            tf.data or an iterable), preprocessed as at inference (no augmentation); defaults to
            `verify_data`. ``num_calibration`` are used: spread evenly over an array or a path
            list, the first ones of a dataset or iterable (shuffle it). Activation ranges are
            exact min/max over them (see `keras_transfer.export.calibration`).
        verify_data: raw images, optionally with labels (masks ``(N, H, W)`` for a segmenter),
            to verify on (``num_verify`` of them); without it, seeded uniform-noise images are
            used (no accuracy then). A per-pixel softmax output is verified as segmentation:
            max |diff| and pixel agreement, plus pixel accuracy and mean IoU with masks.
        metadata: extra JSON-serializable facts (backbone name, metrics, ...) → ``metadata.json``.
        int8_io: ``None`` (float input/output around the int8 model), ``"int8"`` or ``"uint8"``.
        threads: interpreter threads for verification (default: CPU count, at most 4).
        overwrite: replace an existing export (else `FileExistsError`).
        verbose: print one line per step.
        extra_files: ``extra_files(folder, info)`` is called once the artifacts are written and
            verified and ``metadata.json`` is written, with the temporary folder and what
            `export` will return; the files it writes there (a report, plots) are renamed into
            place in the same step as the model, and if it raises nothing is replaced. It must
            not change the artifacts (their checksums are in ``metadata.json``).
        resize_mode: how the training images were brought to the input size ("stretch",
            "pad", "crop"): recorded as ``input.resize_mode`` in ``metadata.json``; `predict`
            and the ``serve_bytes`` signature resize images the same way.
        require_parity: the SavedModel and every float32 ``.tflite`` must reproduce the Keras
            outputs on the verification images (max |diff| within
            `verify.PARITY_TOLERANCE` of their scale), else nothing is exported and
            `BadInputError` says what differs; False exports anyway with a warning and the
            differences in ``metadata.json`` (``verification.problems``). Quantized files
            differ by design: their agreement is recorded, not enforced.

    Returns:
        The content of ``metadata.json`` plus ``"directory"`` (the export folder's path).

    Example:
    >>> import json, tempfile
    >>> inputs = keras.Input((8, 8, 3))
    >>> outputs = keras.layers.Dense(2, activation="softmax", name="predictions")(
    ...     keras.layers.GlobalAveragePooling2D()(inputs))
    >>> def add_report(folder, info):  # written inside the same atomic step as the model
    ...     _ = (folder / "report.json").write_text(json.dumps({"files": sorted(info["files"])}))
    >>> info = export(keras.Model(inputs, outputs), tempfile.mkdtemp() + "/exp",
    ...               formats="tflite", labels=["a", "b"], num_verify=2, verbose=False,
    ...               extra_files=add_report)
    >>> info["verification"]["tflite"]["model.tflite"]["top1_agreement"]
    1.0
    >>> (Path(info["directory"]) / "report.json").read_text()
    '{"files": ["labels.txt", "model.tflite"]}'
    >>> sorted(info["checksums"]["model.tflite"])
    ['sha256', 'size_bytes']
    """
    plan = _plan(model, formats, quantization, labels, int8_io, num_verify, resize_mode,
                 threads)
    x_verify, y_verify, data_source = _verification_images(verify_data, num_verify, plan.size)
    x_calibration = _calibration_images(plan, representative_data, verify_data,
                                        num_calibration)
    info = _metadata(model, plan, metadata)
    directory = schema.check_target(directory, overwrite)
    with atomic_directory(directory, overwrite=overwrite) as tmp:
        _write_files(model, tmp, plan, info, x_calibration, verbose)
        info["verification"] = _verify(model, tmp, info["files"], x_verify, y_verify,
                                       plan.task, plan.threads, data_source, verbose)
        verify.check_parity(info["verification"], directory, len(x_verify), require_parity)
        with step(f"writing {METADATA_FILE}", verbose=verbose):
            schema.write_metadata(tmp, info)
        if extra_files is not None:
            extra_files(tmp, {**info, "directory": str(directory)})
    if verbose:
        print(f"[export] wrote {directory}", flush=True)
    return {**info, "directory": str(directory)}


@dataclasses.dataclass
class _Plan:
    """What an image export will write, checked before anything is written."""

    formats: tuple[str, ...]
    quantization: tuple[str, ...]
    int8_io: str | None
    size: tuple[int, int]
    description: dict[str, Any]
    labels: list[str] | None
    task: str  # the output task: single_label, multi_label, regression, segmentation
    threads: int


def _plan(model: keras.Model, formats, quantization, labels, int8_io, num_verify: int,
          resize_mode: str, threads: int | None) -> _Plan:
    formats = schema.choices(formats, FORMATS, "formats")
    quantization = schema.choices(quantization, tflite.QUANTIZATIONS, "quantization")
    if "tflite" not in formats:
        if quantization != ("float32",):
            raise BadInputError(f"export: quantization={quantization} needs 'tflite' in formats.")
        quantization = ()
    if int8_io not in tflite.INT8_IO:
        raise BadInputError(f"export: int8_io={int8_io!r} is not one of {tflite.INT8_IO}.")
    if int8_io is not None and "int8" not in quantization:
        raise BadInputError("export: int8_io needs 'int8' in quantization.")
    if num_verify <= 0:
        raise BadInputError(f"export: num_verify must be positive, got {num_verify}.")
    check_resize_mode(resize_mode)
    description = describe.describe_model(model)
    description["input"]["resize_mode"] = resize_mode
    labels = schema.check_labels(labels, description["output"]["shape"][-1])
    return _Plan(formats, quantization, int8_io, describe.image_size(model), description,
                 labels, description["output"]["task"], threads or default_threads())


def _verification_images(verify_data: Any, count: int, size: tuple[int, int]):
    """(images, labels or None, source): `verify_data`, else seeded uniform noise."""
    if verify_data is not None:
        x, y = images.collect_samples(verify_data, count, size, what="verify_data")
        return x, y, "verify_data"
    noise = np.random.default_rng(0).uniform(0.0, 255.0, (count, *size, 3)).astype("float32")
    return noise, None, "random"


def _calibration_images(plan: _Plan, representative_data: Any, verify_data: Any,
                        count: int) -> np.ndarray | None:
    if "int8" not in plan.quantization:
        return None
    source = representative_data if representative_data is not None else verify_data
    if source is None:
        raise BadInputError("export: quantization 'int8' needs representative_data (raw images) "
                            "or verify_data to calibrate on.")
    # Spread over the whole array, so data sorted by class still calibrates on every class.
    return images.collect_samples(source, count, plan.size, what="representative_data",
                                  spread=True)[0]


def _metadata(model: keras.Model, plan: _Plan, user: dict[str, Any] | None) -> dict[str, Any]:
    """The format-2 ``metadata.json`` of an image model (plus format 1's ``model`` section)."""
    description = plan.description
    segmentation = plan.task == "segmentation"
    output = {"kind": "masks" if segmentation else "scores", "names": ["predictions"],
              **description["output"]}
    info = schema.new_metadata(
        "segmentation" if segmentation else "image_classification", model=description,
        labels=plan.labels, formats=plan.formats, quantization=plan.quantization,
        input={"kind": "images", "names": ["images"], **description["input"],
               "normalization": description["normalization"]},
        output=output, task_config=_task_config(model), user=user)
    info["int8_io"] = plan.int8_io
    return info


def _task_config(model: keras.Model) -> dict[str, Any]:
    from keras_transfer.tasks import task_config_of

    try:
        return task_config_of(model)
    except BadInputError:  # a hand-built model that carries no task: nothing to record
        return {}


def _write_files(model: keras.Model, tmp: Path, plan: _Plan, info: dict[str, Any],
                 x_calibration: np.ndarray | None, verbose: bool) -> None:
    """Writes the requested files into `tmp` and records them in ``info["files"]``."""
    files: dict[str, dict[str, Any]] = info["files"]
    if "keras" in plan.formats:
        with step(f"writing {KERAS_FILE}", verbose=verbose):
            write_keras(model, tmp / KERAS_FILE)
            integrity.check_keras_archive(tmp / KERAS_FILE)
        files[KERAS_FILE] = {"format": "keras"}
    if "saved_model" in plan.formats:
        with step(f"writing {SAVED_MODEL_DIR}/ (serve, serve_bytes)", verbose=verbose):
            saved_model.write_saved_model(model, tmp / SAVED_MODEL_DIR, plan.size,
                                          resize_mode=plan.description["input"]["resize_mode"])
        files[SAVED_MODEL_DIR] = {"format": "saved_model",
                                  "signatures": ["serve", "serve_bytes", "serving_default"]}
    if plan.quantization:
        _write_tflite_files(model, tmp, plan, info, x_calibration, verbose)
    schema.write_labels(tmp, plan.labels, files)
    schema.record_sizes(tmp, files)


def _write_tflite_files(model: keras.Model, tmp: Path, plan: _Plan, info: dict[str, Any],
                        x_calibration: np.ndarray | None, verbose: bool) -> None:
    description = plan.description
    embedded = {"format_version": FORMAT_VERSION, "task": info["task"],
                "input": description["input"], "normalization": description["normalization"],
                "output": description["output"], "labels": plan.labels}
    source_dir = tmp / ".tflite_source"
    with step("tracing the batch-1 graph for TFLite", verbose=verbose):
        saved_model.write_saved_model(model, source_dir, plan.size, batch_size=1,
                                      with_bytes=False)
    for flavour in plan.quantization:
        name = tflite.tflite_filename(flavour)
        with step(f"converting {name}", verbose=verbose):
            data = tflite.convert_saved_model(source_dir, flavour,
                                              representative_images=x_calibration,
                                              int8_io=plan.int8_io)
            data = tflite.embed_metadata(data, {**embedded, "quantization": flavour})
            write_tflite(tmp / name, data)
        entry = {"format": "tflite", "quantization": flavour,
                 "io": plan.int8_io if flavour == "int8" and plan.int8_io else "float32"}
        if flavour == "int8":
            entry["calibration_images"] = int(len(x_calibration))
        info["files"][name] = entry
    shutil.rmtree(source_dir)


def write_tflite(path: Path, data: bytes) -> None:
    """Writes one TFLite file (a separate function so tests can make it fail).

    Example:
    >>> # write_tflite(Path("out/model.tflite"), tflite_bytes)
    """
    path.write_bytes(data)


def _verify(
    model: keras.Model,
    folder: Path,
    files: dict[str, dict[str, Any]],
    x: np.ndarray,
    y: np.ndarray | None,
    task: str,
    threads: int,
    data_source: str,
    verbose: bool,
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "num_samples": int(len(x)),
        "data": data_source,
        "labelled": y is not None,
        "threads": threads,
        "interpreter": interpreter_class()[1],
    }
    with step(f"verifying on {len(x)} {data_source} images", verbose=verbose):
        reference = verify.keras_outputs(model, x)
        result["reference_max_abs"] = float(np.abs(reference).max())  # the parity scale
        result["keras"] = verify.score(reference, y, task)
        if SAVED_MODEL_DIR in files:
            result["saved_model"] = verify.verify_saved_model(
                folder / SAVED_MODEL_DIR, x, reference, task=task
            )
        result["tflite"] = {
            name: {"quantization": entry["quantization"], **verify.verify_tflite(
                folder / name, x, reference, labels=y, task=task, threads=threads
            )}
            for name, entry in files.items()
            if entry["format"] == "tflite"
        }
    if verbose:
        for name, entry in result["tflite"].items():
            parts = [f"max|diff| {entry['max_abs_diff']:.2e}"]
            for key in ("top1_agreement", "pixel_agreement", "accuracy", "binary_accuracy",
                        "mae", "pixel_accuracy", "mean_iou"):
                if key in entry:
                    parts.append(f"{key} {entry[key]:.3f}")
            parts.append(f"{entry['latency_ms_median']:.2f} ms/img")
            parts.append(f"{entry['size_bytes'] / 1024:.0f} KiB")
            print(f"[export]   {name}: " + ", ".join(parts), flush=True)
    return result
