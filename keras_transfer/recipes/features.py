"""Backbone features computed once and cached (memory or disk), keyed by model and data.

Training a head on cached features skips the frozen backbone entirely after the first pass: an
epoch costs a few small matrix products instead of a full forward pass over every image.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from keras_transfer.compat.keras_internals import call_nodes
from keras_transfer.utils.files import atomic_write_bytes
from keras_transfer.weights.cache import cache_dir

_MEMORY: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def split_at(model: keras.Model, layer_name: str = "pool") -> tuple[keras.Model, keras.Model]:
    """Splits a classifier into (features up to `layer_name`, the head after it).

    The head reuses the classifier's own layers, so training it trains the classifier in place.

    Example:
    >>> from keras_transfer import build_image_classifier
    >>> model = build_image_classifier("vgg16", num_classes=2, weights=None,
    ...                                input_shape=(32, 32, 3))
    >>> features, head = split_at(model)
    >>> features.output_shape, head.output_shape
    ((None, 512), (None, 2))
    """
    cut = model.get_layer(layer_name)
    features = keras.Model(model.inputs, cut.output, name=f"{model.name}_features")
    head_input = keras.Input(cut.output.shape[1:], name="features")
    tensors = {id(cut.output): head_input}
    for layer in model.layers[model.layers.index(cut) + 1 :]:
        node_inputs = call_nodes(layer)[0].input_tensors
        args = [tensors[id(t)] for t in node_inputs]
        out = layer(args[0] if len(args) == 1 else args)
        tensors[id(layer.output)] = out
    head = keras.Model(head_input, tensors[id(model.output)], name=f"{model.name}_head")
    return features, head


def _fingerprint(model: keras.Model) -> str:
    digest = hashlib.sha1(model.name.encode())
    digest.update(str(model.input_shape).encode())
    for weight in model.weights:
        digest.update(weight.path.encode())
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
    return digest.hexdigest()[:16]


def extract_features(
    features: keras.Model,
    dataset: tf.data.Dataset,
    *,
    passes: int = 1,
    cache: str | None = "memory",
    description: str = "features",
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Runs `features` over `dataset` (batched `(image, label)`) and returns `(x, y)` arrays.

    Args:
        passes: iterate the dataset this many times. With augmentation in the pipeline each pass
            sees other random augmentations: caching keeps `passes` fixed augmented copies of each
            image instead of a fresh augmentation every epoch.
        cache: ``"memory"`` (this process), ``"disk"`` (under the keras-transfer cache, reused
            across runs) or None. The key covers the model's weights and the exact pixels and
            labels seen, so a changed model or dataset never reuses stale features.
        description: the progress bar's label.
        progress: show a tqdm progress bar over the batches.

    Example:
    >>> import numpy as np, tensorflow as tf
    >>> from keras_transfer import build_image_classifier
    >>> model = build_image_classifier("vgg16", num_classes=2, weights=None,
    ...                                input_shape=(32, 32, 3))
    >>> data = tf.data.Dataset.from_tensor_slices((np.zeros((4, 32, 32, 3)), [0, 1, 0, 1]))
    >>> x, y = extract_features(split_at(model)[0], data.batch(2), cache=None)
    >>> x.shape, y.shape
    ((4, 512), (4,))
    """
    if cache not in (None, "memory", "disk"):
        raise ValueError(f"cache={cache!r}: expected 'memory', 'disk' or None.")
    digest = hashlib.sha1(_fingerprint(features).encode())
    batches = []
    # Fingerprint the data while collecting it: decoding is cheap next to the backbone.
    for _ in range(passes):
        for images, labels in dataset:
            images, labels = np.asarray(images), np.asarray(labels)
            digest.update(images.tobytes())
            digest.update(labels.tobytes())
            batches.append((images, labels))
    key = digest.hexdigest()
    disk_path = cache_dir("features") / f"{key}.npz" if cache == "disk" else None
    if cache == "memory" and key in _MEMORY:
        return _MEMORY[key]
    if disk_path is not None and disk_path.exists():
        with np.load(disk_path) as stored:
            return stored["x"], stored["y"]
    from keras_transfer.distribute import local_predict

    predict = local_predict(features)  # predict_on_batch, minus one copy per replica
    bar = tqdm(batches, desc=description, unit="batch", leave=False, disable=not progress)
    outputs = [predict(images) for images, _ in bar]
    result = (np.concatenate(outputs), np.concatenate([labels for _, labels in batches]))
    if cache == "memory":
        _MEMORY[key] = result
    elif disk_path is not None:
        import io

        buffer = io.BytesIO()
        np.savez(buffer, x=result[0], y=result[1])
        atomic_write_bytes(disk_path, buffer.getvalue())
    return result


def clear_memory_cache() -> None:
    """Drops every feature array cached in memory by `extract_features`."""
    _MEMORY.clear()


def feature_cache_path() -> Path:
    """Where ``cache="disk"`` features are stored."""
    return cache_dir("features")
