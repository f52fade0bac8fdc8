"""Custom layers used inside the models we build (registered, so `safe_mode=True` loads them)."""

from __future__ import annotations

from typing import Sequence

import keras
from keras import ops

# Channel statistics of the ImageNet training set, as the reference implementations use them.
_CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)

PREPROCESSING_MODES = ("caffe", "tf", "torch", "none", "custom")


def _floats(value: float | Sequence[float]) -> float | tuple[float, ...]:
    if isinstance(value, (int, float)):
        return float(value)
    return tuple(float(v) for v in value)


@keras.saving.register_keras_serializable(package="keras_transfer")
class ImagePreprocessing(keras.layers.Layer):
    """Maps raw pixels in [0, 255] to what a pretrained backbone expects.

    Keeping this inside the model means an exported model takes raw images and needs no separate
    preprocessing code on the device.

    Modes follow `keras.applications.imagenet_utils.preprocess_input`:
    - ``"caffe"``: RGB → BGR, then subtract the ImageNet BGR mean (VGG, ResNet v1);
    - ``"tf"``: scale to [-1, 1] (MobileNet, Inception, Xception, ResNet v2, NASNet);
    - ``"torch"``: scale to [0, 1], then normalise by ImageNet mean/std (DenseNet, timm models);
    - ``"none"``: pass through (the backbone normalises internally, e.g. EfficientNet, ConvNeXt);
    - ``"custom"``: ``x * scale + offset`` then ``(x - mean) / std``; `scale` and `offset` may be
      per channel (keras-hub image converters and timm presets describe inputs this way).

    Example:
    >>> layer = ImagePreprocessing("tf")
    >>> float(layer(keras.ops.ones((1, 2, 2, 3)) * 255.0)[0, 0, 0, 0])
    1.0
    """

    def __init__(
        self,
        mode: str = "none",
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        scale: float | Sequence[float] = 1.0,
        offset: float | Sequence[float] = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if mode not in PREPROCESSING_MODES:
            raise ValueError(
                f"ImagePreprocessing: mode={mode!r} is not one of {PREPROCESSING_MODES}."
            )
        self.mode = mode
        self.mean = tuple(float(v) for v in mean) if mean is not None else None
        self.std = tuple(float(v) for v in std) if std is not None else None
        self.scale = _floats(scale)
        self.offset = _floats(offset)

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        if self.mode == "caffe":
            return ops.flip(x, axis=-1) - ops.convert_to_tensor(_CAFFE_BGR_MEAN, x.dtype)
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "torch":
            mean = ops.convert_to_tensor(_IMAGENET_MEAN, x.dtype)
            std = ops.convert_to_tensor(_IMAGENET_STD, x.dtype)
            return (x / 255.0 - mean) / std
        if self.mode == "custom":
            x = x * ops.convert_to_tensor(self.scale, x.dtype)
            x = x + ops.convert_to_tensor(self.offset, x.dtype)
            if self.mean is not None:
                x = x - ops.convert_to_tensor(self.mean, x.dtype)
            if self.std is not None:
                x = x / ops.convert_to_tensor(self.std, x.dtype)
            return x
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            mode=self.mode,
            mean=list(self.mean) if self.mean is not None else None,
            std=list(self.std) if self.std is not None else None,
            scale=self.scale if isinstance(self.scale, float) else list(self.scale),
            offset=self.offset if isinstance(self.offset, float) else list(self.offset),
        )
        return config
