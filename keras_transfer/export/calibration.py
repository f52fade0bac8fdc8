"""Full-integer calibration with exact activation ranges (a workaround for a TFLite calibrator bug).

TensorFlow's calibrator (``tensorflow/lite/tools/optimize/calibration/calibrator.cc``, TF 2.21)
logs each op's *input* ranges a second time after the op ran. When the memory planner lets an
op write its output into an input's buffer (in-place ``ADD``/``SUB``/``MUL``), that second read
sees the output, so the input tensor gets the union of both ranges (tensorflow/tensorflow#127842).
In an EfficientNet-Lite this widens the input normalisation (``x / 255`` recorded as
[-0.5, 1] instead of [0, 1]: a third of the 256 grey levels merge) and every residual projection
(recorded with the range of the residual sum, about 2x too wide). On the ELPV Lite0 model the
int8 file lost 2.4 points of accuracy that way; with exact ranges it loses 0.8.

`quantize_int8` lets the converter build its calibrated float model (statistics from one image),
re-measures the min/max of every activation tensor on all representative images with an
interpreter that keeps every tensor (no buffer sharing, no delegate), writes them into the model
and quantizes it with the converter's own MLIR quantizer, the step ``converter.convert()`` runs
after calibration. Ranges are plain min/max over the images, as TensorFlow's calibrator records.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from keras_transfer.export.interpreter import default_threads


class CalibrationUnsupported(RuntimeError):
    """The installed TensorFlow lacks the hooks `quantize_int8` uses (the caller falls back)."""


def calibrated_tensors(model: bytes) -> list[int]:
    """Indices of the tensors of a calibrated TFLite model that carry min/max statistics.

    Example:
    >>> # calibrated_tensors(calibrated_model_bytes)  ->  [0, 107, 108, ...]
    """
    from keras_transfer.compat.tflite_internals import model_object

    graph = model_object(model).subgraphs[0]
    return [
        index
        for index, tensor in enumerate(graph.tensors)
        if tensor.quantization is not None
        and tensor.quantization.min is not None
        and len(tensor.quantization.min) > 0
    ]


# Additive attention / padding masks add about -1e9 (Keras' Softmax mask, SpanProbabilities):
# values at or below this are masks, not activations, and must not set a tensor's int8 range.
MASK_VALUE = -1e8
# Where a masked tensor's range starts below its lowest real value: exp(-30) ~ 1e-13, so a
# masked position still gets no probability after a softmax, while 256 levels still resolve
# the real values (a range of ~1e9 would round them all to one level).
MASK_MARGIN = 30.0


def _as_samples(samples: Any, names: list[str]) -> list[dict[str, np.ndarray]]:
    """Batch-1 feeds by input name: from an image array (one input) or a list of dicts."""
    if isinstance(samples, np.ndarray):
        if len(names) != 1:
            raise CalibrationUnsupported(f"an array calibrates one input, the model has {names}.")
        return [{names[0]: samples[i:i + 1]} for i in range(len(samples))]
    return [{name: np.asarray(sample[name]) for name in names} for sample in samples]


def activation_ranges(
    model: bytes, samples: Any, *, threads: int | None = None
) -> dict[int, tuple[float, float]]:
    """Min/max of every calibrated tensor of ``model`` (a float TFLite model) over `samples`.

    `samples`: raw images ``(N, H, W, 3)`` for a one-input model, or a list of batch-1 feeds
    ``{input name: array}`` (token ids of a text model). Runs the built-in kernels without
    delegates and with ``experimental_preserve_all_tensors``, so no tensor shares its buffer
    with another and each value read is the tensor's own. Values at or below `MASK_VALUE`
    (attention masks) are left out of a range: it then starts `MASK_MARGIN` below the lowest
    real value, where the masked values saturate.

    Example:
    >>> # activation_ranges(calibrated, x[:100])[107]  ->  (0.0, 1.0)
    """
    import tensorflow as tf

    indices = calibrated_tensors(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        interpreter = tf.lite.Interpreter(
            model_content=model,
            num_threads=threads or default_threads(),
            experimental_preserve_all_tensors=True,
            experimental_op_resolver_type=(
                tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
            ),
        )
    interpreter.allocate_tensors()
    inputs = _input_indices(interpreter)
    low = {index: np.inf for index in indices}
    high = {index: -np.inf for index in indices}
    masked: set[int] = set()
    for feed in _as_samples(samples, list(inputs)):
        for name, value in feed.items():
            details = inputs[name]
            if tuple(details["shape"]) != value.shape:
                interpreter.resize_tensor_input(details["index"], list(value.shape))
                interpreter.allocate_tensors()
                inputs = _input_indices(interpreter)
            interpreter.set_tensor(inputs[name]["index"], value.astype(details["dtype"]))
        interpreter.invoke()
        for index in indices:
            value = interpreter.get_tensor(index)
            real = value[value > MASK_VALUE]
            if real.size < value.size:
                masked.add(index)
            if real.size:
                low[index] = min(low[index], float(real.min()))
                high[index] = max(high[index], float(real.max()))
    return {index: (low[index] - (MASK_MARGIN if index in masked else 0.0), high[index])
            for index in indices if np.isfinite(low[index])}


def _input_indices(interpreter) -> dict[str, dict]:
    """Input details by name: the signature's names when there is one, else tensor names."""
    signatures = interpreter.get_signature_list()
    if signatures:
        runner = interpreter.get_signature_runner(next(iter(signatures)))
        by_index = {d["index"]: d for d in interpreter.get_input_details()}
        return {name: by_index[d["index"]] for name, d in runner.get_input_details().items()}
    return {d["name"]: d for d in interpreter.get_input_details()}


def with_ranges(model: bytes, ranges: dict[int, tuple[float, float]]) -> bytes:
    """``model`` with the min/max statistics of the tensors in ``ranges`` replaced.

    Example:
    >>> # with_ranges(calibrated, {107: (0.0, 1.0)})
    """
    from keras_transfer.compat.tflite_internals import model_bytes, model_object

    parsed = model_object(model)
    tensors = parsed.subgraphs[0].tensors
    for index, (low, high) in ranges.items():
        tensors[index].quantization.min = np.array([low], "float32")
        tensors[index].quantization.max = np.array([high], "float32")
    return model_bytes(parsed)


def quantize_int8(converter: Any, images: Any, io_type: Any) -> bytes:
    """Full-integer TFLite bytes from a configured ``tf.lite.TFLiteConverter``, exact ranges.

    ``converter`` has ``optimizations`` and ``supported_ops`` set for int8; ``images`` are the
    representative raw images ``(N, H, W, 3)``, or for a model of several inputs a list of
    batch-1 feeds ``{input name: array}`` (see `activation_ranges`); ``io_type`` is
    ``tf.float32`` (float input and output around the integer model), ``tf.int8`` or
    ``tf.uint8``. Raises `CalibrationUnsupported` when this TensorFlow lacks the calibrate-only
    conversion or ``mlir_quantize`` (`keras_transfer.compat.tflite_internals`).

    Example:
    >>> # quantize_int8(converter, x_calibration, tf.float32)[4:8]  ->  b'TFL3'
    """
    from keras_transfer.compat import tflite_internals

    problem = tflite_internals.calibration_unsupported(converter)
    if problem is not None:
        raise CalibrationUnsupported(problem)
    if isinstance(images, np.ndarray) or not isinstance(images, (list, tuple)):
        images = np.asarray(images, dtype="float32")
        first: Any = [images[:1]]
    else:
        first = images[0]  # a feed by input name (the signature's)
    # The converter's own statistics are replaced below, so one sample is enough here.
    converter.representative_dataset = lambda: iter([first])
    with tflite_internals.calibrating_only(converter):
        calibrated = bytes(converter.convert())
    exact = with_ranges(calibrated, activation_ranges(calibrated, images))
    return tflite_internals.quantize_calibrated(
        exact, per_channel=not tflite_internals.per_channel_disabled(converter), io_type=io_type)
