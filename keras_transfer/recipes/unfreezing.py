"""Gradual unfreezing (ULMFiT): one more backbone block trains every few epochs, in `model.fit`.

Two Keras 3 details make this work inside a single `fit` call:

- the compiled train step captured the trainable variables when it was traced, so after changing
  `trainable` the train function is rebuilt (`model.make_train_function(force=True)`);
- an optimizer only updates the variables it was built on, so it must know every variable that
  may ever train before the first unfreezing (`ensure_optimizer_covers`).
"""

from __future__ import annotations

import keras

from keras_transfer.backbones.blocks import blocks_of, unfreeze, unfrozen_blocks
from keras_transfer.compat.keras_internals import (
    optimizer_built_for,
    optimizer_key,
    optimizer_own_variables,
)
from keras_transfer.recipes.discriminative import candidate_variables


def ensure_optimizer_covers(model: keras.Model, variables: list | None = None):
    """Makes `model.optimizer` know `variables` (default: every variable that can ever train).

    An unbuilt optimizer is built on them. A built one missing some is replaced by a fresh
    optimizer of the same config, built on all of them, with the old optimizer's state
    (iterations, learning rate, moments of the variables it knew) copied over by variable path,
    so this is safe in the middle of training too. Returns the optimizer now in use.

    Example:
    >>> from keras_transfer import build_image_classifier
    >>> model = build_image_classifier("vgg16", num_classes=2, weights=None,
    ...                                input_shape=(32, 32, 3))
    >>> optimizer = ensure_optimizer_covers(model)
    >>> len(optimizer_built_for(optimizer)), len(model.trainable_variables)
    (28, 2)
    """
    optimizer = model.optimizer
    if optimizer is None:
        raise ValueError("ensure_optimizer_covers: compile the model first.")
    variables = candidate_variables(model) if variables is None else list(variables)
    if not optimizer.built:
        optimizer.build(variables)
        return optimizer
    built_for = optimizer_built_for(optimizer)
    known = {optimizer_key(optimizer, v) for v in built_for}
    if all(optimizer_key(optimizer, v) in known for v in variables):
        return optimizer
    wanted = {optimizer_key(optimizer, v) for v in variables}
    order = variables + [v for v in built_for if optimizer_key(optimizer, v) not in wanted]
    fresh = type(optimizer).from_config(optimizer.get_config())
    fresh.build(order)
    _copy_state(optimizer, fresh)
    model.optimizer = fresh
    if getattr(model, "train_function", None) is not None:
        model.make_train_function(force=True)  # the old one captured the old optimizer
    return fresh


def _chain(optimizer) -> list:
    """The optimizer and the ones it wraps (LossScaleOptimizer, DiscriminativeOptimizer…)."""
    chain = [optimizer]
    while getattr(chain[-1], "inner_optimizer", None) is not None:
        chain.append(chain[-1].inner_optimizer)
    return chain


def _copy_state(old, new) -> None:
    # Slot names embed the model variable's path ("block5_conv1_kernel_momentum") and are unique
    # within one optimizer; paths are not usable, they depend on the name scope at build time.
    for source, target in zip(_chain(old), _chain(new)):
        # Each optimizer's own variables: a wrapper's `variables` also lists the wrapped one's.
        by_name = {v.name: v for v in optimizer_own_variables(source)}
        for variable in optimizer_own_variables(target):
            previous = by_name.get(variable.name)
            if previous is not None and tuple(previous.shape) == tuple(variable.shape):
                variable.assign(previous)


class GradualUnfreezing(keras.callbacks.Callback):
    """Unfreezes one more backbone block, from the top, every `every` epochs during `fit`.

    Before epoch `start` only the head trains (all blocks frozen); at epoch `start` the last
    block unfreezes, at ``start + every`` the last two, and so on up to `max_blocks` (default:
    every block). The state is a function of the epoch number, so a run resumed by
    `BackupAndRestore` continues with the right blocks (and its optimizer state).
    BatchNormalization layers stay in inference mode unless `train_batchnorm=True`.

    The number of unfrozen blocks of each epoch is recorded in `unfrozen` and in the epoch logs
    (``logs["unfrozen_blocks"]``, so it lands in `History` and CSV logs).

    Example:
    >>> import numpy as np
    >>> from keras_transfer import build_image_classifier
    >>> model = build_image_classifier("vgg16", num_classes=2, weights=None,
    ...                                input_shape=(32, 32, 3))
    >>> callback = GradualUnfreezing(every=2, start=1, max_blocks=3)
    >>> [callback.blocks_at(epoch) for epoch in range(8)]
    [0, 1, 1, 2, 2, 3, 3, 3]
    """

    def __init__(
        self,
        every: int = 1,
        start: int | None = None,
        max_blocks: int | None = None,
        *,
        train_batchnorm: bool = False,
        verbose: int = 0,
    ):
        super().__init__()
        if every < 1:
            raise ValueError(f"every={every!r}: expected a positive number of epochs.")
        self.every = int(every)
        self.start = self.every if start is None else int(start)
        if self.start < 0:
            raise ValueError(f"start={start!r}: expected an epoch >= 0.")
        self.max_blocks = max_blocks
        self.train_batchnorm = train_batchnorm
        self.verbose = verbose
        self.unfrozen: dict[int, int] = {}
        self._current: int | None = None

    def blocks_at(self, epoch: int) -> int:
        """How many blocks (from the top) train during `epoch` (0-based).

        Example:
        >>> GradualUnfreezing(every=1).blocks_at(0), GradualUnfreezing(every=1).blocks_at(3)
        (0, 3)
        """
        count = 0 if epoch < self.start else 1 + (epoch - self.start) // self.every
        return count if self.max_blocks is None else min(count, self.max_blocks)

    def variables_to_train(self, model: keras.Model) -> list:
        """Every variable this schedule may train: the head's and those of the last
        `max_blocks` blocks (optimizer slots for blocks that never open would be wasted).

        Example:
        >>> from keras_transfer import build_image_classifier
        >>> model = build_image_classifier("vgg16", num_classes=2, weights=None,
        ...                                input_shape=(32, 32, 3))
        >>> [v.path for v in GradualUnfreezing(max_blocks=1).variables_to_train(model)][:2]
        ['block5_conv1/kernel', 'block5_conv1/bias']
        """
        blocks = blocks_of(model)
        count = None if self.max_blocks is None else min(self.max_blocks, len(blocks))
        backbone = {id(w) for b in blocks for layer in b.layers for w in layer.weights}
        # Exactly what `unfreeze(last=count)` will open: it counts effective blocks only.
        opening = {id(w) for b in unfrozen_blocks(model, count) for layer in b.layers
                   for w in layer.weights}
        return [v for v in candidate_variables(model)
                if id(v) not in backbone or id(v) in opening]

    def set_model(self, model):
        super().set_model(model)
        # `fit` sets the model before any `on_train_begin`, so the optimizer is complete before
        # `BackupAndRestore` (wherever it sits in the list) loads its saved state into it.
        if getattr(model, "optimizer", None) is not None:
            ensure_optimizer_covers(model, self.variables_to_train(model))

    def on_train_begin(self, logs=None):
        total = sum(block.effective for block in blocks_of(self.model))
        if self.max_blocks is None or self.max_blocks > total:
            self.max_blocks = total
        self._current = None
        ensure_optimizer_covers(self.model, self.variables_to_train(self.model))

    def on_epoch_begin(self, epoch, logs=None):
        count = self.blocks_at(epoch)
        if count != self._current:
            unfreeze(self.model, last=count, train_batchnorm=self.train_batchnorm)
            # The traced train step holds the old list of trainable variables.
            self.model.make_train_function(force=True)
            if self.verbose and self._current is not None:
                print(f"\nGradualUnfreezing: epoch {epoch + 1}: {count} block(s) trainable.")
            self._current = count
        self.unfrozen[epoch] = count

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["unfrozen_blocks"] = self.unfrozen.get(epoch, self._current)
