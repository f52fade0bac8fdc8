"""A sparse cross-entropy with label smoothing, focal modulation and class weights in one loss.

Keras has each piece separately, but `SparseCategoricalCrossentropy` takes no label smoothing,
and its focal and smoothed losses want one-hot targets. The recipes keep integer labels (cached
features, `tf.data` pipelines) and compare imbalance treatments on the same loss, so
`SmoothedSparseCrossentropy` takes class ids and switches each treatment on by a number. It is
registered for `.keras` files: a model compiled with it loads with ``safe_mode=True`` after
``import keras_transfer``.
"""

from __future__ import annotations

from typing import Sequence

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_transfer")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy of integer class ids against softmax probabilities, with optional label
    smoothing, focal modulation (Lin et al. 2017) and per-class weights.

    For an example of class ``y`` with probabilities ``p`` over ``C`` classes the loss is
    ``w[y] * Σ_c -t_c (1 - p_c)^γ log p_c`` with targets ``t = (1 - ε) onehot(y) + ε / C``.
    With every option off this is `keras.losses.SparseCategoricalCrossentropy`; with only ``ε``
    it is `keras.losses.CategoricalCrossentropy(label_smoothing=ε)` on one-hot targets; with
    ``γ`` it is `keras.losses.CategoricalFocalCrossentropy(gamma=γ, alpha=1.0)`, the factor
    applied per class on the smoothed targets as there.

    Args:
        label_smoothing: ``ε`` in [0, 1].
        focal_gamma: ``γ >= 0``; 0 is plain cross-entropy, 2 is the paper's choice.
        class_weights: one non-negative multiplier per class for each example's loss, or None.
        name, reduction, dtype: as for `keras.losses.Loss`.

    Example:
    >>> loss = SmoothedSparseCrossentropy(focal_gamma=2.0, class_weights=[1.0, 3.0])
    >>> round(float(loss([0, 1], [[0.8, 0.2], [0.4, 0.6]])), 4)
    0.1271
    >>> loss.get_config()["class_weights"]
    [1.0, 3.0]
    """

    def __init__(
        self,
        label_smoothing: float = 0.0,
        focal_gamma: float = 0.0,
        class_weights: Sequence[float] | None = None,
        *,
        name: str = "smoothed_sparse_crossentropy",
        reduction: str | None = "sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing={label_smoothing!r}: expected a value in [0, 1].")
        if focal_gamma < 0.0:
            raise ValueError(f"focal_gamma={focal_gamma!r}: expected a value >= 0.")
        if class_weights is not None:
            class_weights = tuple(float(w) for w in class_weights)
            if not class_weights or min(class_weights) < 0.0:
                raise ValueError(f"class_weights={list(class_weights)!r}: expected one "
                                 "non-negative weight per class.")
        self.label_smoothing = float(label_smoothing)
        self.focal_gamma = float(focal_gamma)
        self.class_weights = class_weights
        # Kept as given, so the config round-trips None (= floatx) rather than freezing it; the
        # policy's name, parsed as `keras.losses.Loss` parses it.
        self._dtype_argument = (None if dtype is None
                                else keras.dtype_policies.get(dtype or keras.config.floatx()).name)

    def call(self, y_true, y_pred):
        # `Loss.__call__` converts only tensors and arrays (it maps over nested lists).
        y_pred = ops.convert_to_tensor(y_pred, dtype=self.dtype)
        y_true = ops.convert_to_tensor(y_true)
        num_classes = y_pred.shape[-1]
        if self.class_weights is not None and num_classes is not None \
                and num_classes != len(self.class_weights):
            raise ValueError(f"class_weights has {len(self.class_weights)} entries but the "
                             f"predictions have {num_classes} classes.")
        # Labels arrive as (N,) or (N, 1), often cast to float by `Loss.__call__`.
        if len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] == 1:
            y_true = ops.squeeze(y_true, axis=-1)
        classes = ops.cast(y_true, "int32")
        target = ops.one_hot(classes, ops.shape(y_pred)[-1], dtype=y_pred.dtype)
        if self.label_smoothing:
            count = ops.cast(ops.shape(y_pred)[-1], y_pred.dtype)
            target = target * (1.0 - self.label_smoothing) + self.label_smoothing / count
        # As Keras's categorical losses: renormalise, then clip so log() never sees 0.
        epsilon = keras.backend.epsilon()
        probabilities = y_pred / ops.sum(y_pred, axis=-1, keepdims=True)
        probabilities = ops.clip(probabilities, epsilon, 1.0 - epsilon)
        per_class = -target * ops.log(probabilities)
        if self.focal_gamma:
            per_class = per_class * ops.power(1.0 - probabilities, self.focal_gamma)
        losses = ops.sum(per_class, axis=-1)
        if self.class_weights is not None:
            weights = ops.convert_to_tensor(self.class_weights, dtype=y_pred.dtype)
            losses = losses * ops.take(weights, classes)
        return losses

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "label_smoothing": self.label_smoothing,
            "focal_gamma": self.focal_gamma,
            "class_weights": None if self.class_weights is None else list(self.class_weights),
            "dtype": self._dtype_argument,
        }
