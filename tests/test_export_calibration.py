"""int8 calibration: exact activation ranges (TFLite calibrator workaround) and sample selection."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_transfer.export import TFLiteRunner, export
from keras_transfer.export import calibration
from keras_transfer.export.images import collect_samples
from keras_transfer.export.saved_model import write_saved_model
from keras_transfer.export.tflite import convert_saved_model
from keras_transfer.layers import ImagePreprocessing

SIZE = 8


def _model() -> keras.Model:
    """x / 255 - 0.5 (an in-place SUB after a MUL), then a small conv net."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = ImagePreprocessing("custom", mean=[0.5] * 3, std=[0.25] * 3, scale=1 / 255)(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs)


def _sorted_images(per_class: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Images sorted by class; class c has its channel c bright (and pixels 0 and 255 occur)."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), per_class)
    x = rng.integers(0, 90, (len(y), SIZE, SIZE, 3)).astype("float32")
    x[np.arange(len(y)), :, :, y] = 255.0
    x[:, 0, 0, :] = 0.0
    return x, y


def _first_op_output_scale(model_bytes: bytes, op_name: str) -> float:
    from tensorflow.lite.python import schema_py_generated as schema

    root = schema.Model.GetRootAsModel(bytearray(model_bytes), 0)
    codes = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    graph = root.Subgraphs(0)
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = root.OperatorCodes(op.OpcodeIndex())
        if codes[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())] == op_name:
            return float(graph.Tensors(op.Outputs(0)).Quantization().ScaleAsNumpy()[0])
    raise AssertionError(f"no {op_name} op in the model")


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    model = _model()
    path = tmp_path_factory.mktemp("calibration") / "sm"
    write_saved_model(model, path, (SIZE, SIZE), batch_size=1, with_bytes=False)
    return model, path


def test_int8_ranges_are_exact_min_max(source):
    model, path = source
    x, _ = _sorted_images()
    data = convert_saved_model(path, "int8", representative_images=x)
    # x / 255 lies in [0, 1]: one grey level per int8 step. TensorFlow's calibrator alone records
    # [-0.5, 1] here (the SUB after it runs in place), merging a third of the levels.
    assert _first_op_output_scale(data, "MUL") * 255 == pytest.approx(1.0, abs=1e-3)
    runner = TFLiteRunner(data, threads=1)
    assert runner.tensor_dtypes() >= {"int8"}
    reference = model.predict(x, verbose=0)
    assert np.abs(runner(x) - reference).max() < 0.02


def test_activation_ranges_match_the_float_graph(source):
    import tensorflow as tf
    from tensorflow.lite.tools import flatbuffer_utils

    _, path = source
    x, _ = _sorted_images()
    converter = tf.lite.TFLiteConverter.from_saved_model(str(path), signature_keys=["serve"])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: iter([[x[:1]]])
    converter._experimental_calibrate_only = True
    calibrated = bytes(converter.convert())
    ranges = calibration.activation_ranges(calibrated, x, threads=1)
    assert set(ranges) == set(calibration.calibrated_tensors(calibrated))
    values = np.array(list(ranges.values()))
    for expected in ((0.0, 255.0), (0.0, 1.0), (-0.5, 0.5)):  # input, x / 255, x / 255 - 0.5
        assert np.abs(values - expected).max(axis=1).min() < 1e-5, expected
    rewritten = calibration.with_ranges(calibrated, {i: (-1.0, 2.0) for i in ranges})
    graph = flatbuffer_utils.convert_bytearray_to_object(bytearray(rewritten)).subgraphs[0]
    for i in ranges:
        assert (graph.tensors[i].quantization.min[0], graph.tensors[i].quantization.max[0]) == (
            -1.0, 2.0)


def test_calibration_spreads_over_sorted_data_and_records_count(source, tmp_path, monkeypatch):
    model, _ = source
    x, y = _sorted_images()
    head_x, head_y = collect_samples((x, y), 6)
    spread_x, spread_y = collect_samples((x, y), 6, spread=True)
    assert set(head_y.tolist()) == {0} and set(spread_y.tolist()) == {0, 1, 2}
    np.testing.assert_array_equal(spread_x, x[[0, 10, 20, 30, 40, 50]])

    seen = []
    real = calibration.quantize_int8

    def spy(converter, images, io_type):
        seen.append(np.asarray(images))
        return real(converter, images, io_type)

    monkeypatch.setattr(calibration, "quantize_int8", spy)
    info = export(model, tmp_path / "e", formats="tflite", quantization="int8",
                  representative_data=x, verify_data=(x, y), num_calibration=6,
                  num_verify=6, threads=1, verbose=False)
    assert len(seen) == 1 and len(seen[0]) == 6
    assert set(seen[0].reshape(6, -1, 3).max(axis=1).argmax(axis=1).tolist()) == {0, 1, 2}
    assert info["files"]["model.int8.tflite"]["calibration_images"] == 6


def test_falls_back_to_tflite_calibrator_with_a_warning(source, monkeypatch):
    _, path = source
    x, _ = _sorted_images()

    def unsupported(converter, images, io_type):
        raise calibration.CalibrationUnsupported("no hooks in this TensorFlow")

    monkeypatch.setattr(calibration, "quantize_int8", unsupported)
    with pytest.warns(UserWarning, match="tensorflow/tensorflow#127842"):
        data = convert_saved_model(path, "int8", representative_images=x, int8_io="int8")
    runner = TFLiteRunner(data, threads=1)
    assert runner.input_dtype == np.int8 and runner.output_dtype == np.int8
