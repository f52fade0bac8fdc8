"""Predicting with strings-in text models from plain Python lists, and with their TFLite files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import keras
import numpy as np

from keras_transfer.errors import BadInputError


def predict_text(model: keras.Model, texts: Sequence, *, batch_size: int = 32):
    """``model.predict`` on a list of strings, or a list of string pairs for a pair model.

    (Keras turns a plain list of Python strings into a fixed-width numpy array it cannot feed;
    this passes string tensors instead.)

    Example:
    >>> import tempfile
    >>> from keras_transfer.text import build_text_classifier, make_tiny_preset
    >>> model = build_text_classifier(str(make_tiny_preset("bert", tempfile.mkdtemp())), 2,
    ...                               sequence_length=8)
    >>> predict_text(model, ["a good day", "a bad day"]).shape
    (2, 2)
    """
    import tensorflow as tf

    texts = list(texts)
    arity = len(model.inputs)
    if arity == 1:
        x = tf.constant([str(t) for t in texts], dtype=tf.string)
    else:
        if any(not isinstance(t, (list, tuple)) or len(t) != arity for t in texts):
            raise ValueError(f"predict_text: model '{model.name}' takes {arity} texts per "
                             "example; pass a list of tuples.")
        x = tuple(tf.constant([str(t[i]) for t in texts], dtype=tf.string) for i in range(arity))
    out = model.predict(x, batch_size=batch_size, verbose=0)
    return {k: np.asarray(v) for k, v in out.items()} if isinstance(out, dict) else np.asarray(out)


def pretokenize(model: keras.Model, texts) -> list[np.ndarray]:
    """Tokenizes `texts` once, in Python, into the inputs of `token_model(model)` (same order).

    `texts`: a list of strings, or for two-input models a tuple of two lists.

    Example:
    >>> import tempfile
    >>> from keras_transfer.text import build_text_classifier, make_tiny_preset, token_model
    >>> model = build_text_classifier(str(make_tiny_preset("bert", tempfile.mkdtemp())), 2,
    ...                               sequence_length=8)
    >>> inner, names = token_model(model)
    >>> [a.shape for a in pretokenize(model, ["a good day"])]
    [(1, 8), (1, 8), (1, 8)]
    """
    import tensorflow as tf

    from keras_transfer.text.export import _preprocessing_layer, token_model
    from keras_transfer.text.layers import run_preprocessor

    layer = _preprocessing_layer(model)
    _, names = token_model(model)
    if isinstance(texts, tuple):
        texts = tuple(tf.constant([str(t) for t in column]) for column in texts)
    else:
        texts = tf.constant([str(t) for t in texts])
    tokens = run_preprocessor(layer.preprocessor, texts)
    return [np.asarray(tokens[name]) for name in names]


def token_dataset(
    model: keras.Model,
    x,
    y=None,
    *,
    batch_size: int = 32,
    shuffle: bool = False,
    seed: int | None = None,
    length_step: int | None = None,
):
    """A ``tf.data`` pipeline of token batches for `token_model(model)`, tokenized once.

    `x` as in `pretokenize`; `y` an array (or a dict of arrays) of labels, or None (for
    ``predict``: the elements are then ``(tokens,)``). With
    `length_step` (e.g. 16) texts are grouped by length, rounded up to a multiple of
    `length_step`, and each batch is cut to its group's width ("dynamic padding"): short tweets
    no longer pay for the longest one. Such batches need ``token_model(model,
    variable_length=True)``, and come out grouped, not in input order (keep labels or indices in
    `y` to match them up). With `shuffle`, the order changes every epoch (reproducibly with
    `seed`).

    Example:
    >>> import tempfile
    >>> from keras_transfer.text import build_text_classifier, make_tiny_preset
    >>> model = build_text_classifier(str(make_tiny_preset("bert", tempfile.mkdtemp())), 2,
    ...                               sequence_length=32)
    >>> data = token_dataset(model, ["a day", "a good day " * 3], [0, 1], batch_size=1,
    ...                      length_step=8)
    >>> sorted(int(tokens[0].shape[1]) for tokens, _ in data)
    [8, 16]
    """
    import tensorflow as tf

    if length_step is not None and (not isinstance(length_step, int) or length_step < 1):
        raise ValueError(f"length_step={length_step!r}: expected a positive integer or None.")
    tokens = tuple(pretokenize(model, x))
    count = len(tokens[0])
    # Always (inputs,) or (inputs, labels): a bare tuple of three token arrays would be read by
    # Keras as (x, y, sample_weight).
    elements = (tokens,) if y is None else (tokens, y)
    data = tf.data.Dataset.from_tensor_slices(elements)
    if shuffle:
        data = data.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    if length_step is None:
        return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    from keras_transfer.text.export import token_model

    _, names = token_model(model)
    mask_at = names.index("padding_mask")
    width = tokens[mask_at].shape[1]

    def bucket(*element):
        length = tf.reduce_sum(tf.cast(element[0][mask_at], tf.int64))
        return (length + length_step - 1) // length_step

    def cut(*batch):
        # Every text in the batch has the same rounded length: cut the padding past it.
        length = tf.reduce_max(tf.reduce_sum(tf.cast(batch[0][mask_at], tf.int32), axis=1))
        keep = tf.minimum((length + length_step - 1) // length_step * length_step, width)
        return (tuple(t[:, :keep] for t in batch[0]),) + batch[1:]

    data = data.group_by_window(bucket, lambda _, window: window.batch(batch_size),
                                window_size=batch_size)
    # Known length (a progress bar with a total, no "ran out of data" warning): one partial
    # batch at most per group.
    groups = np.ceil(np.asarray(tokens[mask_at]).sum(axis=1) / length_step)
    _, sizes = np.unique(groups, return_counts=True)
    batches = int(np.sum(np.ceil(sizes / batch_size)))
    data = data.map(lambda *batch: cut(*batch))
    return data.apply(tf.data.experimental.assert_cardinality(batches)).prefetch(
        tf.data.AUTOTUNE)


def fit_tokenized(
    model: keras.Model,
    x,
    y,
    *,
    batch_size: int = 32,
    shuffle: bool = True,
    seed: int | None = None,
    length_step: int | None = None,
    jit_compile: bool | None = None,
    validation_data: tuple | None = None,
    **fit_kwargs,
) -> keras.callbacks.History:
    """``model.fit`` with the texts tokenized once up front instead of inside every step.

    Trains the same weights (through `token_model(model)`, compiled like `model`); faster on
    CPUs, where the in-graph tokenizer costs time at every step and when tracing. `x` as in
    `pretokenize`; `y` as in ``model.fit``; ``validation_data=(texts, labels)``. Two more
    speed-ups: `length_step` (dynamic padding, see `token_dataset`) and ``jit_compile=True``
    (XLA; about 1.5x faster for MiniLM on a CPU; one compilation per batch shape).
    `fit_kwargs` go to ``fit`` (``epochs``, ``callbacks``, ``verbose``, …).

    Example:
    >>> import tempfile
    >>> from keras_transfer.text import build_text_classifier, make_tiny_preset
    >>> preset = make_tiny_preset("bert", tempfile.mkdtemp(), num_layers=1)
    >>> model = build_text_classifier(str(preset), 2, sequence_length=8)
    >>> history = fit_tokenized(model, ["a good day", "a bad day"], np.array([1, 0]), epochs=1,
    ...                         length_step=4, verbose=0)
    >>> len(history.history["loss"])
    1
    """
    from keras_transfer.text.export import token_model

    if model.optimizer is None:
        raise ValueError(f"fit_tokenized: compile '{model.name}' first.")
    inner, _ = token_model(model, variable_length=length_step is not None)
    config = model.get_compile_config()
    if jit_compile is not None:
        config["jit_compile"] = jit_compile
    inner.compile_from_config(config)
    options = {"batch_size": batch_size, "length_step": length_step}
    train = token_dataset(model, x, y, shuffle=shuffle, seed=seed, **options)
    if validation_data is not None:
        validation_data = token_dataset(model, *validation_data, **options)
    # The dataset shuffles itself (each epoch); `fit` must not try to.
    return inner.fit(train, validation_data=validation_data, shuffle=False, **fit_kwargs)


def as_batches(texts, arity: int) -> list[list[str]]:
    """Texts → one list of strings per model input: strings, or tuples of `arity` strings.

    Example:
    >>> as_batches([("q1", "c1"), ("q2", "c2")], 2)
    [['q1', 'q2'], ['c1', 'c2']]
    """
    if arity == 1:
        return [list(texts)]
    rows = [tuple(t) if isinstance(t, (list, tuple)) else (t,) * arity for t in texts]
    if any(len(r) != arity for r in rows):
        raise BadInputError(f"texts: each item must be a string or {arity} strings.")
    return [list(column) for column in zip(*rows)]


def tokenize(preprocessor, batches: list[list[str]], names: Sequence[str]
             ) -> dict[str, np.ndarray]:
    """Token inputs ``{name: int32 (N, sequence_length)}`` of `batches` (see `as_batches`).

    Example:
    >>> # tokenize(load_preprocessor("export/tokenizer"), [["a good day"]], ["token_ids"])
    """
    import tensorflow as tf

    from keras_transfer.text.layers import run_preprocessor

    columns = [tf.constant(column) for column in batches]
    out = run_preprocessor(preprocessor, tuple(columns) if len(columns) > 1 else columns[0])
    return {name: np.asarray(out[name]).astype("int32") for name in names}


class TextTFLiteRunner:
    """Runs an exported text ``.tflite`` on strings: tokenizes in Python, then runs the file.

    A thin use of `keras_transfer.export.interpreter.TFLiteModel` (the file is checked first)
    with the export's ``tokenizer/``. This is what on-device code does (with its own tokenizer
    implementation); use it to check a TFLite file against the Keras model.

    Example:
    >>> # runner = TextTFLiteRunner("exports/sentiment")
    >>> # runner.predict(["what a great film"])["predictions"].shape  ->  (1, 3)
    """

    def __init__(self, directory: str | os.PathLike, filename: str = "model.tflite",
                 threads: int | None = None):
        from keras_transfer.export.interpreter import TFLiteModel
        from keras_transfer.text.export import TOKENIZER_DIR, load_preprocessor

        directory = Path(directory)
        path = directory / filename
        if not path.is_file():
            raise BadInputError(f"{path} does not exist.")
        self.preprocessor = load_preprocessor(directory / TOKENIZER_DIR)
        self.model = TFLiteModel(path, threads=threads, signature="serve_tokens")
        self.input_names = self.model.input_names

    def predict(self, texts) -> dict[str, np.ndarray]:
        """Outputs for `texts` (a list of strings, or a list of string pairs)."""
        arity = 2 if texts and isinstance(texts[0], (list, tuple)) else 1
        return self.predict_tokens(tokenize(self.preprocessor, as_batches(texts, arity),
                                            self.input_names))

    def predict_tokens(self, tokens: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs for already tokenized inputs (int32 arrays, one row per example)."""
        return self.model({k: np.asarray(v, "int32") for k, v in tokens.items()})
