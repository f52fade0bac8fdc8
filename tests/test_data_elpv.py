"""The built-in ELPV dataset: the paper's 1,968 / 656 stratified protocol, both variants."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from keras_transfer.data import ELPV_CLASS_NAMES, elpv_arrays, load_builtin, load_elpv
from keras_transfer.data.elpv import _raw_elpv
from keras_transfer.errors import BadInputError, MissingDependencyError

pytest.importorskip("elpv_dataset")


@pytest.fixture(scope="module")
def four_class():
    return elpv_arrays("4class", channels=1)


def test_paper_split_sizes_and_stratification(four_class):
    x_train, y_train, x_test, y_test, names = four_class
    assert x_train.shape == (1968, 300, 300, 1) and x_test.shape == (656, 300, 300, 1)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.int64
    assert names == ELPV_CLASS_NAMES["4class"] and len(names) == 4
    totals = np.bincount(np.concatenate([y_train, y_test]))
    assert totals.tolist() == [1508, 295, 106, 715]
    # Each class keeps its share of the test set (stratified on class and mono/poly type).
    assert (np.abs(np.bincount(y_test, minlength=4) - totals * 0.25) <= 2).all()


def test_split_is_fixed_by_the_seed_and_shared_by_variants(four_class):
    x_train, y_train, x_test, y_test, _ = four_class
    again = elpv_arrays("4class", channels=1)
    assert (again[3] == y_test).all() and (again[2] == x_test).all()
    bx_train, by_train, bx_test, by_test, names = elpv_arrays("binary", channels=1)
    assert names == ["functional", "defective"]
    assert (bx_test == x_test).all() and (by_test == (y_test >= 2)).all()  # defective = p >= 0.5
    other = elpv_arrays("4class", seed=7, channels=1)
    assert not np.array_equal(other[2], x_test)


def test_load_elpv_pipeline_shapes_and_validation_split():
    data = load_elpv(image_size=(32, 32), batch_size=256, validation_split=0.1, verbose=False)
    assert data.sizes == {"train": 1771, "validation": 197, "test": 656}
    assert data.class_names == ELPV_CLASS_NAMES["4class"] and data.input_shape == (32, 32, 3)
    assert set(data.class_weights) == {0, 1, 2, 3} and data.class_weights[2] > data.class_weights[0]
    labels = []
    for images, y in data.test:
        assert images.dtype.name == "float32" and images.shape[1:] == (32, 32, 3)
        assert y.dtype.name == "int32"
        labels.append(y.numpy())
    assert float(images.numpy().max()) <= 255.0 and (images[..., 0] == images[..., 1]).numpy().all()
    _, _, _, y_test, _ = elpv_arrays("4class", channels=1)
    assert (np.concatenate(labels) == y_test).all()  # test order is stable


def test_builtin_registry():
    data = load_builtin("elpv_binary", image_size=(16, 16), verbose=False)
    assert data.class_names == ["functional", "defective"] and data.sizes == {
        "train": 1968,
        "test": 656,
    }
    with pytest.raises(BadInputError, match="unknown built-in dataset 'mnist'.*elpv"):
        load_builtin("mnist")


def test_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "elpv_dataset.utils", None)  # import fails
    with pytest.raises(MissingDependencyError, match=r"pip install 'keras-transfer\[assets\]'"):
        _raw_elpv.__wrapped__()  # bypass the per-process cache
