"""Running a TFLite file on raw float32 images: (de)quantization, batching and timing.

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


class TFLiteRunner:
    """Callable that runs a TFLite model on raw float32 images ``(N, H, W, 3)``.

    The file is checked first (`keras_transfer.export.integrity.read_tflite`): a truncated or
    modified one raises `BadInputError` naming it instead of crashing the interpreter.
    Integer inputs are quantized and integer outputs dequantized with the tensors' own
    scale/zero point, so results compare directly with the Keras model's. A batch-1 model is
    run image by image; ``latencies_ms`` holds the time of each ``invoke``.

    Example:
    >>> # runner = TFLiteRunner("export/model.int8.tflite", threads=2)
    >>> # probabilities = runner(images)          # float32 (N, classes)
    """

    def __init__(self, model: str | os.PathLike | bytes, *, threads: int | None = None):
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
        kwargs: dict[str, Any] = {"num_threads": self.threads, "model_content": content}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.interpreter = interpreter_cls(**kwargs)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise BadInputError(
                f"{self.path or '<bytes>'}: not a loadable TFLite model: {error}"
            ) from None
        inputs = self.interpreter.get_input_details()
        outputs = self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise BadInputError(
                f"{self.path or '<bytes>'}: expected one input and one output, "
                f"got {len(inputs)} and {len(outputs)}."
            )
        self.input, self.output = inputs[0], outputs[0]
        self.latencies_ms: list[float] = []

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

    def _prepare(self, batch: np.ndarray) -> np.ndarray:
        dtype = self.input_dtype
        if np.issubdtype(dtype, np.integer):
            scale, zero_point = self.input["quantization"]
            return quantize(batch, dtype, scale, zero_point)
        return batch.astype(dtype)

    def _finish(self, out: np.ndarray) -> np.ndarray:
        if np.issubdtype(self.output_dtype, np.integer):
            scale, zero_point = self.output["quantization"]
            return dequantize(out, scale, zero_point)
        return out.astype("float32")

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images, dtype="float32")
        batch_size = int(self.input["shape"][0])
        dynamic = int(self.input.get("shape_signature", self.input["shape"])[0]) == -1
        if dynamic and batch_size != len(images):
            new_shape = [len(images), *self.input["shape"][1:]]
            self.interpreter.resize_tensor_input(self.input["index"], new_shape)
            self.interpreter.allocate_tensors()
            self.input = self.interpreter.get_input_details()[0]
            self.output = self.interpreter.get_output_details()[0]
            batch_size = len(images)
        results = []
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            if len(chunk) != batch_size:
                raise BadInputError(
                    f"{self.path or '<bytes>'}: model takes batches of {batch_size}, "
                    f"got {len(chunk)}."
                )
            self.interpreter.set_tensor(self.input["index"], self._prepare(chunk))
            begin = time.perf_counter()
            self.interpreter.invoke()
            self.latencies_ms.append((time.perf_counter() - begin) * 1000.0)
            results.append(self._finish(self.interpreter.get_tensor(self.output["index"])))
        return np.concatenate(results, axis=0)

    def tensor_dtypes(self) -> set[str]:
        """Names of the dtypes of all tensors in the model (e.g. ``{"int8", "int32"}``)."""
        return {np.dtype(d["dtype"]).name for d in self.interpreter.get_tensor_details()}
