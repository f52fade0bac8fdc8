"""What an exported model expects and returns, read from the Keras model itself.

The description (input size and dtype, the normalization done by an `ImagePreprocessing` layer,
the output activation, the task the model carries) goes into ``metadata.json`` and into the
TFLite files.
"""

from __future__ import annotations

from typing import Any, Iterator

import keras

from keras_transfer.errors import BadInputError
from keras_transfer.layers import ImagePreprocessing

# Each mode written as the equivalent per-channel ``(pixel - mean) / std`` on RGB pixels in
# [0, 255] (the form mobile runtimes such as the TFLite Task library describe normalization in).
_PIXEL_SPACE = {
    "tf": ((127.5,) * 3, (127.5,) * 3, "x / 127.5 - 1 (pixels [0, 255] -> [-1, 1])"),
    "torch": (
        (0.485 * 255, 0.456 * 255, 0.406 * 255),
        (0.229 * 255, 0.224 * 255, 0.225 * 255),
        "x / 255, then (x - ImageNet mean) / ImageNet std",
    ),
    "caffe": (
        (123.68, 116.779, 103.939),
        (1.0, 1.0, 1.0),
        "RGB -> BGR, then subtract the ImageNet BGR mean (103.939, 116.779, 123.68)",
    ),
    "none": ((0.0,) * 3, (1.0,) * 3, "none in front of the backbone (it normalizes itself)"),
}


def _walk_layers(layer: keras.layers.Layer) -> Iterator[keras.layers.Layer]:
    for child in getattr(layer, "layers", []) or []:
        yield child
        yield from _walk_layers(child)


def find_preprocessing(model: keras.Model) -> ImagePreprocessing | None:
    """The first `ImagePreprocessing` layer in the model (nested models included), if any.

    Example:
    >>> inputs = keras.Input((8, 8, 3))
    >>> model = keras.Model(inputs, ImagePreprocessing("tf")(inputs))
    >>> find_preprocessing(model).mode
    'tf'
    """
    for layer in _walk_layers(model):
        if isinstance(layer, ImagePreprocessing):
            return layer
    return None


def describe_normalization(layer: ImagePreprocessing | None) -> dict[str, Any] | None:
    """Describes what an `ImagePreprocessing` layer does, as mode, formula and mean/std.

    Example:
    >>> describe_normalization(ImagePreprocessing("tf"))["mean"]
    [127.5, 127.5, 127.5]
    """
    if layer is None:
        return None
    info: dict[str, Any] = {"mode": layer.mode, "inside_model": True}
    if layer.mode in _PIXEL_SPACE:
        mean, std, text = _PIXEL_SPACE[layer.mode]
        info.update(
            mean=[round(v, 6) for v in mean], std=[round(v, 6) for v in std], description=text
        )
        if layer.mode == "caffe":
            info["channel_order_after"] = "BGR"
    else:  # custom: x * scale + offset, then (x - mean) / std
        mean = layer.mean or (0.0, 0.0, 0.0)
        std = layer.std or (1.0, 1.0, 1.0)
        info.update(
            scale=layer.scale,
            offset=layer.offset,
            mean=[round((m - layer.offset) / layer.scale, 6) for m in mean],
            std=[round(s / layer.scale, 6) for s in std],
            description=(
                f"x * {layer.scale} + {layer.offset}, then (x - {list(mean)}) / {list(std)}"
            ),
        )
    return info


def image_size(model: keras.Model) -> tuple[int, int]:
    """The static ``(height, width)`` of a single-input image model; raises if it is unknown.

    Example:
    >>> image_size(keras.Sequential([keras.Input((8, 6, 3)), keras.layers.Flatten()]))
    (8, 6)
    """
    shape = model.input_shape
    if isinstance(shape, list):
        if len(shape) != 1:
            raise BadInputError(
                f"export: the model must take one image input, it takes {len(shape)}."
            )
        shape = shape[0]
    if len(shape) != 4 or shape[-1] != 3:
        raise BadInputError(f"export: the model input must be (None, H, W, 3) images, got {shape}.")
    if shape[1] is None or shape[2] is None:
        raise BadInputError(
            f"export: the model input {shape} has no fixed height/width; TFLite and the "
            "image-bytes signature need one. Rebuild it with keras.Input((H, W, 3))."
        )
    return int(shape[1]), int(shape[2])


def output_task(model: keras.Model) -> str:
    """What the output means, from the task the model carries (`keras_transfer.task_of`): the
    head of an image classifier (``single_label``, ``multi_label``, ``regression``),
    ``segmentation``, or another task's name; ``unknown`` for a model that carries none.

    Example:
    >>> import keras_transfer as kt
    >>> model = kt.build_image_classifier("vgg16", 2, weights=None, input_shape=(32, 32, 3),
    ...                                   task="multi_label")
    >>> output_task(model)
    'multi_label'
    """
    from keras_transfer.tasks import task_config_of, task_name_of

    try:
        name = task_name_of(model)
    except BadInputError:
        return "unknown"
    if name == "image_classification":
        return str(task_config_of(model).get("head", "single_label"))
    return name


def describe_model(model: keras.Model) -> dict[str, Any]:
    """The ``model`` section of ``metadata.json``: input, output, normalization, parameters.

    Example:
    >>> inputs = keras.Input((8, 8, 3))
    >>> outputs = keras.layers.Dense(2, activation="softmax", name="predictions")(
    ...     keras.layers.GlobalAveragePooling2D()(inputs))
    >>> describe_model(keras.Model(inputs, outputs))["output"]["task"]
    'single_label'
    """
    height, width = image_size(model)
    output_shape = model.output_shape
    if isinstance(output_shape, (list, dict)):
        raise BadInputError("export: the model must have a single output.")
    activation = None
    try:
        head = model.get_layer("predictions")
        act = getattr(head, "activation", None)
        activation = getattr(act, "__name__", None)
    except ValueError:
        pass
    return {
        "name": model.name,
        "num_params": int(model.count_params()),
        "input": {
            "shape": [height, width, 3],
            "dtype": "float32",
            "range": [0.0, 255.0],
            "layout": "NHWC",
            "color": "RGB",
        },
        "output": {
            "shape": [int(d) if d is not None else None for d in output_shape[1:]],
            "activation": activation,
            "task": output_task(model),
        },
        "normalization": describe_normalization(find_preprocessing(model)),
    }
