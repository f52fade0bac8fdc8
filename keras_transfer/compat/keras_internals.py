"""Keras internals, behind one small API (written for Keras 3.8–3.15).

Keras records on every symbolic tensor the operation (layer) and call node that produced it
(``tensor._keras_history``) and on every layer the nodes of its calls (``layer._inbound_nodes``).
Block maps, feature/head splits, Grad-CAM taps and token sub-models walk that graph; a resumed
`fit` starts from ``model._initial_epoch`` (what `keras.callbacks.BackupAndRestore` sets), and
that callback writes its backup in its ``_save_model`` hook from its ``_current_epoch`` /
``_last_batch_seen`` counters. Nested layers come from ``layer._flatten_layers``, the variables a
layer created trainable from ``layer._trainable_variables``. An optimizer's state belongs to the
variables it was built for (``optimizer._trainable_variables``), filed under
``optimizer._var_key(variable)``, next to its own variables (``optimizer._variables``); each
step it runs ``_backend_update_step`` (one learning rate for every variable) and
``_apply_weight_decay``, which `DiscriminativeOptimizer` replaces on the optimizer it wraps.

`check()` verifies all of these on the installed Keras; each function runs it when it fails, so
a Keras that moved one of them gives a `CompatError` naming this shim and the versions.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable, Hashable, Iterator

import keras

from keras_transfer.compat import checked_by, incompatible


def check() -> None:
    """Raises `CompatError` unless the installed Keras has every internal used here.

    Example:
    >>> check()
    """
    try:
        _check_internals()
    except (AttributeError, ImportError, TypeError, IndexError) as error:  # something moved
        raise incompatible("keras_internals", f"{type(error).__name__}: {error}") from error


def _check_internals() -> None:
    inputs = keras.Input((2,))
    dense = keras.layers.Dense(1, name="dense")
    outputs = dense(inputs)
    model = keras.Model(inputs, {"score": outputs})
    _expect(hasattr(outputs, "_keras_history"), "symbolic tensors have no `_keras_history`")
    history = outputs._keras_history
    _expect(all(hasattr(history, f) for f in ("operation", "node_index", "tensor_index")),
            "`_keras_history` is not (operation, node_index, tensor_index)")
    nodes = getattr(dense, "_inbound_nodes", None)
    _expect(isinstance(nodes, list) and len(nodes) == 1, "layers have no `_inbound_nodes` list")
    _expect(nodes[0].operation is dense and nodes[0].input_tensors[0] is inputs,
            "call nodes lack `operation` / `input_tensors`")
    _expect(isinstance(getattr(model, "_outputs_struct", None), dict),
            "functional models have no `_outputs_struct`")
    _expect(hasattr(model, "_initial_epoch"), "models have no `_initial_epoch` (fit's start)")
    _expect(dense in model._flatten_layers(include_self=False), "`Layer._flatten_layers` is gone")
    optimizer = keras.optimizers.SGD()
    optimizer.build(model.trainable_variables)
    _expect(list(getattr(optimizer, "_trainable_variables", ())) == model.trainable_variables,
            "optimizers do not record `_trainable_variables` when built")
    _check_optimizer(optimizer, model.trainable_variables)
    _check_layer_state(dense)
    _check_backup_hook()


def _check_optimizer(optimizer: keras.optimizers.Optimizer, variables: list) -> None:
    """What `optimizer_key`, `optimizer_own_variables` and `replace_update_step` use."""
    _expect(callable(getattr(optimizer, "_var_key", None))
            and len({optimizer._var_key(v) for v in variables}) == len(variables),
            "optimizers have no `_var_key(variable)` keying their state")
    own = getattr(optimizer, "_variables", None)
    _expect(isinstance(own, list) and any(v is optimizer.iterations for v in own),
            "optimizers keep their own variables in no `_variables` list")
    calls = []
    fresh = keras.optimizers.SGD(1.0, weight_decay=0.5)
    replace_update_step.__wrapped__(  # unwrapped: a failure here must not re-run check()
        fresh,
        lambda step, grads, variables, rate: calls.append("update") or step(grads, variables, rate),
        lambda decay, variables: calls.append("decay") or decay(variables))
    variable = keras.Variable([1.0])
    fresh.apply([keras.ops.ones((1,))], [variable])
    _expect(calls == ["decay", "update"] and float(variable[0]) == -0.5,
            "optimizers no longer run `_apply_weight_decay(variables)` then "
            "`_backend_update_step(grads, variables, learning_rate)` in each step")


def _check_backup_hook() -> None:
    """What `BackupAndRestoreBase` uses: Keras calls `_save_model` with the counters set."""
    _expect(callable(getattr(keras.callbacks.BackupAndRestore, "_save_model", None)),
            "keras.callbacks.BackupAndRestore has no `_save_model()` hook")
    saved = []

    class Recorder(BackupAndRestoreBase):
        def save_backup(self) -> None:
            saved.append((self.current_epoch, self.last_batch_seen))

    Recorder("unused-backup-dir").on_epoch_end(2)
    Recorder("unused-backup-dir", save_freq=1).on_train_batch_end(3)
    _expect(saved == [(3, 0), (0, 3)], "keras.callbacks.BackupAndRestore no longer calls "
            "`_save_model()` after setting `_current_epoch` / `_last_batch_seen`")


def _check_layer_state(dense: keras.layers.Layer) -> None:
    """What `created_trainable_variables`, `lora_base_kernel` and `layout_only` use."""
    from keras.src.backend.common import global_state

    dense.trainable = False
    _expect(len(dense._trainable_variables) == 2, "layers have no `_trainable_variables` list "
            "(the variables created trainable)")
    dense.trainable = True
    dense.enable_lora(1)
    _expect(getattr(dense, "_kernel", None) is not None and not dense._kernel.trainable,
            "LoRA-enabled Dense layers have no frozen `_kernel`")
    _expect(callable(getattr(global_state, "get_global_attribute", None))
            and callable(getattr(global_state, "set_global_attribute", None)),
            "keras.src.backend.common.global_state has no get/set_global_attribute")


def _expect(condition: bool, problem: str) -> None:
    if not condition:
        raise incompatible("keras_internals", problem)


@checked_by(check)
def producer(tensor: Any) -> tuple[Any, int, int]:
    """``(operation, node_index, tensor_index)`` of the call that produced a symbolic tensor.

    Example:
    >>> inputs = keras.Input((2,)); dense = keras.layers.Dense(1)
    >>> producer(dense(inputs))[0] is dense
    True
    """
    return tuple(tensor._keras_history)


@checked_by(check)
def producing_layer(tensor: Any) -> Any:
    """The layer (operation) whose call produced a symbolic tensor.

    Example:
    >>> inputs = keras.Input((2,)); dense = keras.layers.Dense(1)
    >>> producing_layer(dense(inputs)) is dense
    True
    """
    return tensor._keras_history.operation


@checked_by(check)
def producing_node(tensor: Any) -> Any:
    """The call node that produced a symbolic tensor (``.operation``, ``.input_tensors``).

    Example:
    >>> inputs = keras.Input((2,)); dense = keras.layers.Dense(1)
    >>> producing_node(dense(inputs)).input_tensors[0] is inputs
    True
    """
    operation, node_index, _ = tensor._keras_history
    return operation._inbound_nodes[node_index]


def call_nodes(layer: Any) -> list:
    """The nodes of every call of `layer` on symbolic tensors, in call order (empty if none).

    Example:
    >>> dense = keras.layers.Dense(1); _ = dense(keras.Input((2,))); _ = dense(keras.Input((2,)))
    >>> len(call_nodes(dense))
    2
    """
    nodes = getattr(layer, "_inbound_nodes", None)
    if nodes is None:
        check()  # every Keras layer has them: a Keras without them fails here, by name
        return []  # not a Keras layer
    return list(nodes)


@checked_by(check)
def outputs_structure(model: keras.Model) -> Any:
    """A functional model's outputs in the structure they were given (a dict, a list, …).

    Example:
    >>> inputs = keras.Input((2,))
    >>> model = keras.Model(inputs, {"score": keras.layers.Dense(1)(inputs)})
    >>> sorted(outputs_structure(model))
    ['score']
    """
    return model._outputs_struct


def set_initial_epoch(model: keras.Model, epoch: int) -> None:
    """Makes the next `model.fit` start at `epoch`, as `keras.callbacks.BackupAndRestore` does
    from `on_train_begin` after restoring a backup.

    Example:
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> set_initial_epoch(model, 3); model._initial_epoch
    3
    """
    if not hasattr(model, "_initial_epoch"):  # a plain attribute: setting it cannot fail
        check()
    model._initial_epoch = epoch


@checked_by(check)
def sublayers(layer: keras.layers.Layer, include_self: bool = False) -> list:
    """Every layer nested in `layer` (recursively, in tracking order), optionally `layer` too.

    Unlike ``model.layers`` this reaches layers inside nested models and composite layers.

    Example:
    >>> inner = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="d")])
    >>> outer = keras.Sequential([keras.Input((2,)), inner])
    >>> "d" in [layer.name for layer in sublayers(outer)]
    True
    """
    return list(layer._flatten_layers(include_self=include_self, recursive=True))


@checked_by(check)
def optimizer_built_for(optimizer: keras.optimizers.Optimizer) -> list | None:
    """The variables `optimizer`'s state (slots) was built for, in order; None when unbuilt.

    Example:
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> optimizer = keras.optimizers.Adam()
    >>> optimizer_built_for(optimizer) is None
    True
    >>> optimizer.build(model.trainable_variables)
    >>> len(optimizer_built_for(optimizer))
    2
    """
    if not optimizer.built:
        return None
    return list(optimizer._trainable_variables)


@checked_by(check)
def optimizer_key(optimizer: keras.optimizers.Optimizer, variable: Any) -> Hashable:
    """The key `optimizer` files `variable`'s state under: the same for a Keras variable and for
    the backend variable its update step receives (TensorFlow: the tf.Variable's unique id),
    where a Keras path would not do.

    Example:
    >>> optimizer = keras.optimizers.SGD(); variable = keras.Variable([1.0])
    >>> optimizer_key(optimizer, variable) == optimizer_key(optimizer, variable.value)
    True
    """
    return optimizer._var_key(variable)


@checked_by(check)
def optimizer_own_variables(optimizer: keras.optimizers.Optimizer) -> list:
    """The variables `optimizer` created itself (iterations, learning rate, slots), without
    those of an optimizer it wraps (which ``optimizer.variables`` may add).

    Example:
    >>> optimizer = keras.optimizers.SGD()
    >>> [variable.name for variable in optimizer_own_variables(optimizer)]
    ['iteration', 'learning_rate']
    """
    return list(optimizer._variables)


@checked_by(check)
def replace_update_step(
    optimizer: keras.optimizers.Optimizer,
    update_step: Callable[[Callable, list, list, Any], None],
    apply_weight_decay: Callable[[Callable, list], None],
) -> None:
    """Makes `optimizer`'s steps call ``update_step(own_update_step, grads, variables,
    learning_rate)`` and ``apply_weight_decay(own_weight_decay, variables)`` instead of its
    own per-step update (one learning rate for every variable) and decoupled weight decay,
    which they receive first, to call on any part of the variables.

    Only this instance changes: its class, config and serialization stay a plain optimizer's.

    Example:
    >>> optimizer = keras.optimizers.SGD(1.0); variable = keras.Variable([1.0])
    >>> def halved(step, grads, variables, rate):
    ...     step(grads, variables, keras.ops.multiply(rate, 0.5))
    >>> replace_update_step(optimizer, halved, lambda decay, variables: decay(variables))
    >>> optimizer.apply([keras.ops.ones((1,))], [variable]); float(variable[0])
    0.5
    """
    own_update_step = type(optimizer)._backend_update_step.__get__(optimizer)
    own_weight_decay = type(optimizer)._apply_weight_decay.__get__(optimizer)
    # object.__setattr__: Keras' tracking __setattr__ must not see the functions.
    object.__setattr__(optimizer, "_backend_update_step",
                       functools.partial(update_step, own_update_step))
    object.__setattr__(optimizer, "_apply_weight_decay",
                       functools.partial(apply_weight_decay, own_weight_decay))


class BackupAndRestoreBase(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` whose backup writer is a public hook to override.

    Keras calls `save_backup` at the end of each epoch (or every `save_freq` batches), with
    `current_epoch` and `last_batch_seen` telling where training is; by default it writes
    Keras' own backup.

    Example:
    >>> class Announcing(BackupAndRestoreBase):
    ...     def save_backup(self):
    ...         print("backup after epoch", self.current_epoch, "batch", self.last_batch_seen)
    >>> Announcing("unused-dir").on_epoch_end(0)
    backup after epoch 1 batch 0
    """

    def _save_model(self) -> None:  # Keras' own hook, private
        self.save_backup()

    def save_backup(self) -> None:
        """Writes the backup: Keras' own ``latest.weights.h5`` unless overridden.

        Example:
        >>> callable(BackupAndRestoreBase.save_backup)
        True
        """
        super()._save_model()

    @property
    def current_epoch(self) -> int:
        """The number of epochs completed (the epoch a resumed `fit` starts at).

        Example:
        >>> BackupAndRestoreBase("unused-dir").current_epoch
        0
        """
        return self._current_epoch

    @property
    def last_batch_seen(self) -> int:
        """The index of the last batch seen in the current epoch (0 at an epoch's end).

        Example:
        >>> BackupAndRestoreBase("unused-dir").last_batch_seen
        0
        """
        return self._last_batch_seen


@checked_by(check)
def created_trainable_variables(layer: keras.layers.Layer) -> list:
    """The variables of `layer` and its sublayers created trainable, frozen now or not.

    Keras' ``trainable`` setter flips each variable's own flag, so a frozen layer's
    ``trainable_weights`` is empty; these are what unfreezing it can train (kernels, biases,
    BatchNorm gamma/beta; not moving statistics or other state).

    Example:
    >>> bn = keras.layers.BatchNormalization(); bn.build((None, 3)); bn.trainable = False
    >>> sorted(v.name for v in created_trainable_variables(bn))
    ['beta', 'gamma']
    """
    return [variable for sub in sublayers(layer, include_self=True)
            for variable in sub._trainable_variables]


def lora_base_kernel(layer: keras.layers.Layer) -> Any:
    """The frozen base kernel of a LoRA-enabled Dense / EinsumDense layer, else None.

    Example:
    >>> dense = keras.layers.Dense(2); dense.build((None, 3)); dense.enable_lora(1)
    >>> lora_base_kernel(dense).trainable
    False
    """
    return getattr(layer, "_kernel", None) if getattr(layer, "lora_enabled", False) else None


@contextlib.contextmanager
def layout_only() -> Iterator[None]:
    """Builds models inside without initializing their weights, to read their structure (layer
    names, classes, block maps) at a fraction of the cost. Never use such a model's weights.

    Example:
    >>> with layout_only():
    ...     dense = keras.layers.Dense(4); dense.build((None, 2))
    >>> tuple(dense.kernel.shape)
    (2, 4)
    """
    from keras.src.backend.common import global_state

    key = "uninitialized_variables"  # Keras initializes these at the next StatelessScope exit
    pending = list(global_state.get_global_attribute(key, []) or [])
    try:
        with keras.StatelessScope(initialize_variables=False):
            yield
    finally:
        global_state.set_global_attribute(key, pending)
