"""Mixed precision as a switch: build under a dtype policy, get the old global policy back.

Keras layers take the global dtype policy when they are created, so only building needs the
policy; the model keeps it afterwards. The classifier's ``predictions`` layer is float32 in any
case (a float16 softmax loses too much), and `compile` wraps the optimizer in a
`LossScaleOptimizer` by itself for ``mixed_float16`` (bfloat16 has float32's range: no scaling).

Load a ``mixed_float16`` model inside ``mixed_precision("mixed_float16")`` too: its layers keep
float16 either way, but only then does `compile` wrap the optimizer in a `LossScaleOptimizer`
again, and without that wrapper Keras skips loading the saved optimizer state.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import keras

from keras_transfer.compat.keras_internals import sublayers

POLICIES = ("mixed_float16", "mixed_bfloat16", "float32")


@contextlib.contextmanager
def mixed_precision(policy: str | None) -> Iterator[str]:
    """Sets the global dtype policy inside the block (None: leaves it alone), restores it after.

    Example:
    >>> from keras_transfer import build_image_classifier
    >>> with mixed_precision("mixed_bfloat16"):
    ...     model = build_image_classifier("vgg16", num_classes=2, weights=None,
    ...                                    input_shape=(32, 32, 3))
    >>> model.get_layer("vgg16").get_layer("block1_conv1").compute_dtype
    'bfloat16'
    >>> model.output.dtype, keras.config.dtype_policy().name
    ('float32', 'float32')
    """
    if policy is not None and policy not in POLICIES:
        raise ValueError(f"mixed_precision={policy!r}: expected one of {POLICIES} or None.")
    previous = keras.config.dtype_policy()
    if policy is not None:
        keras.config.set_dtype_policy(policy)
    try:
        yield keras.config.dtype_policy().name
    finally:
        keras.config.set_dtype_policy(previous)


def compute_dtypes(model: keras.Model) -> dict[str, int]:
    """How many weighted layers compute in each dtype (a quick check of a mixed model).

    Example:
    >>> from keras_transfer import build_image_classifier
    >>> model = build_image_classifier("vgg16", num_classes=2, weights=None,
    ...                                input_shape=(32, 32, 3))
    >>> compute_dtypes(model)
    {'float32': 14}
    """
    counts: dict[str, int] = {}
    for layer in sublayers(model):
        if layer.weights and not isinstance(layer, keras.Model):
            counts[layer.compute_dtype] = counts.get(layer.compute_dtype, 0) + 1
    return counts
