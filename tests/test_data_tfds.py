"""from_tfds: ImageFolder-style trees (validated), prepared local builders, clear offline errors."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image

from keras_transfer.data import DatasetUnavailableError, from_tfds, tfds_source
from keras_transfer.errors import BadInputError

tfds = pytest.importorskip("tensorflow_datasets")


def test_image_folder_tree_uses_its_splits_and_skips_bad_files(tmp_path):
    for split, count in [("train", 4), ("test", 2)]:
        for name in ["ants", "bees"]:
            for i in range(count):
                (tmp_path / split / name).mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (20, 12), (i * 40, 0, 0)).save(
                    tmp_path / split / name / f"{i}.png"
                )
    broken = tmp_path / "test" / "bees" / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    data = from_tfds(tmp_path, image_size=(8, 8), validation_split=0.25, verbose=False)
    assert data.class_names == ["ants", "bees"]
    assert data.sizes == {"train": 6, "validation": 2, "test": 4}
    assert data.report.skipped_items == [str(broken)]
    images, labels = next(iter(data.test))
    assert images.shape == (4, 8, 8, 3) and sorted(labels.numpy().tolist()) == [0, 0, 1, 1]


class _Tiny(tfds.core.GeneratorBasedBuilder):
    """A two-split dataset prepared locally (no network), images of varying size."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(None, None, 1)),
                    "label": tfds.features.ClassLabel(names=["off", "on"]),
                }
            ),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(12), "test": self._generate_examples(4)}

    def _generate_examples(self, count):
        for i in range(count):
            yield i, {"image": np.full((10 + i, 12, 1), 20 * i, np.uint8), "label": i % 2}


def test_prepared_local_builder_folder_and_instance(tmp_path):
    builder = _Tiny(data_dir=str(tmp_path))
    builder.download_and_prepare()
    data = from_tfds(
        builder.data_dir, image_size=(8, 8), validation_split=0.25, batch_size=16, verbose=False
    )
    assert data.class_names == ["off", "on"]
    assert data.sizes == {"train": 9, "validation": 3, "test": 4}
    assert data.class_weights is not None
    images, labels = next(iter(data.validation))
    assert images.shape == (3, 8, 8, 3) and images.dtype.name == "float32"
    again = from_tfds(builder, image_size=(8, 8), verbose=False)
    assert again.sizes == {"train": 12, "test": 4}


def test_failed_download_names_offline_alternatives(monkeypatch, tmp_path):
    def no_network(self, *args, **kwargs):
        raise ConnectionError("Network is unreachable")

    monkeypatch.setattr(tfds_source, "network_problem", lambda: None)  # the probe passes
    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", no_network)
    with pytest.raises(DatasetUnavailableError) as caught:
        from_tfds("mnist", data_dir=tmp_path, verbose=False)
    message = str(caught.value)
    assert "'mnist'" in message and "Network is unreachable" in message
    assert "from_folder" in message and "tfds.folder_dataset.ImageFolder" in message
    with pytest.raises(DatasetUnavailableError, match="download=False"):
        from_tfds("mnist", data_dir=tmp_path, download=False, verbose=False)


def test_unknown_name_is_a_bad_input(tmp_path):
    with pytest.raises(BadInputError, match="not a TFDS dataset name"):
        from_tfds("no_such_dataset_xyz", data_dir=tmp_path, verbose=False)


def test_offline_download_fails_in_seconds_not_minutes(offline, monkeypatch):
    """TFDS itself retries each file for ~205 s offline; the probe fails before any retry."""
    for name in tfds_source.PROXY_ENVS + ("KERAS_TRANSFER_OFFLINE",):
        monkeypatch.delenv(name, raising=False)
    tried = []
    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare",
                        lambda self, *a, **k: tried.append(self))
    started = time.perf_counter()
    with pytest.raises(DatasetUnavailableError) as caught:
        from_tfds("mnist", data_dir=offline / "tfds", verbose=False)
    assert time.perf_counter() - started < 10
    assert not tried  # no download attempted, so no retries
    message = str(caught.value)
    assert "'mnist'" in message and "no network" in message and "storage.googleapis.com" in message
    assert "from_folder" in message and "tfds.folder_dataset.ImageFolder" in message


def test_download_goes_ahead_when_the_host_answers_or_through_a_proxy(monkeypatch, tmp_path):
    tried = []
    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare",
                        lambda self, *a, **k: tried.append(self.name))
    monkeypatch.setattr(tfds.core.DatasetBuilder, "is_prepared", lambda self: bool(tried))
    monkeypatch.setattr(tfds_source, "connect_problem", lambda host, timeout: None)
    monkeypatch.delenv("KERAS_TRANSFER_OFFLINE", raising=False)
    assert tfds_source._builder(tfds, "mnist", tmp_path, download=True).name == "mnist"
    assert tried == ["mnist"]
    # Behind a proxy only the proxy answers: the download is left to try.
    monkeypatch.setattr(tfds_source, "connect_problem", lambda host, timeout: "unreachable")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert tfds_source.network_problem() is None
    monkeypatch.setenv("KERAS_TRANSFER_OFFLINE", "1")
    assert tfds_source.network_problem() == "KERAS_TRANSFER_OFFLINE=1"
