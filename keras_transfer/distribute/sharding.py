"""tf.data auto-sharding: the policy that fits each kind of source (files, caches, tensors)."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import tensorflow as tf

from keras_transfer.compat.tensorflow_internals import dataset_graph_def
from keras_transfer.distribute.workers import worker_info

# tf.data ops, by what they say about where the data comes from (see `shard_policy`).
_FILE_READERS = {"TFRecordDataset", "TFRecordDatasetV2", "TextLineDataset",
                 "FixedLengthRecordDataset", "FixedLengthRecordDatasetV2"}


_CACHES = {"CacheDataset", "CacheDatasetV2", "SnapshotDataset", "SnapshotDatasetV2",
           "LoadDataset"}


_SHARDED = {"ShardDataset"}


def shard_policy(
    dataset: tf.data.Dataset,
    strategy: tf.distribute.Strategy | None = None,
    *,
    files: Sequence[str] | None = None,
    num_workers: int | None = None,
) -> tf.data.experimental.AutoShardPolicy:
    """The auto-shard policy `dataset` needs under `strategy`.

    - OFF with one input pipeline (nothing to shard), or when the pipeline already calls
      ``shard()`` itself (sharding again would drop data).
    - FILE when the source reads files (TFRecord, text lines, fixed-length records) and there
      are at least as many files as workers: each worker reads only its files.
    - DATA otherwise: in-memory arrays, generators, decoded image paths, anything cached
      (a cache file serves the whole dataset whatever the reader's files, so FILE would repeat
      data), or too few files (a worker would get none). Always correct; each worker reads
      everything and keeps its share.

    `files` names the files the source reads, when known (else they are found in the graph);
    `num_workers` overrides the strategy's number of input pipelines.

    Example:
    >>> ds = tf.data.Dataset.from_tensor_slices(np.arange(8)).batch(4)
    >>> shard_policy(ds).name  # one worker: nothing to shard
    'OFF'
    >>> shard_policy(ds, num_workers=2).name
    'DATA'
    """
    Policy = tf.data.experimental.AutoShardPolicy
    workers = num_workers if num_workers is not None else worker_info(strategy).num_workers
    if workers <= 1:
        return Policy.OFF
    ops, strings, patterns = _dataset_graph(dataset)
    if ops & _SHARDED:
        return Policy.OFF
    if not ops & _FILE_READERS or ops & _CACHES:
        return Policy.DATA
    if files is None:
        found = {s for s in strings if _looks_like_file(s)}
        for pattern in patterns:
            found.update(tf.io.gfile.glob(pattern))
        count = len(found)
    else:
        count = len(files)
    return Policy.FILE if count >= workers else Policy.DATA


def _looks_like_file(value: str) -> bool:
    return "://" in value or os.path.isfile(value)


def _dataset_graph(dataset: tf.data.Dataset) -> tuple[set[str], set[str], set[str]]:
    """(op types, string constants, list_files patterns) of a dataset's graph and functions."""
    graph = dataset_graph_def(dataset)  # the graph tf.data's own auto-sharding rewrites
    nodes = list(graph.node) + [n for f in graph.library.function for n in f.node_def]
    by_name = {n.name: n for n in nodes}
    ops = {n.op for n in nodes}

    def strings_of(node) -> list[str]:
        if node.op != "Const" or "value" not in node.attr:
            return []
        tensor = node.attr["value"].tensor
        if tensor.dtype != tf.string.as_datatype_enum:
            return []
        values = tf.io.parse_tensor(tensor.SerializeToString(), tf.string).numpy()
        return [v.decode("utf-8", "replace") for v in np.ravel(values)]

    strings = {s for n in nodes for s in strings_of(n)}
    patterns = {s for n in nodes if n.op == "MatchingFiles"
                for i in n.input if i.split(":")[0] in by_name
                for s in strings_of(by_name[i.split(":")[0]])}
    return ops, strings - patterns, patterns


def with_sharding(
    dataset: tf.data.Dataset | None,
    strategy: tf.distribute.Strategy | None = None,
    *,
    files: Sequence[str] | None = None,
) -> tf.data.Dataset | None:
    """`dataset` with the auto-shard policy of `shard_policy` set (None stays None).

    Example:
    >>> ds = with_sharding(tf.data.Dataset.range(4).batch(2))
    >>> ds.options().experimental_distribute.auto_shard_policy.name
    'OFF'
    """
    if dataset is None or not isinstance(dataset, tf.data.Dataset):
        return dataset
    options = tf.data.Options()
    policy = shard_policy(dataset, strategy, files=files)
    options.experimental_distribute.auto_shard_policy = policy
    return dataset.with_options(options)
