"""Discriminative (layer-wise) learning rates: a learning-rate multiplier per named block.

Early blocks hold generic features that need little change; late blocks and the head need more.
`block_lr_multipliers` decays the multiplier geometrically from the head (1.0) down to the stem,
and `DiscriminativeOptimizer` applies a multiplier per variable inside any Keras 3 optimizer, in
an ordinary `model.fit`, and survives a `.keras` save/load round trip (`safe_mode=True`).

Why the learning rate and not the gradient: Adam, RMSprop and friends are invariant to the scale
of the gradient (the update is ``m / sqrt(v)``), so scaling gradients would do nothing there.
Scaling the learning rate a variable is updated with works for every optimizer.
"""

from __future__ import annotations

import re
from typing import Mapping

import keras
from keras import ops

from keras_transfer.backbones.blocks import blocks_of
from keras_transfer.compat.keras_internals import (
    created_trainable_variables,
    optimizer_key,
    replace_update_step,
)

HEAD = "head"


def candidate_variables(model: keras.Model) -> list:
    """Every variable of `model` that training can ever update, frozen or not, in model order.

    These are the variables created trainable (kernels, biases, BatchNorm gamma/beta); BatchNorm
    moving statistics and other state are left out. Freezing a layer does not remove its
    variables from this list, which is what an optimizer that must outlive unfreezing needs.

    Example:
    >>> from keras_transfer import build_image_classifier
    >>> model = build_image_classifier("vgg16", num_classes=2, weights=None,
    ...                                input_shape=(32, 32, 3))
    >>> len(model.trainable_variables), len(candidate_variables(model))
    (2, 28)
    """
    created_trainable = {id(variable) for variable in created_trainable_variables(model)}
    return [variable for variable in model.weights if id(variable) in created_trainable]


def block_lr_multipliers(
    model: keras.Model, decay: float = 0.5, *, head: float = 1.0
) -> dict[str, float]:
    """Learning-rate multipliers per block, decaying geometrically from the head to the stem.

    The head gets `head`, the backbone's last block ``head * decay``, the one before it
    ``head * decay**2`` and so on down to the stem (fastai's ``slice(lr_low, lr_high)`` idea,
    per named block). The result maps block names (and ``"head"``) to multipliers; edit it
    freely before passing it to `discriminative_optimizer`.

    Example:
    >>> from keras_transfer import build_image_classifier
    >>> model = build_image_classifier("vgg16", num_classes=2, weights=None,
    ...                                input_shape=(32, 32, 3))
    >>> multipliers = block_lr_multipliers(model, decay=0.5)
    >>> list(multipliers)
    ['stem', 'block1', 'block2', 'block3', 'block4', 'block5', 'head']
    >>> list(multipliers.values())
    [0.015625, 0.03125, 0.0625, 0.125, 0.25, 0.5, 1.0]
    """
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"decay={decay!r}: expected a factor in [0, 1].")
    names = [block.name for block in blocks_of(model)]
    multipliers = {name: float(head * decay ** (len(names) - i)) for i, name in enumerate(names)}
    multipliers[HEAD] = float(head)
    return multipliers


def variable_lr_multipliers(
    model: keras.Model, block_multipliers: Mapping[str, float]
) -> dict[str, float]:
    """Expands per-block multipliers into ``{variable path: multiplier}`` for the backbone.

    Variable paths (``"block_16_project/kernel"``, ``layer name/variable name``) are what
    `DiscriminativeOptimizer` stores: they are the same on a freshly built model and on one
    loaded from a `.keras` file, unlike Python ids. Blocks not named keep multiplier 1.0 (they
    are left out); ``"head"`` is not expanded here (it is the optimizer's default multiplier).

    Example:
    >>> from keras_transfer import build_image_classifier
    >>> model = build_image_classifier("vgg16", num_classes=2, weights=None,
    ...                                input_shape=(32, 32, 3))
    >>> paths = variable_lr_multipliers(model, {"block5": 0.5})
    >>> paths["block5_conv1/kernel"], len(paths)
    (0.5, 6)
    """
    blocks = {block.name: block for block in blocks_of(model)}
    unknown = sorted(set(block_multipliers) - set(blocks) - {HEAD})
    if unknown:
        raise ValueError(f"Unknown block(s) {unknown}; the blocks are {list(blocks)} and 'head'.")
    candidates = {id(v) for v in candidate_variables(model)}
    paths: dict[str, float] = {}
    for name, multiplier in block_multipliers.items():
        if name == HEAD:
            continue
        for layer in blocks[name].layers:
            for variable in layer.weights:
                if id(variable) in candidates:
                    paths[variable.path] = float(multiplier)
    return paths


def _compile(pattern: str) -> re.Pattern:
    try:
        return re.compile(pattern)
    except re.error as error:
        raise ValueError(f"multipliers: {pattern!r} is neither a variable path nor a valid "
                         f"regular expression ({error}).") from None


@keras.saving.register_keras_serializable(package="keras_transfer")
class DiscriminativeOptimizer(keras.optimizers.Optimizer):
    """Wraps a Keras optimizer so that each variable trains at ``learning_rate * multiplier``.

    `multipliers` maps variable paths (exact, e.g. ``"block_16_project/kernel"``) or regular
    expressions matched in full against the path (e.g. ``"block_1[0-6]_.*"``) to multipliers;
    variables matching nothing use `default_multiplier` (the head). Exact paths win over
    patterns; two patterns giving one variable different multipliers is an error.

    How it works: the wrapped optimizer's per-step update is run once per distinct multiplier,
    on that group of variables, with the learning rate scaled (and decoupled weight decay, which
    is ``lr * weight_decay``, scaled alike). Its own update rule, schedule, clipping, EMA,
    gradient accumulation and `tf.distribute` handling are untouched, and there is still one
    optimizer step (one `iterations` increment) per batch. Learning-rate callbacks
    (`ReduceLROnPlateau`, `LearningRateScheduler`) see and set the base learning rate.

    Under ``mixed_float16`` let `compile` wrap *this* optimizer in a `LossScaleOptimizer` (it
    does so by itself); wrapping a `LossScaleOptimizer` here is refused.

    Args:
        optimizer: the optimizer to wrap: an instance or a name such as ``"adam"``.
        multipliers: ``{variable path or pattern: multiplier}``; see `variable_lr_multipliers`.
        default_multiplier: the multiplier of every variable that no key matches.
        name: the optimizer's name.

    Example:
    >>> import keras
    >>> layer = keras.layers.Dense(1, kernel_initializer="zeros", name="dense")
    >>> layer.build((None, 2))
    >>> opt = DiscriminativeOptimizer(keras.optimizers.SGD(1.0), {"dense/kernel": 0.1})
    >>> opt.apply([keras.ops.ones((2, 1)), keras.ops.ones((1,))], layer.trainable_variables)
    >>> round(float(layer.kernel[0, 0]), 4), round(float(layer.bias[0]), 4)
    (-0.1, -1.0)
    """

    def __init__(
        self,
        optimizer: keras.optimizers.Optimizer | str | dict,
        multipliers: Mapping[str, float] | None = None,
        default_multiplier: float = 1.0,
        name: str | None = None,
    ):
        super().__init__(learning_rate=0.0, name=name or "discriminative")
        if isinstance(optimizer, dict):
            optimizer = keras.optimizers.deserialize(optimizer)
        optimizer = keras.optimizers.get(optimizer)
        if isinstance(optimizer, (keras.optimizers.LossScaleOptimizer, DiscriminativeOptimizer)) \
                or type(optimizer).__name__ == "MultiOptimizer":
            raise TypeError(
                f"DiscriminativeOptimizer cannot wrap a {type(optimizer).__name__}: its update "
                "step runs inside the optimizer it wraps. Wrap the plain optimizer, and put a "
                "LossScaleOptimizer (if any) around the DiscriminativeOptimizer."
            )
        self.inner_optimizer = optimizer
        self.multipliers = {str(k): float(v) for k, v in dict(multipliers or {}).items()}
        self.default_multiplier = float(default_multiplier)
        self._patterns = [(_compile(k), v) for k, v in self.multipliers.items()
                          if re.escape(k) != k]  # plain paths are exact keys, never patterns
        object.__setattr__(self, "_scales", {})  # filled by build()
        self._install_hooks()

    # ------------------------------------------------------------------ multipliers

    def multiplier_for(self, variable) -> float:
        """The multiplier applied to `variable` (looked up by its path).

        Example:
        >>> import keras
        >>> opt = DiscriminativeOptimizer("sgd", {"conv.*": 0.1}, default_multiplier=2.0)
        >>> v = keras.Variable(1.0, name="kernel")
        >>> opt.multiplier_for(v)
        2.0
        """
        path = getattr(variable, "path", None) or str(variable.name)
        if path in self.multipliers:
            return self.multipliers[path]
        found = {m for pattern, m in self._patterns if pattern.fullmatch(path)}
        if len(found) > 1:
            raise ValueError(
                f"Variable '{path}' matches several patterns with different multipliers {found}."
            )
        return found.pop() if found else self.default_multiplier

    def _install_hooks(self) -> None:
        # The wrapped optimizer runs its update step once per step with one learning rate for
        # every variable, and (TF) its weight decay reads `self.learning_rate`. Per-variable
        # rates need both to run per multiplier group. Only the instance changes, so the wrapped
        # optimizer's class, config and serialization stay exactly those of a plain optimizer.
        inner = self.inner_optimizer

        def scaled_update_step(update_step, grads, variables, learning_rate):
            for multiplier, (group_grads, group_vars) in self._groups(grads, variables).items():
                rate = (learning_rate if multiplier == 1.0
                        else ops.multiply(learning_rate, multiplier))
                update_step(group_grads, group_vars, rate)

        def scaled_weight_decay(weight_decay, variables):
            base = inner.weight_decay
            if base is None:
                return weight_decay(variables)
            for multiplier, (_, group_vars) in self._groups(variables, variables).items():
                # Python-level and restored at once: traced into the graph as a constant.
                inner.weight_decay = base * multiplier
                try:
                    weight_decay(group_vars)
                finally:
                    inner.weight_decay = base

        replace_update_step(inner, scaled_update_step, scaled_weight_decay)

    def _groups(self, values, variables) -> dict[float, tuple[list, list]]:
        groups: dict[float, tuple[list, list]] = {}
        inner = self.inner_optimizer
        for value, variable in zip(values, variables):
            multiplier = self._scales.get(optimizer_key(inner, variable), self.default_multiplier)
            group = groups.setdefault(multiplier, ([], []))
            group[0].append(value)
            group[1].append(variable)
        return groups

    # ------------------------------------------------------------------ optimizer API

    def build(self, var_list):
        if self.built:
            return
        self.inner_optimizer.build(var_list)
        # Keyed like the optimizer keys its own slots (TF: the tf.Variable's unique id), because
        # the TF backend hands the update step tf.Variables, which have no Keras path.
        scales = {optimizer_key(self.inner_optimizer, v): self.multiplier_for(v) for v in var_list}
        object.__setattr__(self, "_scales", scales)  # plain dict: nothing to track or save
        super().build(var_list)

    def apply(self, grads, trainable_variables=None):
        if not self.built:
            if trainable_variables is None:
                raise ValueError("Build the optimizer first or pass `trainable_variables`.")
            with keras.name_scope(self.name, caller=self):
                self.build(list(trainable_variables))
        self.inner_optimizer.apply(grads, trainable_variables)

    @property
    def variables(self):
        # Its own (iterations and the unused learning rate Keras gives every optimizer), then
        # the wrapped optimizer's.
        return super().variables + self.inner_optimizer.variables

    @property
    def learning_rate(self):
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate):
        self.inner_optimizer.learning_rate = learning_rate

    @property
    def iterations(self):
        return self.inner_optimizer.iterations

    def scale_loss(self, loss):
        return self.inner_optimizer.scale_loss(loss)

    def finalize_variable_values(self, var_list):
        self.inner_optimizer.finalize_variable_values(var_list)

    def stateless_apply(self, optimizer_variables, grads, trainable_variables):
        raise NotImplementedError("DiscriminativeOptimizer does not support stateless_apply.")

    def get_config(self) -> dict:
        # Not super().get_config(): the wrapper has no learning rate, clipping or EMA of its own.
        return {
            "name": self.name,
            "optimizer": keras.saving.serialize_keras_object(self.inner_optimizer),
            "multipliers": dict(self.multipliers),
            "default_multiplier": self.default_multiplier,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["optimizer"] = keras.saving.deserialize_keras_object(
            config["optimizer"], custom_objects=custom_objects)
        return cls(**config)


def discriminative_optimizer(
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer | str = "adam",
    *,
    decay: float = 0.5,
    multipliers: Mapping[str, float] | None = None,
) -> DiscriminativeOptimizer:
    """An optimizer for `model` with a learning-rate multiplier per block.

    `multipliers` (block name → multiplier, ``"head"`` included, see `block_lr_multipliers`)
    defaults to a geometric decay by `decay` per block from the head down to the stem. Use the
    result in `model.compile`; frozen blocks simply receive no updates.

    Example:
    >>> import keras
    >>> from keras_transfer import build_image_classifier
    >>> model = build_image_classifier("vgg16", num_classes=2, weights=None,
    ...                                input_shape=(32, 32, 3), trainable_blocks=2)
    >>> opt = discriminative_optimizer(model, keras.optimizers.Adam(1e-4), decay=0.3)
    >>> opt.multiplier_for(model.get_layer("vgg16").get_layer("block5_conv3").kernel)
    0.3
    >>> model.compile(opt, loss="sparse_categorical_crossentropy")
    """
    if multipliers is None:
        multipliers = block_lr_multipliers(model, decay)
    return DiscriminativeOptimizer(
        optimizer,
        variable_lr_multipliers(model, multipliers),
        default_multiplier=float(multipliers.get(HEAD, 1.0)),
    )
