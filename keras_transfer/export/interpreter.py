"""Running a TFLite file: named inputs and outputs, (de)quantization, batching and timing.

Uses the LiteRT interpreter (``ai_edge_litert.interpreter.Interpreter``) when that package is
installed, else ``tf.lite.Interpreter`` (still in TensorFlow 2.21, deprecated; its warning is
silenced here). Both have the same API.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from keras_transfer.errors import BadInputError
from keras_transfer.export.integrity import check_tflite_bytes, read_tflite


def interpreter_class() -> tuple[type, str]:
    """The interpreter class to use and its name (``"ai_edge_litert"`` or ``"tf.lite"``).

    Example:
    >>> interpreter_class()[1] in ("ai_edge_litert", "tf.lite")
    True
    """
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai_edge_litert"
    except ImportError:
        import tensorflow as tf

        return tf.lite.Interpreter, "tf.lite"


def default_threads() -> int:
    """Interpreter threads used when none are given: the CPU count, at most 4.

    Example:
    >>> 1 <= default_threads() <= 4
    True
    """
    return max(1, min(4, os.cpu_count() or 1))


def quantize(x: np.ndarray, dtype: np.dtype, scale: float, zero_point: int) -> np.ndarray:
    """Float → integer tensor values: ``round(x / scale + zero_point)``, clipped to the dtype.

    Example:
    >>> quantize(np.array([0.0, 255.0]), np.uint8, 1.0, 0).tolist()
    [0, 255]
    """
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Integer → float tensor values: ``(q - zero_point) * scale``.

    Example:
    >>> dequantize(np.array([-128, 127], np.int8), 1 / 256, -128).tolist()
    [0.0, 0.99609375]
    """
    return ((q.astype("float32") - zero_point) * scale).astype("float32")


class TFLiteModel:
    """Runs any TFLite file on named numpy arrays and returns named numpy arrays.

    The one TFLite runner of keras-transfer: images, token ids, detections alike. The file is
    checked first (`keras_transfer.export.integrity.read_tflite`): a truncated or modified one
    raises `BadInputError` naming it instead of crashing the interpreter. Inputs and outputs
    are named by the file's signature (``serve``, ``serve_tokens``, …; the only one when there
    is one, else the tensor names). Integer (quantized) tensors get float inputs quantized and
    float outputs dequantized with their own scale and zero point; integer data tensors (token
    ids, class ids) pass as they are. A dynamic batch dimension is resized to the inputs'; a
    fixed one (batch 1 for image exports) is run chunk by chunk. ``latencies_ms`` holds the
    time of each ``invoke``.

    Example:
    >>> import tempfile, keras
    >>> from keras_transfer.export.saved_model import write_saved_model
    >>> from keras_transfer.export.tflite import convert_saved_model
    >>> model = keras.Sequential([keras.Input((2, 2, 3)), keras.layers.Flatten(),
    ...                           keras.layers.Dense(2)])
    >>> path = tempfile.mkdtemp() + "/sm"
    >>> write_saved_model(model, path, (2, 2), batch_size=1, with_bytes=False)
    >>> runner = TFLiteModel(convert_saved_model(path))
    >>> sorted(runner.input_names), runner({"images": np.zeros((3, 2, 2, 3))})["predictions"].shape
    (['images'], (3, 2))
    """

    def __init__(self, model: str | os.PathLike | bytes, *, threads: int | None = None,
                 signature: str | None = None):
        interpreter_cls, self.backend = interpreter_class()
        self.threads = threads or default_threads()
        self.path = None if isinstance(model, (bytes, bytearray)) else Path(model)
        if self.path is None:
            content = bytes(model)
            check_tflite_bytes(content)
        else:
            content = read_tflite(self.path)  # recorded size/sha256 and structure, checked
        # From memory, not model_path: the interpreter then runs its flatbuffer verifier too,
        # where a mapped truncated file can crash it. Kept: the interpreter reads these bytes.
        self._content = content
        from keras_transfer.console import filtered_stderr

        try:  # without the C++ "Created TensorFlow Lite XNNPACK delegate" line on stderr
            with warnings.catch_warnings(), filtered_stderr():
                warnings.simplefilter("ignore")
                self.interpreter = interpreter_cls(model_content=content,
                                                   num_threads=self.threads)
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise BadInputError(f"{self.name}: not a loadable TFLite model: {error}") from None
        self.signature, self._inputs, self._outputs = self._signature(signature)
        self.latencies_ms: list[float] = []

    @property
    def name(self) -> str:
        return str(self.path) if self.path is not None else "<bytes>"

    def _signature(self, wanted: str | None) -> tuple[str | None, dict[str, int], dict[str, int]]:
        """The signature used and its input / output tensor indices by name."""
        signatures = self.interpreter.get_signature_list()
        if wanted is not None and wanted not in signatures:
            raise BadInputError(f"{self.name}: no signature {wanted!r} (it has "
                                f"{sorted(signatures) or 'none'}).")
        key = wanted or ("serve" if "serve" in signatures else next(iter(signatures), None))
        if key is None:  # a file without signatures: the subgraph's tensor names
            return (None,
                    {d["name"]: d["index"] for d in self.interpreter.get_input_details()},
                    {d["name"]: d["index"] for d in self.interpreter.get_output_details()})
        from keras_transfer.compat.tflite_internals import signature_subgraph_index

        runner = self.interpreter.get_signature_runner(key)
        if signature_subgraph_index(runner) != 0:
            raise BadInputError(f"{self.name}: signature {key!r} is not the main graph; "
                                "keras-transfer exports have one signature per file.")
        return (key, {n: d["index"] for n, d in runner.get_input_details().items()},
                {n: d["index"] for n, d in runner.get_output_details().items()})

    @property
    def input_names(self) -> list[str]:
        """The input names, sorted."""
        return sorted(self._inputs)

    @property
    def output_names(self) -> list[str]:
        """The output names, sorted."""
        return sorted(self._outputs)

    def input_details(self, name: str) -> dict[str, Any]:
        """The interpreter's current details of input `name` (shape, dtype, quantization)."""
        index = self._inputs[name]
        return next(d for d in self.interpreter.get_input_details() if d["index"] == index)

    def output_details(self, name: str) -> dict[str, Any]:
        """The interpreter's current details of output `name`."""
        index = self._outputs[name]
        return next(d for d in self.interpreter.get_output_details() if d["index"] == index)

    def _feeds(self, inputs: Any) -> dict[str, np.ndarray]:
        if not isinstance(inputs, dict):
            if len(self._inputs) != 1:
                raise BadInputError(f"{self.name}: takes inputs {self.input_names}; pass a "
                                    "dict of arrays by name.")
            inputs = {next(iter(self._inputs)): inputs}
        missing = sorted(set(self._inputs) - set(inputs))
        if missing:
            raise BadInputError(f"{self.name}: missing input(s) {missing}; it takes "
                                f"{self.input_names}.")
        feeds = {name: np.asarray(inputs[name]) for name in self._inputs}
        counts = {len(value) for value in feeds.values()}
        if len(counts) != 1:
            raise BadInputError(f"{self.name}: inputs of different batch sizes {counts}.")
        return feeds

    def _fit_batch(self, feeds: dict[str, np.ndarray]) -> int:
        """Resizes dynamic inputs to `feeds`; returns the batch size each invoke takes."""
        changed = False
        for name, value in feeds.items():
            details = self.input_details(name)
            signature = details.get("shape_signature", details["shape"])
            if -1 in signature and tuple(details["shape"]) != value.shape:
                self.interpreter.resize_tensor_input(details["index"], list(value.shape))
                changed = True
        if changed:
            self.interpreter.allocate_tensors()
        return int(self.input_details(next(iter(feeds)))["shape"][0])

    def _prepare(self, details: dict[str, Any], value: np.ndarray) -> np.ndarray:
        dtype = np.dtype(details["dtype"])
        scale, zero_point = details["quantization"]
        if np.issubdtype(dtype, np.integer) and scale and np.issubdtype(value.dtype, np.floating):
            return quantize(value, dtype, scale, zero_point)
        return value.astype(dtype)

    def _finish(self, details: dict[str, Any], value: np.ndarray) -> np.ndarray:
        scale, zero_point = details["quantization"]
        if np.issubdtype(np.dtype(details["dtype"]), np.integer) and scale:
            return dequantize(value, scale, zero_point)
        return np.array(value, dtype="float32" if value.dtype.kind == "f" else value.dtype)

    def __call__(self, inputs: Any) -> dict[str, np.ndarray]:
        """Runs the file on `inputs` (a dict of arrays by input name, or one array for a file
        with one input), all with the same first (batch) dimension."""
        feeds = self._feeds(inputs)
        count = len(next(iter(feeds.values())))
        batch = self._fit_batch(feeds)
        if batch <= 0 or count % batch:
            raise BadInputError(f"{self.name}: model takes batches of {batch}, got {count}.")
        results: dict[str, list[np.ndarray]] = {name: [] for name in self._outputs}
        for start in range(0, count, batch):
            for name, value in feeds.items():
                details = self.input_details(name)
                self.interpreter.set_tensor(details["index"],
                                            self._prepare(details, value[start:start + batch]))
            begin = time.perf_counter()
            self.interpreter.invoke()
            self.latencies_ms.append((time.perf_counter() - begin) * 1000.0)
            for name in self._outputs:
                details = self.output_details(name)
                results[name].append(
                    self._finish(details, self.interpreter.get_tensor(details["index"])))
        return {name: np.concatenate(parts, axis=0) for name, parts in results.items()}

    def tensor_dtypes(self) -> set[str]:
        """Names of the dtypes of all tensors in the model (e.g. ``{"int8", "int32"}``)."""
        return {np.dtype(d["dtype"]).name for d in self.interpreter.get_tensor_details()}


class TFLiteRunner(TFLiteModel):
    """Callable that runs a one-input, one-output TFLite model (an image classifier or
    segmenter) on raw float32 images ``(N, H, W, 3)`` and returns its one output array.

    A thin use of `TFLiteModel` (checks, (de)quantization, batching and timing are its).

    Example:
    >>> # runner = TFLiteRunner("export/model.int8.tflite", threads=2)
    >>> # probabilities = runner(images)          # float32 (N, classes)
    """

    def __init__(self, model: str | os.PathLike | bytes, *, threads: int | None = None):
        super().__init__(model, threads=threads)
        if len(self._inputs) != 1 or len(self._outputs) != 1:
            raise BadInputError(f"{self.name}: expected one input and one output, got "
                                f"{len(self._inputs)} and {len(self._outputs)}.")

    @property
    def input(self) -> dict[str, Any]:
        """The details of the one input tensor."""
        return self.input_details(next(iter(self._inputs)))

    @property
    def output(self) -> dict[str, Any]:
        """The details of the one output tensor."""
        return self.output_details(next(iter(self._outputs)))

    @property
    def input_dtype(self) -> np.dtype:
        """dtype of the model's input tensor (float32, int8 or uint8)."""
        return np.dtype(self.input["dtype"])

    @property
    def output_dtype(self) -> np.dtype:
        """dtype of the model's output tensor."""
        return np.dtype(self.output["dtype"])

    @property
    def image_size(self) -> tuple[int, int]:
        """``(height, width)`` the model takes."""
        shape = self.input["shape"]
        return int(shape[1]), int(shape[2])

    def __call__(self, images: np.ndarray) -> np.ndarray:  # type: ignore[override]
        images = np.asarray(images, dtype="float32")
        return next(iter(super().__call__(images).values()))
