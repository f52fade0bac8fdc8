"""Checks that exported files compute what the Keras model computes, on the same raw images.

For each TFLite file: max / mean absolute difference of the (dequantized) outputs, top-1
agreement, the task metric when labels are given, the median ``invoke`` latency per image at
batch 1, and the file size. The SavedModel's ``serve`` signature is compared the same way.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import keras
import numpy as np

from keras_transfer.errors import BadInputError
from keras_transfer.export.interpreter import TFLiteRunner


def _labels_to_index(y: np.ndarray, num_classes: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == num_classes and num_classes > 1:
        return y.argmax(axis=1)
    return y.reshape(-1).astype("int64")


def score(predictions: np.ndarray, labels: np.ndarray | None, task: str) -> dict[str, float]:
    """The task metric of ``predictions`` against ``labels`` (empty without labels).

    ``single_label``: accuracy (labels are class ids or one-hot); ``multi_label``: binary accuracy
    at 0.5; ``regression``: mean absolute error.

    Example:
    >>> score(np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([1, 1]), "single_label")
    {'accuracy': 0.5}
    """
    if labels is None:
        return {}
    if task == "segmentation":
        from keras_transfer.evaluation.segmentation import segmentation_scores

        masks = _masks_like(np.asarray(labels), predictions.shape[1:3])
        scores = segmentation_scores(masks, predictions, predictions.shape[-1])
        return {"pixel_accuracy": scores["pixel_accuracy"], "mean_iou": scores["mean_iou"]}
    if task == "regression":
        target = np.asarray(labels).reshape(predictions.shape)
        return {"mae": float(np.mean(np.abs(predictions - target)))}
    if task == "multi_label":
        hits = (predictions >= 0.5) == (np.asarray(labels).reshape(predictions.shape) >= 0.5)
        return {"binary_accuracy": float(np.mean(hits))}
    index = _labels_to_index(labels, predictions.shape[-1])
    return {"accuracy": float(np.mean(predictions.argmax(axis=-1) == index))}


def _masks_like(masks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Masks ``(N, h, w[, 1])`` at ``size`` (nearest neighbour: class ids stay class ids)."""
    if masks.ndim == 4 and masks.shape[-1] == 1:
        masks = masks[..., 0]
    rows = (np.arange(size[0]) * masks.shape[1] // size[0])[:, None]
    cols = (np.arange(size[1]) * masks.shape[2] // size[1])[None, :]
    return masks[:, rows, cols]


def compare(reference: np.ndarray, outputs: np.ndarray, task: str) -> dict[str, float]:
    """Differences of two output arrays: max/mean abs diff, and top-1 agreement (classifiers)
    or per-pixel class agreement (segmentation).

    Example:
    >>> compare(np.array([[0.2, 0.8]]), np.array([[0.3, 0.7]]), "single_label")["top1_agreement"]
    1.0
    """
    diff = np.abs(reference.astype("float64") - outputs.astype("float64"))
    result = {"max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean())}
    if task == "segmentation":
        result["pixel_agreement"] = float(np.mean(reference.argmax(-1) == outputs.argmax(-1)))
    elif task == "multi_label":
        result["threshold_agreement"] = float(np.mean((reference >= 0.5) == (outputs >= 0.5)))
    elif task != "regression" and reference.shape[-1] > 1:
        result["top1_agreement"] = float(np.mean(reference.argmax(-1) == outputs.argmax(-1)))
    return result


def verify_tflite(
    path: str | os.PathLike,
    images: np.ndarray,
    reference: np.ndarray,
    *,
    labels: np.ndarray | None = None,
    task: str = "single_label",
    threads: int | None = None,
) -> dict[str, Any]:
    """Runs one TFLite file on ``images`` and compares with ``reference`` (the Keras outputs).

    Example:
    >>> # verify_tflite("export/model.int8.tflite", x, model.predict(x), labels=y)["top1_agreement"]
    """
    runner = TFLiteRunner(path, threads=threads)
    runner(images[:1])  # warm-up, not timed
    runner.latencies_ms.clear()
    outputs = runner(images)
    result: dict[str, Any] = {
        "input_dtype": runner.input_dtype.name,
        "output_dtype": runner.output_dtype.name,
        **compare(reference, outputs, task),
        **score(outputs, labels, task),
        "latency_ms_median": float(np.median(runner.latencies_ms)),
        "threads": runner.threads,
        "interpreter": runner.backend,
        "size_bytes": Path(path).stat().st_size,
    }
    return result


def verify_saved_model(
    directory: str | os.PathLike,
    images: np.ndarray,
    reference: np.ndarray,
    *,
    task: str = "single_label",
) -> dict[str, Any]:
    """Reloads a SavedModel and compares its ``serve`` signature with ``reference``.

    Example:
    >>> # verify_saved_model("export/saved_model", x, model.predict(x))["max_abs_diff"] < 1e-5
    """
    import tensorflow as tf

    loaded = tf.saved_model.load(str(directory))
    outputs = loaded.signatures["serve"](images=tf.constant(images, tf.float32))["predictions"]
    outputs = outputs.numpy()
    return {"signatures": sorted(loaded.signatures.keys()), **compare(reference, outputs, task)}


def keras_outputs(model: keras.Model, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """The model's outputs on raw images, in inference mode, as float32 numpy.

    Example:
    >>> model = keras.Sequential([keras.Input((2, 2, 3)), keras.layers.Flatten()])
    >>> keras_outputs(model, np.ones((1, 2, 2, 3))).shape
    (1, 12)
    """
    chunks = [
        keras.ops.convert_to_numpy(model(images[i : i + batch_size], training=False))
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(chunks).astype("float32")


# Float runtimes of the same graph differ by ~1e-6; more than this (of the outputs' scale) is
# a conversion that changed the model. Quantized files differ by design: recorded, not checked.
PARITY_TOLERANCE = 1e-3


def parity_problems(verification: dict[str, Any],
                    tolerance: float = PARITY_TOLERANCE) -> list[str]:
    """What the SavedModel and the float32 ``.tflite`` files do differently from the Keras
    model, from `export`'s verification record (empty when they reproduce it).

    Example:
    >>> record = {"reference_max_abs": 1.0, "saved_model": {"max_abs_diff": 1e-7},
    ...           "tflite": {"model.tflite": {"quantization": "float32", "max_abs_diff": 0.2}}}
    >>> parity_problems(record)
    ['model.tflite: max|diff| 2.00e-01 > 1.00e-03']
    """
    limit = tolerance * max(1.0, float(verification.get("reference_max_abs", 1.0)))
    checked = {"saved_model/": verification.get("saved_model")}
    checked.update({name: entry for name, entry in verification.get("tflite", {}).items()
                    if entry.get("quantization") == "float32"})
    return [f"{name}: max|diff| {entry['max_abs_diff']:.2e} > {limit:.2e}"
            for name, entry in checked.items()
            if entry is not None and not entry["max_abs_diff"] <= limit]  # NaN fails too


def fail_or_warn(what: str | os.PathLike, num_images: int, problems: list[str],
                 require_parity: bool) -> None:
    """Raises `BadInputError` (``require_parity``) or warns that exported files do not
    reproduce the Keras model on the verification images.

    Example:
    >>> fail_or_warn("export/model.tflite", 32, [], require_parity=True)  # nothing differs
    """
    if not problems:
        return
    message = (f"{what}: the export does not reproduce the Keras model on the {num_images} "
               f"verification images: {'; '.join(problems)}.")
    if require_parity:
        raise BadInputError(message + " Nothing was exported; pass require_parity=False to "
                            "export anyway (the differences are then recorded in "
                            "metadata.json under verification.problems).")
    warnings.warn(message + " Exported anyway (require_parity=False).", stacklevel=3)


def compare_named(reference: dict[str, np.ndarray], outputs: dict[str, np.ndarray]
                  ) -> dict[str, Any]:
    """Differences of two dicts of named outputs (text models, QA, language models): the
    largest |diff| over all of them, and the argmax agreement of each one with several
    classes (``top1_agreement`` for ``predictions``, ``<name>_agreement`` for the others).

    Example:
    >>> compare_named({"start": np.array([[0.2, 0.8]])}, {"start": np.array([[0.3, 0.7]])})
    {'max_abs_diff': 0.1..., 'start_agreement': 1.0}
    """
    result: dict[str, Any] = {"max_abs_diff": float(max(
        np.max(np.abs(np.asarray(value, "float32") - np.asarray(outputs[key], "float32")))
        for key, value in reference.items()))}
    for key, value in reference.items():
        value = np.asarray(value)
        if value.ndim >= 2 and value.shape[-1] > 1:
            name = "top1_agreement" if key == "predictions" else f"{key}_agreement"
            result[name] = float(np.mean(np.asarray(outputs[key]).argmax(-1) ==
                                         value.argmax(-1)))
    return result


def check_parity(verification: dict[str, Any], what: str | os.PathLike, num_samples: int,
                 require_parity: bool) -> None:
    """Records ``parity`` (and ``problems``) in an export's verification record, then fails
    or warns as `fail_or_warn` does: the rule every task's export follows.

    Example:
    >>> record = {"saved_model": {"max_abs_diff": 1e-7}, "tflite": {}}
    >>> check_parity(record, "export", 2, require_parity=True); record["parity"]
    True
    """
    problems = parity_problems(verification)
    verification["parity"] = not problems
    if problems:
        verification["problems"] = problems
    fail_or_warn(what, num_samples, problems, require_parity)
