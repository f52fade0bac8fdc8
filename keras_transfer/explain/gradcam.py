"""Grad-CAM (Selvaraju et al., 2017): class-discriminative heatmaps from a layer's gradients.

For a feature map ``A`` (h × w × C) and a class score ``y``: channel weights are the spatial mean
of ``∂y/∂A``, the map is ``ReLU(Σ_c weight_c · A_c)``, upsampled bilinearly to the input size and
scaled to [0, 1] per map (a constant map becomes zeros). The score is the class logit when the
output layer's softmax or sigmoid can be undone (see `keras_transfer.explain.taps`), else the
output itself; for a segmenter, the mean of the class's per-pixel logit over the pixels predicted
as that class (the whole image when there are none).
"""

from __future__ import annotations

from typing import Callable, Sequence

import keras
import numpy as np

from keras_transfer.errors import BadInputError
from keras_transfer.explain.taps import SEGMENTER, Tap


def class_activation_maps(features, gradients) -> np.ndarray:
    """``ReLU(Σ_c mean_hw(∂y/∂A)_c · A_c)`` for a batch: ``(N, h, w, C)`` twice → ``(N, h, w)``.

    Example:
    >>> import numpy as np
    >>> features = np.zeros((1, 2, 2, 2), "float32"); features[0, 0, 0] = [1.0, 3.0]
    >>> gradients = np.ones((1, 2, 2, 2), "float32"); gradients[..., 1] = -1.0
    >>> class_activation_maps(features, gradients)[0].tolist()  # 1·1 + 3·(-1) < 0: cut to 0
    [[0.0, 0.0], [0.0, 0.0]]
    >>> class_activation_maps(features, -gradients)[0].tolist()
    [[2.0, 0.0], [0.0, 0.0]]
    """
    ops = keras.ops
    features = ops.cast(features, "float32")
    weights = ops.mean(ops.cast(gradients, "float32"), axis=(1, 2), keepdims=True)
    maps = ops.relu(ops.sum(weights * features, axis=-1))
    return np.asarray(ops.convert_to_numpy(maps), np.float32)


def upsample(maps: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Bilinear resize of ``(N, h, w)`` maps to ``(N, *size)`` (half-pixel centres).

    Example:
    >>> upsample(np.array([[[0.0, 1.0]]], "float32"), (1, 4)).round(2).tolist()
    [[[0.0, 0.25, 0.75, 1.0]]]
    """
    maps = np.asarray(maps, np.float32)
    if tuple(maps.shape[1:3]) == tuple(size):
        return maps
    resized = keras.ops.image.resize(maps[..., None], tuple(int(s) for s in size),
                                     interpolation="bilinear", antialias=False)
    return np.asarray(keras.ops.convert_to_numpy(resized), np.float32)[..., 0]


def normalize(maps: np.ndarray) -> np.ndarray:
    """Scales each map to [0, 1] (min to 0, max to 1); a constant or non-finite map → zeros.

    Example:
    >>> normalize(np.array([[[1.0, 3.0]], [[2.0, 2.0]]], "float32")).tolist()
    [[[0.0, 1.0]], [[0.0, 0.0]]]
    """
    maps = np.asarray(maps, np.float32)
    out = np.zeros_like(maps)
    for i, heat in enumerate(maps):
        if not np.isfinite(heat).all():
            continue
        low, high = float(heat.min()), float(heat.max())
        if high - low > 1e-7 * max(1.0, abs(high)):
            out[i] = (heat - low) / (high - low)
    return np.clip(out, 0.0, 1.0)


def _selection(kind: str, logits: np.ndarray, classes: Sequence[Sequence[int]],
               slot: int) -> tuple[np.ndarray, np.ndarray]:
    """Weights picking each image's `slot`-th class score out of the logits (zero where an image
    has fewer classes), and which images take part."""
    weights = np.zeros(logits.shape, np.float32)
    used = np.array([len(chosen) > slot for chosen in classes])
    for i, chosen in enumerate(classes):
        if len(chosen) <= slot:
            continue
        c = chosen[slot]
        if kind == SEGMENTER:
            region = logits[i].argmax(-1) == c
            region = region if region.any() else np.ones(region.shape, bool)
            weights[i, ..., c] = region / region.sum()  # the mean over the class's region
        else:
            weights[i, c] = 1.0
    return weights, used


def gradcam_batch(
    tap: Tap,
    images: np.ndarray,
    choose_classes: Callable[[np.ndarray], list[list[int]]],
) -> list[tuple[int, int, np.ndarray, float]]:
    """Grad-CAM of one batch: ``(image, class, map, output)`` for each class that
    `choose_classes(outputs)` picks per image, image by image in the order picked. The map is
    normalised and at the input size; ``output`` is the model's output for the class (for a
    segmenter its mean over the class's predicted pixels).

    Example:
    >>> import keras, numpy as np
    >>> from keras_transfer.explain.taps import tap_layer
    >>> inputs = keras.Input((8, 8, 3)); conv = keras.layers.Conv2D(4, 3, name="conv")
    >>> x = keras.layers.GlobalAveragePooling2D()(conv(inputs))
    >>> model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
    >>> rows = gradcam_batch(tap_layer(model, "conv"), np.ones((1, 8, 8, 3), "float32"),
    ...                      lambda outputs: [[0, 1]])
    >>> [(image, c, heat.shape) for image, c, heat, _ in rows]
    [(0, 0, (8, 8)), (0, 1, (8, 8))]
    >>> round(rows[0][3] + rows[1][3], 4)  # the two softmax outputs
    1.0
    """
    import tensorflow as tf

    x = tf.convert_to_tensor(images, tf.float32)
    size = images.shape[1:3]
    # The input is watched so that every operation after it is recorded, frozen weights or not:
    # the gradient is then taken at the feature map, in the middle of the recorded graph.
    with tf.GradientTape(persistent=True, watch_accessed_variables=False) as tape:
        tape.watch(x)
        feature, head = tap.model(x, training=False)
        logits = tap.logits(head)
        values = np.asarray(keras.ops.convert_to_numpy(logits))
        outputs = tap.outputs(values)
        classes = choose_classes(outputs)
        targets = []
        for slot in range(max((len(chosen) for chosen in classes), default=0)):
            weights, used = _selection(tap.kind, values, classes, slot)
            targets.append((keras.ops.sum(logits * weights), weights, used))
    rows = {}
    for slot, (target, weights, used) in enumerate(targets):
        gradients = tape.gradient(target, feature)
        if gradients is None:
            raise BadInputError(
                f"explain: the class scores do not depend on layer '{tap.layer}'; choose a layer "
                "on the path to the output with layer='<name>'.")
        maps = normalize(upsample(class_activation_maps(feature, gradients), size))
        for i in np.flatnonzero(used):
            output = float((outputs[i] * weights[i]).sum())
            rows[int(i), slot] = (int(i), int(classes[i][slot]), maps[i], output)
    del tape
    return [rows[key] for key in sorted(rows)]
