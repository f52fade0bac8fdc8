"""TensorFlow internals, behind one small API (written for TensorFlow 2.18–2.21).

`keras_transfer.distribute.shard_policy` reads a `tf.data` pipeline's graph (its source ops and
file names) to choose the auto-shard policy, the graph tf.data's own auto-sharding rewrites:
``Dataset._as_serialized_graph`` serialises it and ``tf.compat.v1.GraphDef`` parses it (the
GraphDef proto has no TF2 name).
"""

from __future__ import annotations

import inspect

import tensorflow as tf

from keras_transfer.compat import checked_by, incompatible


def check() -> None:
    """Raises `CompatError` unless the installed TensorFlow serialises dataset graphs as used.

    Example:
    >>> check()
    """
    method = getattr(tf.data.Dataset, "_as_serialized_graph", None)
    if method is None or "external_state_policy" not in inspect.signature(method).parameters:
        raise incompatible("tensorflow_internals", "tf.data.Dataset._as_serialized_graph("
                           "external_state_policy=...) is gone or changed", ("tensorflow",))
    if not hasattr(getattr(tf.compat, "v1", None), "GraphDef"):
        raise incompatible("tensorflow_internals", "tf.compat.v1.GraphDef is gone",
                           ("tensorflow",))


@checked_by(check)
def dataset_graph_def(dataset: tf.data.Dataset) -> tf.compat.v1.GraphDef:
    """The GraphDef of `dataset`'s pipeline (stateful ops such as shuffles included as is).

    Example:
    >>> graph = dataset_graph_def(tf.data.Dataset.range(3).map(lambda x: x + 1))
    >>> "RangeDataset" in {node.op for node in graph.node}
    True
    """
    serialized = dataset._as_serialized_graph(
        external_state_policy=tf.data.experimental.ExternalStatePolicy.IGNORE)
    return tf.compat.v1.GraphDef.FromString(serialized.numpy())
