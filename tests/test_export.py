"""Export to Keras / SavedModel / TFLite (4 quantizations), verification, atomicity and predict."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_transfer.errors import BadInputError
from keras_transfer.export import (
    TFLiteRunner,
    export,
    load_artifact,
    predict,
    read_embedded_metadata,
)
from keras_transfer.export import core as export_core
from keras_transfer.export import saved_model as export_saved_model
from keras_transfer.layers import ImagePreprocessing

LABELS = ["red", "green", "blue"]
SIZE = 32
TFLITE_FILES = ("model.tflite", "model.float16.tflite", "model.dynamic.tflite", "model.int8.tflite")


def _images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw uint8-valued images whose class is the brightest channel."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.integers(0, 90, (n, SIZE, SIZE, 3)).astype("float32")
    x[np.arange(n), :, :, y] += rng.integers(120, 165, (n, 1, 1)).astype("float32")
    return x, y


def _tiny_model() -> keras.Model:
    inputs = keras.Input((SIZE, SIZE, 3))
    x = ImagePreprocessing("tf")(inputs)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(64, 3, strides=2, padding="same")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(128, 3, strides=2, padding="same", activation="relu")(x)  # 74k weights
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(256, activation="relu")(x)  # 33k weights
    outputs = keras.layers.Dense(3, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="tiny")


def _tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def data():
    return _images(160, seed=0)


@pytest.fixture(scope="module")
def model(data):
    keras.utils.set_random_seed(0)
    x, y = data
    net = _tiny_model()
    net.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    net.fit(x, y, epochs=3, batch_size=32, verbose=0)
    return net


@pytest.fixture(scope="module")
def exported(model, data, tmp_path_factory):
    x, y = data
    directory = tmp_path_factory.mktemp("exports") / "tiny"
    info = export(
        model,
        directory,
        quantization="all",
        labels=LABELS,
        verify_data=(x[:24], y[:24]),
        representative_data=x[:64],
        int8_io="int8",
        metadata={"backbone": "tiny-cnn", "metrics": {"val_accuracy": 1.0}},
        num_verify=24,
        threads=1,
    )
    return directory, info


@pytest.fixture(scope="module")
def png_files(data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("pngs")
    x, _ = data
    paths = []
    for i in range(3):
        path = folder / f"image_{i}.png"
        Image.fromarray(x[100 + i].astype("uint8")).save(path)
        paths.append(path)
    return paths


def test_export_layout_and_metadata(exported):
    directory, info = exported
    names = {p.name for p in directory.iterdir()}
    assert names == {"model.keras", "saved_model", "labels.txt", "metadata.json", *TFLITE_FILES}
    assert (directory / "labels.txt").read_text().splitlines() == LABELS
    meta = json.loads((directory / "metadata.json").read_text())
    assert meta["model"]["input"] == {
        "shape": [SIZE, SIZE, 3], "dtype": "float32", "range": [0.0, 255.0],
        "layout": "NHWC", "color": "RGB", "resize_mode": "stretch",
    }
    assert meta["model"]["normalization"]["mode"] == "tf"
    assert meta["model"]["normalization"]["mean"] == [127.5] * 3
    assert meta["model"]["output"]["task"] == "single_label"
    assert meta["labels"] == LABELS
    assert meta["user"]["backbone"] == "tiny-cnn"
    assert meta["quantization"] == ["float32", "float16", "dynamic", "int8"]
    for name in ("model.keras", *TFLITE_FILES):
        assert meta["files"][name]["size_bytes"] == (directory / name).stat().st_size
    verification = meta["verification"]
    assert verification["num_samples"] == 24 and verification["labelled"]
    assert verification["threads"] == 1
    assert set(verification["tflite"]) == set(TFLITE_FILES)
    for entry in verification["tflite"].values():
        assert entry["latency_ms_median"] > 0
        assert 0.0 <= entry["accuracy"] <= 1.0
    assert verification["keras"]["accuracy"] >= 0.9
    assert info["verification"] == verification
    # Nothing left beside the export (temporary or old folders).
    assert [p.name for p in directory.parent.iterdir()] == ["tiny"]


def test_keras_file_reloads(exported, model, data):
    directory, _ = exported
    reloaded = keras.saving.load_model(directory / "model.keras")
    x = data[0][:8]
    expected = model.predict(x, verbose=0)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), expected, atol=1e-6)


def test_saved_model_serve_and_serve_bytes(exported, model, data):
    directory, info = exported
    loaded = tf.saved_model.load(str(directory / "saved_model"))
    assert {"serve", "serve_bytes", "serving_default"} <= set(loaded.signatures)
    x = data[0][:4]
    expected = model.predict(x, verbose=0)
    served = loaded.signatures["serve"](images=tf.constant(x))["predictions"].numpy()
    np.testing.assert_allclose(served, expected, atol=1e-5)
    encoded = tf.stack([tf.io.encode_png(tf.constant(image.astype("uint8"))) for image in x])
    from_bytes = loaded.signatures["serve_bytes"](image_bytes=encoded)["predictions"].numpy()
    np.testing.assert_allclose(from_bytes, expected, atol=1e-5)
    assert info["verification"]["saved_model"]["max_abs_diff"] < 1e-5


def test_float32_tflite_matches_keras(exported, model, data):
    directory, info = exported
    x = data[0][:24]
    runner = TFLiteRunner(directory / "model.tflite", threads=1)
    assert runner.input_dtype == np.float32 and tuple(runner.input["shape"]) == (1, SIZE, SIZE, 3)
    outputs, expected = runner(x), model.predict(x, verbose=0)
    assert np.abs(outputs - expected).max() < 1e-4
    assert (outputs.argmax(1) == expected.argmax(1)).all()
    entry = info["verification"]["tflite"]["model.tflite"]
    assert entry["top1_agreement"] == 1.0 and entry["max_abs_diff"] < 1e-4


def test_quantized_files_are_small_and_agree(exported):
    directory, info = exported
    float_size = (directory / "model.tflite").stat().st_size
    assert (directory / "model.int8.tflite").stat().st_size <= 0.3 * float_size
    assert (directory / "model.dynamic.tflite").stat().st_size <= 0.3 * float_size
    assert (directory / "model.float16.tflite").stat().st_size <= 0.6 * float_size
    for name in ("model.float16.tflite", "model.dynamic.tflite", "model.int8.tflite"):
        entry = info["verification"]["tflite"][name]
        assert entry["top1_agreement"] >= 0.9, (name, entry)
        assert entry["max_abs_diff"] < 0.1, (name, entry)


def test_int8_model_is_full_integer(exported, model, data):
    directory, info = exported
    runner = TFLiteRunner(directory / "model.int8.tflite", threads=1)
    assert runner.input_dtype == np.int8 and runner.output_dtype == np.int8
    scale, zero_point = runner.output["quantization"]
    assert scale > 0
    assert runner.tensor_dtypes() <= {"int8", "int32"}  # int32: biases and shape tensors
    # Dequantized outputs are probabilities close to the Keras model's.
    x = data[0][:8]
    probabilities = runner(x)
    np.testing.assert_allclose(probabilities.sum(1), 1.0, atol=0.05)
    assert np.abs(probabilities - model.predict(x, verbose=0)).max() < 0.1
    assert info["verification"]["tflite"]["model.int8.tflite"]["input_dtype"] == "int8"


def test_tflite_embedded_metadata(exported):
    directory, _ = exported
    embedded = read_embedded_metadata(directory / "model.int8.tflite")
    assert embedded["labels"] == LABELS
    assert embedded["quantization"] == "int8"
    assert embedded["input"]["shape"] == [SIZE, SIZE, 3]
    assert embedded["normalization"]["mode"] == "tf"


def test_uint8_io_and_unlabelled_verification(model, data, tmp_path):
    x, _ = data
    info = export(
        model,
        tmp_path / "u8",
        formats="tflite",
        quantization="int8",
        int8_io="uint8",
        verify_data=tf.data.Dataset.from_tensor_slices(x[:40]).batch(5),  # calibrates on it too
        num_verify=8,
        num_calibration=40,
        verbose=False,
    )
    names = sorted(p.name for p in (tmp_path / "u8").iterdir())
    assert names == ["metadata.json", "model.int8.tflite"]
    runner = TFLiteRunner(tmp_path / "u8" / "model.int8.tflite")
    assert runner.input_dtype == np.uint8 and runner.output_dtype == np.uint8
    entry = info["verification"]["tflite"]["model.int8.tflite"]
    assert entry["input_dtype"] == "uint8" and "accuracy" not in entry
    assert entry["top1_agreement"] >= 0.85


def test_failed_export_keeps_previous_export(model, tmp_path, monkeypatch):
    target = tmp_path / "exp"
    export(model, target, formats=("keras", "saved_model"), num_verify=2, verbose=False)
    before = _tree_digest(target)

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(export_saved_model, "write_saved_model", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        export(
            model, target, formats=("keras", "saved_model"), labels=LABELS, num_verify=2,
            verbose=False,
        )
    assert _tree_digest(target) == before
    assert [p.name for p in tmp_path.iterdir()] == ["exp"]  # no temporary folders left

    monkeypatch.setattr(export_core, "write_tflite", broken)
    with pytest.raises(RuntimeError):
        export(model, tmp_path / "fresh", formats="tflite", num_verify=2, verbose=False)
    assert [p.name for p in tmp_path.iterdir()] == ["exp"]


def test_bad_arguments_write_nothing(model, tmp_path):
    with pytest.raises(BadInputError, match="representative_data"):
        export(model, tmp_path / "a", quantization="int8", verbose=False)
    with pytest.raises(BadInputError, match="labels"):
        export(model, tmp_path / "a", formats="keras", labels=["x"], verbose=False)
    with pytest.raises(BadInputError, match="int8_io"):
        export(model, tmp_path / "a", formats="tflite", int8_io="int4", verbose=False)
    assert list(tmp_path.iterdir()) == []


def test_predict_every_format(exported, png_files, data):
    directory, _ = exported
    artifacts = [directory, directory / "model.keras", directory / "saved_model"]
    artifacts += [directory / name for name in TFLITE_FILES]
    results = {str(a): predict(a, png_files, top_k=2) for a in artifacts}
    expected_top1 = [LABELS[int(i)] for i in data[1][100:103]]
    for artifact, result in results.items():
        assert len(result) == len(png_files) and all(len(r) == 2 for r in result), artifact
        assert [r[0][0] for r in result] == expected_top1, artifact
        assert all(r[0][1] >= r[1][1] for r in result), artifact
    # Arrays work too, and are resized to the model's input size.
    big = np.repeat(np.repeat(data[0][100:101], 2, axis=1), 2, axis=2)  # (1, 64, 64, 3)
    assert predict(directory / "model.tflite", big, top_k=1)[0][0][0] == expected_top1[0]


def test_load_artifact_and_labels_override(exported):
    directory, _ = exported
    artifact = load_artifact(directory / "model.int8.tflite")
    assert artifact.kind == "tflite" and artifact.image_size == (SIZE, SIZE)
    assert artifact.labels == LABELS
    assert load_artifact(directory / "saved_model").labels == LABELS
    result = predict(artifact, np.zeros((SIZE, SIZE, 3)), top_k=5, labels=["a", "b", "c"])
    assert len(result[0]) == 3 and {name for name, _ in result[0]} == {"a", "b", "c"}


def test_predict_errors_name_the_file(exported, tmp_path):
    directory, _ = exported
    missing = tmp_path / "nope.tflite"
    with pytest.raises(BadInputError, match="nope.tflite"):
        predict(missing, np.zeros((1, SIZE, SIZE, 3)))
    not_an_image = tmp_path / "broken.png"
    not_an_image.write_text("not a png")
    with pytest.raises(BadInputError, match="broken.png"):
        predict(directory / "model.tflite", [not_an_image])
    not_a_model = tmp_path / "fake.tflite"
    not_a_model.write_bytes(b"\x00" * 64)
    with pytest.raises(BadInputError, match="fake.tflite"):
        predict(not_a_model, np.zeros((1, SIZE, SIZE, 3)))


def test_collect_samples_accepts_common_inputs(data, png_files):
    from keras_transfer.export.images import collect_samples

    x, y = data
    size = (SIZE, SIZE)
    got_x, got_y = collect_samples((x, y), 5, size)
    assert got_x.shape == (5, SIZE, SIZE, 3) and got_y.tolist() == y[:5].tolist()
    got_x, got_y = collect_samples(tf.data.Dataset.from_tensor_slices((x, y)), 4, size)  # unbatched
    assert got_x.shape == (4, SIZE, SIZE, 3) and got_y.tolist() == y[:4].tolist()
    one_hot = keras.utils.to_categorical(y, 3)
    batched = tf.data.Dataset.from_tensor_slices((x, one_hot)).batch(4)
    got_x, got_y = collect_samples(batched, 6, size)
    assert got_x.shape == (6, SIZE, SIZE, 3) and got_y.shape == (6, 3)
    got_x, got_y = collect_samples(([str(p) for p in png_files], [0, 1, 2]), 2, size)
    np.testing.assert_array_equal(got_x, x[100:102])  # PNG round trip is lossless
    assert got_y.tolist() == [0, 1]
    got_x, got_y = collect_samples([x[0], x[1]], 10, (16, 16))
    assert got_x.shape == (2, 16, 16, 3) and got_y is None
    with pytest.raises(BadInputError, match="verify_data"):
        collect_samples(np.zeros((2, 8, 8)), 2, size, what="verify_data")
