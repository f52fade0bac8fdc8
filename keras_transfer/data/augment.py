"""Training-time augmentation built from Keras preprocessing layers, plus MixUp / CutMix."""

from __future__ import annotations

from typing import Callable

import keras

from keras_transfer.errors import BadInputError

FLIP_MODES = ("horizontal", "vertical", "horizontal_and_vertical")


def augmentation(
    image_size: tuple[int, int] | None = None,
    *,
    flip: str | None = "horizontal",
    rotation: float = 0.05,
    zoom: float = 0.1,
    contrast: float = 0.1,
    brightness: float = 0.0,
    translation: float = 0.0,
    crop: float | None = None,
    seed: int | None = None,
) -> keras.Sequential:
    """A `keras.Sequential` of random layers for images with pixels in [0, 255].

    Loaders apply it with ``training=True`` to the train split only. ``rotation`` is a fraction
    of a full turn, ``zoom``/``translation`` fractions of the size, ``contrast``/``brightness``
    Keras factors; 0 (or ``None`` for ``flip``/``crop``) leaves that layer out. ``crop`` is the
    kept fraction of each side for a random crop resized back to ``image_size`` (needed then).

    Example:
    >>> import numpy as np
    >>> augment = augmentation((32, 32), flip="horizontal", rotation=0.1, crop=0.8, seed=0)
    >>> augment(np.zeros((2, 32, 32, 3), "float32"), training=True).shape
    TensorShape([2, 32, 32, 3])
    """
    layers = []
    if flip:
        if flip not in FLIP_MODES:
            raise BadInputError(f"flip must be one of {FLIP_MODES} or None; got {flip!r}.")
        layers.append(keras.layers.RandomFlip(flip, seed=seed))
    if crop is not None:
        if image_size is None:
            raise BadInputError("augmentation(crop=...) needs image_size to resize the crop back.")
        if not 0.0 < crop <= 1.0:
            raise BadInputError(f"crop is the kept fraction of each side, in (0, 1]; got {crop}.")
        height, width = image_size
        layers.append(
            keras.layers.RandomCrop(
                max(1, round(height * crop)), max(1, round(width * crop)), seed=seed
            )
        )
        layers.append(keras.layers.Resizing(height, width))
    if rotation:
        layers.append(keras.layers.RandomRotation(rotation, seed=seed))
    if zoom:
        layers.append(keras.layers.RandomZoom((-zoom, zoom), seed=seed))
    if translation:
        layers.append(keras.layers.RandomTranslation(translation, translation, seed=seed))
    if contrast:
        layers.append(keras.layers.RandomContrast(contrast, value_range=(0, 255), seed=seed))
    if brightness:
        layers.append(keras.layers.RandomBrightness(brightness, value_range=(0, 255), seed=seed))
    return keras.Sequential(layers, name="augmentation")


def mixing(
    mixup: float | None = None, cutmix: float | None = None, seed: int | None = None
) -> Callable | None:
    """A batch function ``(images, one_hot_labels) -> (images, labels)`` doing MixUp and/or CutMix.

    ``mixup`` is MixUp's alpha, ``cutmix`` CutMix's factor (Keras 3 layers). With both, each
    batch gets one of the two at random. Returns None when both are off.

    Example:
    >>> import numpy as np
    >>> mix = mixing(mixup=0.2, seed=0)
    >>> images, labels = mix(np.ones((4, 8, 8, 3), "float32"), np.eye(4, dtype="float32"))
    >>> tuple(labels.shape)
    (4, 4)
    """
    layers = []
    if mixup:
        layers.append(keras.layers.MixUp(alpha=mixup, seed=seed))
    if cutmix:
        layers.append(keras.layers.CutMix(factor=cutmix, seed=seed))
    if not layers:
        return None

    def apply(layer, images, labels):
        mixed = layer({"images": images, "labels": labels}, training=True)
        return mixed["images"], mixed["labels"]

    if len(layers) == 1:
        return lambda images, labels: apply(layers[0], images, labels)

    def either(images, labels):
        import tensorflow as tf

        return tf.cond(
            tf.random.uniform([], seed=seed) < 0.5,
            lambda: apply(layers[0], images, labels),
            lambda: apply(layers[1], images, labels),
        )

    return either
