"""Keras internals, behind one small API (written for Keras 3.8–3.15).

Keras records on every symbolic tensor the operation (layer) and call node that produced it
(``tensor._keras_history``) and on every layer the nodes of its calls (``layer._inbound_nodes``).
Block maps, feature/head splits, Grad-CAM taps and token sub-models walk that graph; a resumed
`fit` starts from ``model._initial_epoch`` (what `keras.callbacks.BackupAndRestore` sets). Nested
layers come from ``layer._flatten_layers``; an optimizer's state belongs to the variables it was
built for (``optimizer._trainable_variables``).

`check()` verifies all of these on the installed Keras; each function runs it when it fails, so
a Keras that moved one of them gives a `CompatError` naming this shim and the versions.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

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
    _check_layer_state(dense)


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
