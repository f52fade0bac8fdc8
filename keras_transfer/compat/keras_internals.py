"""Keras functional-graph internals, behind one small API (Keras 3.15).

Keras records on every symbolic tensor the operation (layer) and call node that produced it
(``tensor._keras_history``) and on every layer the nodes of its calls (``layer._inbound_nodes``).
Block maps, feature/head splits, Grad-CAM taps and token sub-models walk that graph; a resumed
`fit` starts from ``model._initial_epoch`` (what `keras.callbacks.BackupAndRestore` sets).
"""

from __future__ import annotations

from typing import Any

import keras


def producer(tensor: Any) -> tuple[Any, int, int]:
    """``(operation, node_index, tensor_index)`` of the call that produced a symbolic tensor.

    Example:
    >>> inputs = keras.Input((2,)); dense = keras.layers.Dense(1)
    >>> producer(dense(inputs))[0] is dense
    True
    """
    return tuple(tensor._keras_history)


def producing_layer(tensor: Any) -> Any:
    """The layer (operation) whose call produced a symbolic tensor.

    Example:
    >>> inputs = keras.Input((2,)); dense = keras.layers.Dense(1)
    >>> producing_layer(dense(inputs)) is dense
    True
    """
    return tensor._keras_history.operation


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
    return list(getattr(layer, "_inbound_nodes", []))


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
    model._initial_epoch = epoch
