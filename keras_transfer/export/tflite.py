"""TFLite (LiteRT) conversion in four flavours, and JSON metadata embedded in the flatbuffer.

Conversion goes Keras model → `keras.export.ExportArchive` SavedModel with a fixed batch-1
``(1, H, W, 3)`` float32 input → `tf.lite.TFLiteConverter.from_saved_model` (the path Keras' own
``model.export(format="litert")`` takes), built-in TFLite ops only (no Flex/Select-TF ops, so the
files run on any LiteRT runtime). Batch 1 is what on-device code and the GPU/NNAPI delegates
expect; `keras_transfer.export.interpreter.TFLiteRunner` loops over larger batches.

======================  ====================================================================
``float32``             ``model.tflite``: no quantization.
``float16``             ``model.float16.tflite``: float16 weights (about half the size).
``dynamic``             ``model.dynamic.tflite``: int8 weights, float activations.
``int8``                ``model.int8.tflite``: full-integer ops, activations calibrated on
                        representative raw images; with ``int8_io="int8"``/``"uint8"`` the input
                        and output tensors are integer too (else float, with (de)quantize ops).
======================  ====================================================================

int8 activation ranges are measured by `keras_transfer.export.calibration` (exact min/max of
every tensor), not by TensorFlow's calibrator alone, whose ranges for inputs of in-place ops come
out too wide (tensorflow/tensorflow#127842); that cost 1.5-2 points on the ELPV Lite0 model.

Metadata in the file: the maintained converters do not write TFLite Model Metadata, and the
``tflite-support`` package that did (``MetadataWriter``/``MetadataPopulator``) is unmaintained
(last release 0.4.4, 2023) and needs ``protobuf<4``, which cannot live beside TensorFlow 2.21
(protobuf 7); ``ai-edge-litert`` ships no metadata writer either. So `embed_metadata` adds a
*custom* entry named ``keras_transfer`` to the flatbuffer's ``metadata`` table (JSON: input size,
dtype and range, normalization, labels, quantization), using TensorFlow's own
TF Lite's flatbuffer object API (`compat.tflite_internals`). Any runtime ignores unknown entries;
`read_embedded_metadata` (or any flatbuffer reader) gets it back. It is *not* the standard
``TFLITE_METADATA`` entry, so the TFLite Task library / Android Studio ML binding will not pick
up labels or normalization from it: ship ``labels.txt`` and ``metadata.json`` beside the file.
"""

from __future__ import annotations

import json
import os
import warnings
from typing import Any, Callable, Iterable

import numpy as np

from keras_transfer.errors import BadInputError
from keras_transfer.export import calibration

QUANTIZATIONS = ("float32", "float16", "dynamic", "int8")
INT8_IO = (None, "int8", "uint8")
METADATA_NAME = "keras_transfer"

_FILENAMES = {
    "float32": "model.tflite",
    "float16": "model.float16.tflite",
    "dynamic": "model.dynamic.tflite",
    "int8": "model.int8.tflite",
}


def tflite_filename(quantization: str) -> str:
    """The file name an export uses for one quantization.

    Example:
    >>> tflite_filename("int8")
    'model.int8.tflite'
    """
    if quantization not in _FILENAMES:
        raise BadInputError(f"quantization={quantization!r} is not one of {QUANTIZATIONS}.")
    return _FILENAMES[quantization]


def convert_saved_model(
    saved_model_dir: str | os.PathLike,
    quantization: str = "float32",
    *,
    representative_images: Any = None,
    int8_io: str | None = None,
    signature: str = "serve",
    float_fallback: bool = False,
) -> bytes:
    """Converts one signature of a SavedModel (``serve``: batch-1 images) to TFLite bytes,
    built-in ops only.

    ``representative_images`` are required for ``"int8"``: raw float32 images
    ``(N, H, W, 3)``, or for a signature of several inputs (token ids) a list of batch-1 feeds
    ``{input name: array}``. With `float_fallback`, ops that have no int8 kernel (e.g. a
    detector's ``NON_MAX_SUPPRESSION_V4``) stay float32 in an ``"int8"`` file instead of
    failing the conversion; the others are integer.

    Example:
    >>> import tempfile, keras
    >>> from keras_transfer.export.saved_model import write_saved_model
    >>> model = keras.Sequential(
    ...     [keras.Input((4, 4, 3)), keras.layers.Flatten(), keras.layers.Dense(2)])
    >>> path = tempfile.mkdtemp() + "/sm"
    >>> write_saved_model(model, path, (4, 4), batch_size=1, with_bytes=False)
    >>> convert_saved_model(path)[4:8]
    b'TFL3'
    """
    import tensorflow as tf

    tflite_filename(quantization)
    if int8_io not in INT8_IO:
        raise BadInputError(f"int8_io={int8_io!r} is not one of {INT8_IO}.")
    converter = tf.lite.TFLiteConverter.from_saved_model(
        str(saved_model_dir), signature_keys=[signature]
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantization != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantization == "int8":
        if representative_images is None or len(representative_images) == 0:
            raise BadInputError("int8 quantization needs representative images to calibrate on.")
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8] + (
            [tf.lite.OpsSet.TFLITE_BUILTINS] if float_fallback else [])
        io_type = {None: tf.float32, "int8": tf.int8, "uint8": tf.uint8}[int8_io]
        try:
            return calibration.quantize_int8(converter, representative_images, io_type)
        except calibration.CalibrationUnsupported as error:
            warnings.warn(
                f"int8: exact activation ranges unavailable ({error}); using TensorFlow's "
                "calibrator, whose ranges can be too wide (tensorflow/tensorflow#127842).",
                stacklevel=2,
            )
        converter.representative_dataset = as_representative(representative_images)
        if int8_io is not None:
            converter.inference_input_type = io_type
            converter.inference_output_type = io_type
    return bytes(converter.convert())


def embed_metadata(
    model_bytes: bytes, metadata: dict[str, Any], *, name: str = METADATA_NAME
) -> bytes:
    """Returns ``model_bytes`` with ``metadata`` (JSON) added as a named flatbuffer metadata entry.

    An entry of the same name is replaced. The model's tensors and ops are untouched.

    Example:
    >>> # tflite = embed_metadata(tflite, {"labels": ["cat", "dog"]})
    >>> # read_embedded_metadata(tflite)["labels"]  ->  ['cat', 'dog']
    """
    from keras_transfer.compat.tflite_internals import model_object, tflite_schema
    from keras_transfer.compat.tflite_internals import model_bytes as to_bytes

    schema = tflite_schema()

    model = model_object(model_bytes)
    payload = json.dumps(metadata, sort_keys=True).encode("utf-8")
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(payload, dtype=np.uint8)
    entries = [m for m in (model.metadata or []) if _entry_name(m) != name]
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = name
    entry.buffer = len(model.buffers) - 1
    model.metadata = entries + [entry]
    return to_bytes(model)


def _entry_name(entry) -> str:
    value = entry.name
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def read_embedded_metadata(
    model: bytes | str | os.PathLike, *, name: str = METADATA_NAME
) -> dict | None:
    """The JSON metadata `embed_metadata` put in a TFLite model (bytes or file path), or None.

    Example:
    >>> # read_embedded_metadata("export/model.tflite")["input"]["shape"]  ->  [224, 224, 3]
    """
    from keras_transfer.compat.tflite_internals import tflite_schema

    schema = tflite_schema()
    data = model if isinstance(model, (bytes, bytearray)) else open(model, "rb").read()
    root = schema.Model.GetRootAsModel(bytearray(data), 0)
    for i in range(root.MetadataLength()):
        entry = root.Metadata(i)
        entry_name = entry.Name().decode("utf-8") if entry.Name() is not None else ""
        if entry_name == name:
            payload = root.Buffers(entry.Buffer()).DataAsNumpy()
            return json.loads(bytes(payload).decode("utf-8"))
    return None


def as_representative(
    images: Iterable[np.ndarray] | np.ndarray | list[dict],
) -> Callable[[], Iterable[list[np.ndarray]]]:
    """Wraps raw images as a converter ``representative_dataset`` (one batch-1 input per image);
    a list of feeds ``{input name: array}`` is yielded as it is.

    Example:
    >>> next(iter(as_representative(np.zeros((2, 4, 4, 3)))()))[0].shape
    (1, 4, 4, 3)
    """
    if isinstance(images, list) and images and isinstance(images[0], dict):
        return lambda: iter(images)
    array = np.asarray(images, dtype="float32")

    def generator():
        for i in range(len(array)):
            yield [array[i : i + 1]]

    return generator
