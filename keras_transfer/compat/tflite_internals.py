"""TF Lite / LiteRT internals, behind one small API (written for TensorFlow 2.18–2.21, and the
``ai_edge_litert`` interpreter where it is installed).

- Metadata and integrity checks read and write the flatbuffer with TensorFlow's generated schema
  classes (``tensorflow.lite.python.schema_py_generated``), which have no public name.
- Exact-range int8 quantization (`keras_transfer.export.calibration`) has the converter only
  calibrate (``converter._experimental_calibrate_only``), replaces the ranges, then quantizes
  with ``tensorflow.lite.python.convert.mlir_quantize``, per tensor when the converter says so
  (``converter._experimental_disable_per_channel``).
- A signature runner's subgraph (``runner._subgraph_index``) tells the main graph from others.
- Editing a converted model (metadata entries, calibrated ranges) goes through the flatbuffer
  object API of ``tensorflow.lite.tools.flatbuffer_utils`` (`model_object`, `model_bytes`).

Where TensorFlow's TF Lite is missing (a LiteRT-only install) or a converter lacks these, the
callers fall back as before; `check()` verifies them all on the installed versions.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
from types import ModuleType
from typing import Any, Iterator

from keras_transfer.compat import incompatible

# TensorFlow is imported where used: the export modules calling these load it only when needed.

_SCHEMA_CLASSES = ("Model", "ModelT", "BufferT", "MetadataT")
_QUANTIZE_ARGUMENTS = ("input_data_str", "disable_per_channel", "input_data_type",
                       "output_data_type")
_CONVERTER_FLAGS = ("_experimental_calibrate_only", "_experimental_disable_per_channel")


def check() -> None:
    """Raises `CompatError` unless the installed TensorFlow (and LiteRT, when installed) have
    every internal used here.

    Example:
    >>> check()
    """
    import tensorflow as tf

    try:
        schema = tflite_schema()
        from tensorflow.lite.python.convert import mlir_quantize
        from tensorflow.lite.python.interpreter import SignatureRunner
        from tensorflow.lite.tools import flatbuffer_utils
    except ImportError as error:
        raise incompatible("tflite_internals", f"ImportError: {error}", ("tensorflow",)) from error
    missing = [name for name in _SCHEMA_CLASSES if not hasattr(schema, name)]
    if missing or not hasattr(schema.ModelT, "InitFromPackedBuf") \
            or not hasattr(schema.Model, "GetRootAsModel"):
        raise incompatible("tflite_internals", "schema_py_generated lacks "
                           f"{missing or 'ModelT.InitFromPackedBuf / Model.GetRootAsModel'}",
                           ("tensorflow",))
    if not all(hasattr(flatbuffer_utils, name) for name in (
            "convert_bytearray_to_object", "convert_object_to_bytearray")):
        raise incompatible("tflite_internals", "flatbuffer_utils lacks the object conversions",
                           ("tensorflow",))
    arguments = inspect.signature(mlir_quantize).parameters
    if any(name not in arguments for name in _QUANTIZE_ARGUMENTS):
        raise incompatible("tflite_internals", "convert.mlir_quantize no longer takes "
                           f"{', '.join(_QUANTIZE_ARGUMENTS)}", ("tensorflow",))
    converter = tf.lite.TFLiteConverter([])
    for flag in _CONVERTER_FLAGS:
        if not isinstance(getattr(converter, flag, None), bool):
            raise incompatible("tflite_internals", f"TFLiteConverter has no `{flag}` flag",
                               ("tensorflow",))
    _check_runner(SignatureRunner, "tensorflow")
    if importlib.util.find_spec("ai_edge_litert") is not None:
        from ai_edge_litert.interpreter import SignatureRunner as LiteRTSignatureRunner

        _check_runner(LiteRTSignatureRunner, "ai_edge_litert")


def _check_runner(runner_class: type, library: str) -> None:
    try:
        source = inspect.getsource(runner_class.__init__)
    except (OSError, TypeError):  # installed without sources: nothing to read it from
        return
    if "self._subgraph_index" not in source:
        raise incompatible("tflite_internals", f"{runner_class.__module__}.SignatureRunner sets "
                           "no `_subgraph_index`", (library,))


def model_object(model: bytes) -> Any:
    """A ``.tflite`` flatbuffer as TF Lite's mutable object tree (``ModelT``).

    Example:
    >>> # model_object(open("model.tflite", "rb").read()).subgraphs[0].tensors
    """
    from tensorflow.lite.tools import flatbuffer_utils

    return flatbuffer_utils.convert_bytearray_to_object(bytearray(model))


def model_bytes(model: Any) -> bytes:
    """`model_object`'s tree written back to ``.tflite`` bytes.

    Example:
    >>> # model_bytes(model_object(data)) == data  ->  a round trip
    """
    from tensorflow.lite.tools import flatbuffer_utils

    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def tflite_schema() -> ModuleType:
    """TF Lite's flatbuffer schema classes (``Model``, ``ModelT``, ``BufferT``, ``MetadataT``…):
    TensorFlow's ``schema_py_generated``. ImportError without TensorFlow's TF Lite.

    Example:
    >>> tflite_schema().ModelT.__name__
    'ModelT'
    """
    from tensorflow.lite.python import schema_py_generated

    return schema_py_generated


def calibration_unsupported(converter: Any) -> str | None:
    """Why `calibrating_only` / `quantize_calibrated` cannot serve `converter` with this
    TensorFlow, or None when they can.

    Example:
    >>> import tensorflow as tf
    >>> calibration_unsupported(tf.lite.TFLiteConverter([])) is None
    True
    """
    try:
        from tensorflow.lite.python.convert import mlir_quantize  # noqa: F401
    except ImportError as error:
        return str(error)
    if not hasattr(converter, "_experimental_calibrate_only"):
        return "TFLiteConverter has no _experimental_calibrate_only."
    return None


@contextlib.contextmanager
def calibrating_only(converter: Any) -> Iterator[Any]:
    """Inside, ``converter.convert()`` only calibrates: float model bytes carrying the
    representative data's min/max per tensor, for `quantize_calibrated` to quantize.

    Example:
    >>> import tensorflow as tf
    >>> converter = tf.lite.TFLiteConverter([])
    >>> with calibrating_only(converter):
    ...     converter._experimental_calibrate_only
    True
    >>> converter._experimental_calibrate_only
    False
    """
    converter._experimental_calibrate_only = True
    try:
        yield converter
    finally:
        converter._experimental_calibrate_only = False


def per_channel_disabled(converter: Any) -> bool:
    """Whether `converter` was told to quantize weights per tensor rather than per channel.

    Example:
    >>> import tensorflow as tf
    >>> per_channel_disabled(tf.lite.TFLiteConverter([]))
    False
    """
    return bool(getattr(converter, "_experimental_disable_per_channel", False))


def quantize_calibrated(calibrated: bytes, *, per_channel: bool, io_type: Any) -> bytes:
    """Full-integer TFLite bytes from a calibrated model (`calibrating_only`), its inputs and
    outputs of `io_type` (``tf.float32``, ``tf.int8`` or ``tf.uint8``).

    Example:
    >>> # quantize_calibrated(calibrated, per_channel=True, io_type=tf.int8)[4:8]  ->  b'TFL3'
    """
    from tensorflow.lite.python.convert import mlir_quantize

    return bytes(mlir_quantize(calibrated, disable_per_channel=not per_channel,
                               input_data_type=io_type, output_data_type=io_type))


def signature_subgraph_index(runner: Any) -> int:
    """The subgraph a signature runner runs (0: the main graph).

    Example:
    >>> import warnings, tensorflow as tf
    >>> module = tf.Module()
    >>> module.f = tf.function(lambda x: x + 1, input_signature=[tf.TensorSpec([1])])
    >>> converter = tf.lite.TFLiteConverter.from_concrete_functions(
    ...     [module.f.get_concrete_function()], module)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
    ...     interpreter = tf.lite.Interpreter(model_content=converter.convert())
    >>> signature_subgraph_index(interpreter.get_signature_runner())
    0
    """
    return getattr(runner, "_subgraph_index", 0)  # runners of older interpreters: the main one
