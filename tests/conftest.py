"""Shared test settings: quiet TensorFlow, fixed seeds, an isolated cache."""

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# The repository tools (tools/readme_tables.py) are tested too; they are not installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)
    yield
    keras.backend.clear_session()


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network and an empty Keras cache, whatever machine the tests run on."""
    import socket

    from keras.src.backend import config

    def refuse(*args, **kwargs):
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(config, "_KERAS_DIR", str(tmp_path / "keras_home"))
    monkeypatch.setenv("KAGGLE_USERNAME", "")
    return tmp_path


def write_two_class_folder(root, per_class: int, shape: tuple[int, int, int]):
    """Two classes a tiny network can tell apart (bright and dark PNGs), one sub-folder each."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, low in (("bright", 150), ("dark", 0)):
        (root / name).mkdir()
        for i in range(per_class):
            pixels = rng.integers(low, low + 100, shape, dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root
