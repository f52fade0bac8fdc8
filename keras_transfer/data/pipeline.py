"""tf.data pipelines for images: resize, cache, shuffle, batch, to RGB, augment, mix, prefetch."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping, Sequence

import numpy as np
import tensorflow as tf

from keras_transfer.data.augment import augmentation, mixing
from keras_transfer.data.decode import check_resize_mode, load_image
from keras_transfer.data.splits import DEFAULT_SEED
from keras_transfer.errors import BadInputError

AUTOTUNE = tf.data.AUTOTUNE


@dataclass(frozen=True)
class PipelineOptions:
    """How each split is turned into batches; built by the loaders from their keyword arguments.

    ``cache``: True caches decoded images in memory, a string caches to files with that prefix
    (one per split), False re-decodes every epoch. ``augment``: a Keras layer/callable, True for
    the default `augmentation`, or None. ``mixup``/``cutmix``: MixUp alpha / CutMix factor; either
    one turns the labels of every split into one-hot float vectors.

    Example:
    >>> PipelineOptions(batch_size=8).label_format(multi_label=False)
    'int'
    """

    image_size: tuple[int, int] | None = (224, 224)
    resize_mode: str = "stretch"
    batch_size: int = 32
    seed: int = DEFAULT_SEED
    cache: bool | str = True
    augment: Any = None
    mixup: float | None = None
    cutmix: float | None = None
    shuffle_buffer: int | None = None

    @classmethod
    def from_arguments(cls, arguments: Mapping[str, Any]) -> "PipelineOptions":
        """The options among a loader's arguments (``locals()`` at its top); others are ignored.

        Example:
        >>> PipelineOptions.from_arguments({"batch_size": 8, "root": "photos"}).batch_size
        8
        """
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in arguments.items() if k in names})

    def __post_init__(self):
        check_resize_mode(self.resize_mode)
        if self.batch_size < 1:
            raise BadInputError(f"batch_size must be >= 1; got {self.batch_size}.")

    def label_format(self, multi_label: bool) -> str:
        """ "multi_hot", "one_hot" (when mixing) or "int" class ids.

        Example:
        >>> PipelineOptions(mixup=0.2).label_format(multi_label=False)
        'one_hot'
        """
        if multi_label:
            return "multi_hot"
        return "one_hot" if (self.mixup or self.cutmix) else "int"


def resize_image(image: tf.Tensor, size: Sequence[int], resize_mode: str = "stretch") -> tf.Tensor:
    """Resizes one (H, W, C) image or a batch to ``size`` as float32: stretch, "pad" or "crop".

    Example:
    >>> resize_image(tf.zeros((10, 20, 3)), (8, 8), "pad").shape
    TensorShape([8, 8, 3])
    """
    height, width = int(size[0]), int(size[1])
    image = tf.cast(image, tf.float32)
    if resize_mode == "pad":
        return _letterbox(image, height, width)
    if resize_mode == "crop":
        shape = tf.cast(tf.shape(image)[-3:-1], tf.float32)
        scale = tf.maximum(height / shape[0], width / shape[1])
        crop = tf.cast(
            tf.minimum(shape, tf.round(tf.constant([height, width], tf.float32) / scale)), tf.int32
        )
        offset = (tf.cast(shape, tf.int32) - crop) // 2
        image = tf.image.crop_to_bounding_box(image, offset[0], offset[1], crop[0], crop[1])
    return tf.image.resize(image, (height, width), antialias=True)


def _letterbox(image: tf.Tensor, height: int, width: int) -> tf.Tensor:
    """Aspect-preserving resize into black bars, placed exactly as PIL's ``ImageOps.pad`` (the
    file decoder) places them: the long side fills, the short side is ``round``ed, and the bars
    are ``round(spare / 2)`` (half to even) — `tf.image.resize_with_pad` floors both."""
    shape = tf.cast(tf.shape(image)[-3:-1], tf.float64)
    source_ratio, target_ratio = shape[1] / shape[0], width / height
    wider = source_ratio > target_ratio
    full_height, full_width = tf.constant(height, tf.float64), tf.constant(width, tf.float64)
    new_height = tf.where(wider, tf.round(shape[0] / shape[1] * width), full_height)
    new_width = tf.where(wider | (source_ratio == target_ratio), full_width,
                         tf.round(shape[1] / shape[0] * height))
    resized = tf.image.resize(image, tf.cast(tf.stack([new_height, new_width]), tf.int32),
                              antialias=True)
    top = tf.cast(tf.round((height - new_height) / 2), tf.int32)
    left = tf.cast(tf.round((width - new_width) / 2), tf.int32)
    return tf.image.pad_to_bounding_box(resized, top, left, height, width)


def resize_uint8(
    images: np.ndarray, size: Sequence[int], resize_mode: str = "stretch", chunk: int = 256
) -> np.ndarray:
    """Resizes a uint8 (N, H, W, C) array eagerly, in chunks, exactly as the pipelines do.

    Example:
    >>> resize_uint8(np.zeros((3, 30, 30, 1), np.uint8), (16, 16)).shape
    (3, 16, 16, 1)
    """
    parts = [
        _round_uint8(resize_image(images[start : start + chunk], size, resize_mode)).numpy()
        for start in range(0, len(images), chunk)
    ]
    if not parts:
        return np.zeros((0, *size, images.shape[-1]), np.uint8)
    return np.concatenate(parts)


def _round_uint8(image: tf.Tensor) -> tf.Tensor:
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def to_float_rgb(images: tf.Tensor) -> tf.Tensor:
    """Batch or image to float32 pixels in [0, 255] with 3 channels (gray tiled, alpha dropped).

    Example:
    >>> to_float_rgb(tf.zeros((2, 4, 4, 1), tf.uint8)).shape
    TensorShape([2, 4, 4, 3])
    """
    channels = images.shape[-1]
    images = tf.cast(images, tf.float32)
    if channels == 1:
        return tf.repeat(images, 3, axis=-1)
    if channels == 4:
        return images[..., :3]
    if channels != 3:
        raise BadInputError(f"images need 1, 3 or 4 channels; got shape {images.shape}.")
    return images


def image_pipeline(
    examples: tf.data.Dataset,
    options: PipelineOptions,
    *,
    training: bool,
    num_classes: int,
    label_format: str,
    cache_suffix: str = "",
    size_hint: int | None = None,
) -> tf.data.Dataset:
    """Batches an unbatched ``(image, label)`` dataset; shuffle/augment/mix only when ``training``.

    Images are resized and cached as uint8 (4x less memory than float32) and become float32
    RGB in [0, 255] after batching. Labels come out as int32 ids, or float32 one-/multi-hot.

    Example:
    >>> images = np.zeros((5, 12, 12, 1), np.uint8)
    >>> examples = tf.data.Dataset.from_tensor_slices((images, np.arange(5) % 2))
    >>> ds = image_pipeline(examples, PipelineOptions(image_size=(8, 8), batch_size=4),
    ...     training=True, num_classes=2, label_format="int")
    >>> [(tuple(x.shape), x.dtype.name, y.dtype.name) for x, y in ds]
    [((4, 8, 8, 3), 'float32', 'int32'), ((1, 8, 8, 3), 'float32', 'int32')]
    """
    size = options.image_size

    def prepare(image, label):
        if size is not None and tuple(image.shape[-3:-1]) != tuple(size):
            resized = resize_image(image, size, options.resize_mode)
            image = _round_uint8(resized) if image.dtype == tf.uint8 else resized
        if label_format == "int":
            label = tf.cast(label, tf.int32)
        elif label_format == "one_hot":
            label = tf.one_hot(tf.cast(label, tf.int32), num_classes, dtype=tf.float32)
        else:
            label = tf.cast(label, tf.float32)
        return image, label

    ds = examples.map(prepare, num_parallel_calls=AUTOTUNE)
    if options.cache:
        ds = ds.cache(f"{options.cache}{cache_suffix}" if isinstance(options.cache, str) else "")
    if training:
        buffer = options.shuffle_buffer or min(size_hint or 10_000, 10_000)
        ds = ds.shuffle(max(buffer, 1), seed=options.seed, reshuffle_each_iteration=True)
    ds = ds.batch(options.batch_size, num_parallel_calls=AUTOTUNE)
    ds = ds.map(lambda x, y: (to_float_rgb(x), y), num_parallel_calls=AUTOTUNE)
    if training:
        augment = options.augment
        if augment is True:
            augment = augmentation(size, seed=options.seed)
        if augment:
            ds = ds.map(lambda x, y: (augment(x, training=True), y), num_parallel_calls=AUTOTUNE)
        mix = mixing(options.mixup, options.cutmix, seed=options.seed)
        if mix is not None:
            ds = ds.map(mix, num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)


def examples_from_arrays(images: np.ndarray, labels: np.ndarray) -> tf.data.Dataset:
    """Unbatched ``(image, label)`` examples from in-memory arrays.

    Example:
    >>> ds = examples_from_arrays(np.zeros((2, 4, 4, 3), np.uint8), np.array([0, 1]))
    >>> int(ds.cardinality())
    2
    """
    return tf.data.Dataset.from_tensor_slices((images, labels))


def examples_from_paths(
    paths: Sequence[str], labels: np.ndarray, image_size: tuple[int, int], resize_mode: str
) -> tf.data.Dataset:
    """Unbatched examples decoded lazily by PIL; pass only paths validated by `decode_images`.

    Example:
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.png"
    >>> Image.new("RGB", (9, 9)).save(p)
    >>> image, label = next(iter(examples_from_paths([str(p)], np.array([1]), (4, 4), "stretch")))
    >>> tuple(image.shape), int(label)
    ((4, 4, 3), 1)
    """
    height, width = image_size

    def decode(path: bytes) -> np.ndarray:
        return load_image(path.decode(), image_size, resize_mode)

    def load(path, label):
        image = tf.numpy_function(decode, [path], tf.uint8, stateful=False)
        image.set_shape((height, width, 3))
        return image, label

    ds = tf.data.Dataset.from_tensor_slices((list(map(str, paths)), labels))
    return ds.map(load, num_parallel_calls=AUTOTUNE)
