"""Predicting with strings-in text models from plain Python lists."""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np


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


def fit_tokenized(model: keras.Model, x, y, **fit_kwargs) -> keras.callbacks.History:
    """``model.fit`` with the texts tokenized once up front instead of inside every step.

    Trains the same weights (through `token_model(model)`, compiled like `model`); faster on
    CPUs, where the in-graph tokenizer costs time at every step and when tracing. `x` as in
    `pretokenize`; `y` and `fit_kwargs` as in ``model.fit`` (no ``validation_data`` of strings).

    Example:
    >>> import tempfile
    >>> from keras_transfer.text import build_text_classifier, make_tiny_preset
    >>> preset = make_tiny_preset("bert", tempfile.mkdtemp(), num_layers=1)
    >>> model = build_text_classifier(str(preset), 2, sequence_length=8)
    >>> history = fit_tokenized(model, ["a good day", "a bad day"], np.array([1, 0]), epochs=1,
    ...                         verbose=0)
    >>> len(history.history["loss"])
    1
    """
    from keras_transfer.text.export import token_model

    if model.optimizer is None:
        raise ValueError(f"fit_tokenized: compile '{model.name}' first.")
    inner, _ = token_model(model)
    inner.compile_from_config(model.get_compile_config())
    return inner.fit(pretokenize(model, x), y, **fit_kwargs)
