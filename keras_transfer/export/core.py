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
    metadata.json               input/normalization/labels/quantization/sizes/user metadata,
                                the verification results, and ``checksums``: the size and
                                sha256 of every file above (checked before each load, see
                                `keras_transfer.export.integrity`)

The folder is built beside ``directory`` and renamed into place only once everything (including
verification, and the caller's own files: ``extra_files``) succeeded, so a failure leaves no
half-written export and the previous one intact.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Sequence

import keras
import numpy as np

from keras_transfer.data.decode import check_resize_mode
from keras_transfer.errors import BadInputError
from keras_transfer.export import describe, images, integrity, saved_model, tflite, verify
from keras_transfer.export.interpreter import default_threads, interpreter_class
from keras_transfer.export.progress import step
from keras_transfer.weights.cache import atomic_directory

FORMATS = ("keras", "saved_model", "tflite")
METADATA_FILE = "metadata.json"
LABELS_FILE = "labels.txt"
KERAS_FILE = "model.keras"
SAVED_MODEL_DIR = "saved_model"
FORMAT_VERSION = 1


def _as_tuple(value: str | Sequence[str], what: str, allowed: Sequence[str]) -> tuple[str, ...]:
    values = (value,) if isinstance(value, str) else tuple(value)
    if values == ("all",):
        values = tuple(allowed)
    unknown = [v for v in values if v not in allowed]
    if unknown or not values:
        raise BadInputError(f"export: {what}={value!r}; choose from {tuple(allowed)} (or 'all').")
    return tuple(dict.fromkeys(values))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def write_keras(model: keras.Model, path: Path) -> None:
    """Saves the ``.keras`` archive (a separate function so tests can make it fail).

    Example:
    >>> # write_keras(model, Path("out/model.keras"))
    """
    model.save(path)


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
    >>> import tempfile
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
    formats = _as_tuple(formats, "formats", FORMATS)
    quantization = _as_tuple(quantization, "quantization", tflite.QUANTIZATIONS)
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
    size = describe.image_size(model)
    task = description["output"]["task"]
    if labels is not None:
        labels = [str(label) for label in labels]
        if any("\n" in label for label in labels):
            raise BadInputError("export: labels must not contain newlines.")
        num_outputs = description["output"]["shape"][-1]
        if num_outputs is not None and len(labels) != num_outputs:
            raise BadInputError(
                f"export: {len(labels)} labels for a model with {num_outputs} outputs."
            )
    user_metadata = json.loads(json.dumps(metadata or {}, default=_json_default))
    threads = threads or default_threads()

    # Everything that can fail on bad input is read before anything is written.
    if verify_data is not None:
        x_verify, y_verify = images.collect_samples(
            verify_data, num_verify, size, what="verify_data"
        )
        data_source = "verify_data"
    else:
        rng = np.random.default_rng(0)
        x_verify = rng.uniform(0.0, 255.0, (num_verify, *size, 3)).astype("float32")
        y_verify, data_source = None, "random"
    x_calibration = None
    if "int8" in quantization:
        source = representative_data if representative_data is not None else verify_data
        if source is None:
            raise BadInputError(
                "export: quantization 'int8' needs representative_data (raw images) or "
                "verify_data to calibrate on."
            )
        # Spread over the whole array, so data sorted by class still calibrates on every class.
        x_calibration, _ = images.collect_samples(
            source, num_calibration, size, what="representative_data", spread=True
        )

    embedded = {
        "format_version": FORMAT_VERSION,
        "input": description["input"],
        "normalization": description["normalization"],
        "output": description["output"],
        "labels": labels,
    }
    info: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(),
        "model": description,
        "labels": labels,
        "formats": list(formats),
        "quantization": list(quantization),
        "int8_io": int8_io,
        "files": {},
        "user": user_metadata,
    }

    directory = Path(directory)
    if directory.exists() and not overwrite:
        raise FileExistsError(f"{directory} already exists (pass overwrite=True to replace it).")
    with atomic_directory(directory, overwrite=overwrite) as tmp:
        files: dict[str, dict[str, Any]] = info["files"]
        if "keras" in formats:
            with step(f"writing {KERAS_FILE}", verbose=verbose):
                write_keras(model, tmp / KERAS_FILE)
                integrity.check_keras_archive(tmp / KERAS_FILE)
            files[KERAS_FILE] = {"format": "keras"}
        if "saved_model" in formats:
            with step(f"writing {SAVED_MODEL_DIR}/ (serve, serve_bytes)", verbose=verbose):
                saved_model.write_saved_model(model, tmp / SAVED_MODEL_DIR, size,
                                              resize_mode=resize_mode)
            files[SAVED_MODEL_DIR] = {
                "format": "saved_model",
                "signatures": ["serve", "serve_bytes", "serving_default"],
            }
        if quantization:
            source_dir = tmp / ".tflite_source"
            with step("tracing the batch-1 graph for TFLite", verbose=verbose):
                saved_model.write_saved_model(
                    model, source_dir, size, batch_size=1, with_bytes=False
                )
            for flavour in quantization:
                name = tflite.tflite_filename(flavour)
                with step(f"converting {name}", verbose=verbose):
                    data = tflite.convert_saved_model(
                        source_dir, flavour, representative_images=x_calibration, int8_io=int8_io
                    )
                    data = tflite.embed_metadata(data, {**embedded, "quantization": flavour})
                    write_tflite(tmp / name, data)
                files[name] = {
                    "format": "tflite",
                    "quantization": flavour,
                    "io": int8_io if flavour == "int8" and int8_io else "float32",
                }
                if flavour == "int8":
                    files[name]["calibration_images"] = int(len(x_calibration))
            shutil.rmtree(source_dir)
        if labels is not None:
            (tmp / LABELS_FILE).write_text("\n".join(labels) + "\n", encoding="utf-8")
            files[LABELS_FILE] = {"format": "labels"}
        for name, entry in files.items():
            entry["size_bytes"] = _size(tmp / name)

        info["verification"] = _verify(
            model, tmp, files, x_verify, y_verify, task, threads, data_source, verbose
        )
        problems = verify.parity_problems(info["verification"])
        if problems:
            info["verification"]["problems"] = problems
        verify.fail_or_warn(directory, len(x_verify), problems, require_parity)
        # Of the files as they will be renamed into place: every later load is checked on them.
        info["checksums"] = integrity.checksums(tmp, files)
        with step(f"writing {METADATA_FILE}", verbose=verbose):
            text = json.dumps(info, indent=2, default=_json_default)
            (tmp / METADATA_FILE).write_text(text + "\n", encoding="utf-8")
        if extra_files is not None:
            extra_files(tmp, {**info, "directory": str(directory)})
    if verbose:
        print(f"[export] wrote {directory}", flush=True)
    return {**info, "directory": str(directory)}


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


def _versions() -> dict[str, str]:
    import tensorflow as tf

    versions = {"keras": keras.__version__, "tensorflow": tf.__version__}
    try:
        from importlib.metadata import version

        versions["keras_transfer"] = version("keras-transfer")
    except Exception:  # noqa: BLE001 - not installed as a distribution
        pass
    return versions
