"""Models and strategy scopes: copy a model built outside a strategy into it, and back."""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

import keras
import tensorflow as tf

from keras_transfer.compat.keras_internals import sublayers
from keras_transfer.distribute.strategies import keras_fit_fixes, resolve_strategy


def variables_in_scope(model: keras.Model, strategy: tf.distribute.Strategy) -> bool:
    """True when every variable of `model` was created under `strategy`'s scope.

    Example:
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> variables_in_scope(model, tf.distribute.get_strategy())
    True
    """
    return all(strategy.extended.variable_created_in_scope(v.value) for v in model.weights)


def copy_trainable_flags(source: keras.Model, target: keras.Model) -> None:
    """Gives `target`'s layers the `trainable` flags of `source`'s (same architecture).

    Example:
    >>> a = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> b = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> a.layers[0].trainable = False
    >>> copy_trainable_flags(a, b)
    >>> b.layers[0].trainable
    False
    """
    for a, b in zip(sublayers(source), sublayers(target)):
        b.trainable = a.trainable


def clone_into(model: keras.Model, strategy: tf.distribute.Strategy | None) -> keras.Model:
    """A copy of `model` (architecture, weights, trainable flags) built under `strategy`'s scope;
    None builds it outside any strategy (a plain local model, e.g. to evaluate or export).

    Example:
    >>> import numpy as np
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> copy = clone_into(model, None)
    >>> np.allclose(copy.get_weights()[0], model.get_weights()[0])
    True
    """
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        copy = keras.models.clone_model(model)
        copy_trainable_flags(model, copy)
        copy.set_weights(model.get_weights())
    return copy


def local_copy(model: keras.Model) -> keras.Model:
    """`model` itself when it is not distributed, else `clone_into(model, None)`.

    Evaluation and export want a plain model: under a strategy with several replicas,
    ``predict_on_batch`` returns one copy of the batch per replica.

    Example:
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> local_copy(model) is model
    True
    """
    if model.weights and isinstance(model.weights[0].value, tf.distribute.DistributedValues):
        return clone_into(model, None)
    return model


def local_predict(model: keras.Model) -> Callable[[Any], Any]:
    """``predict_on_batch`` that stays on this process and device under any strategy.

    Keras' ``predict_on_batch`` under a strategy with several replicas hands the whole batch to
    every replica and concatenates the copies; this calls the model directly instead.

    Example:
    >>> import numpy as np
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> local_predict(model)(np.zeros((3, 2), "float32")).shape
    (3, 1)
    """
    strategy = getattr(model, "distribute_strategy", None)  # TensorFlow backend only
    if strategy is None or strategy.num_replicas_in_sync == 1:
        return model.predict_on_batch
    forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    return lambda x: keras.tree.map_structure(keras.ops.convert_to_numpy, forward(x))


@contextlib.contextmanager
def training_scope(model: keras.Model,
                   strategy: str | tf.distribute.Strategy | None) -> Iterator[keras.Model]:
    """Yields the model to train under `strategy`, inside its scope.

    That is `model` itself when its variables already belong to the strategy (it was built in
    ``strategy.scope()``), else a copy built in the scope; on a normal exit the copy's weights
    and trainable flags go back into `model`, so the caller's model is the trained one either
    way. With `strategy` None or ``"default"`` no scope is entered: a model built in a
    strategy's scope trains under that strategy anyway.

    Under a strategy of several replicas the block runs with `keras_fit_fixes` (two Keras bugs
    in `fit` under tf.distribute), whether the strategy is given or the model's own.

    Example:
    >>> import numpy as np
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> with training_scope(model, "one_device") as net:
    ...     net.compile("sgd", "mse")
    ...     _ = net.fit(np.ones((4, 2)), np.ones((4, 1)), verbose=0)
    >>> net is model  # built outside the scope: trained as a copy, weights copied back
    False
    """
    strategy = resolve_strategy(strategy) if strategy is not None else None
    if strategy is None or (strategy is tf.distribute.get_strategy()
                            and not tf.distribute.has_strategy()):
        # No strategy, or TensorFlow's default one: no scope; `fit` uses the model's own.
        with keras_fit_fixes(getattr(model, "distribute_strategy", None)):
            yield model
        return
    with strategy.scope(), keras_fit_fixes(strategy):
        net = model if variables_in_scope(model, strategy) else clone_into(model, strategy)
        yield net
    if net is not model:
        model.set_weights(net.get_weights())
        copy_trainable_flags(net, model)
