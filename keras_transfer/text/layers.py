"""Layers of the text models (registered, so `keras.models.load_model(..., safe_mode=True)` works).

- `TextPreprocessing` puts a keras-hub preprocessor (tokenizer + packer) inside the model, so the
  model takes strings and an exported SavedModel needs no tokenization code.
- `SequencePooling` turns a token sequence into one vector (first token, masked mean, last token).
- `SpanProbabilities` turns per-token start/end logits into two distributions over positions.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import keras
from keras import ops

_NEG_INF = -1e9


def run_preprocessor(preprocessor, texts) -> dict:
    """Calls a keras-hub preprocessor on one batch of strings or a tuple of segment batches.

    (Called with one tuple argument, keras-hub would unpack it as ``(x, y)``; the explicit
    ``y=None`` keeps a sentence pair a pair.)

    Example:
    >>> # run_preprocessor(pre, (questions, contexts))["token_ids"]
    """
    return preprocessor(tuple(texts) if isinstance(texts, list) else texts, None)


def _deserialize_hub(config):
    import keras_hub  # noqa: F401 - registers the keras-hub classes named in `config`

    return keras.saving.deserialize_keras_object(config)


@keras.saving.register_keras_serializable(package="keras_transfer")
class TextPreprocessing(keras.layers.Layer):
    """Strings in, a backbone's token inputs out: a keras-hub preprocessor as a model layer.

    Takes one batch of strings ``(batch,)`` or, for sentence pairs, a list of two. Returns the
    dict the backbone takes (``token_ids``, ``padding_mask`` and, where the family has them,
    ``segment_ids``), each ``(batch, sequence_length)``.

    Why a wrapper: Keras rebuilds a loaded model's graph *before* it restores the tokenizer's
    vocabulary; the shapes below let it do so without running the tokenizer. Runs under the
    TensorFlow backend (tokenizers are TF ops); it is not trainable.

    Args:
        preprocessor: a keras-hub preprocessor (e.g. ``BertTextClassifierPreprocessor``).
        specs: ``{output name: [sequence_length, dtype]}``; computed from `preprocessor` when
            omitted (it must have its vocabulary then).

    Example:
    >>> import tempfile, keras_hub
    >>> from keras_transfer.testing.tiny_text import make_tiny_preset
    >>> preset = str(make_tiny_preset("bert", tempfile.mkdtemp()))
    >>> pre = keras_hub.models.TextClassifierPreprocessor.from_preset(preset, sequence_length=8)
    >>> out = TextPreprocessing(pre)(keras.ops.convert_to_tensor(["the city"]))
    >>> sorted(out), tuple(out["token_ids"].shape)
    (['padding_mask', 'segment_ids', 'token_ids'], (1, 8))
    """

    def __init__(self, preprocessor, specs: Mapping[str, Sequence] | None = None, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        if isinstance(preprocessor, dict):
            preprocessor = _deserialize_hub(preprocessor)
        self.preprocessor = preprocessor
        if specs is None:
            import tensorflow as tf

            probe = preprocessor(tf.constant(["a"]))
            specs = {key: [int(value.shape[-1]), value.dtype.name] for key, value in probe.items()}
        self.specs = {str(key): [int(value[0]), str(value[1])] for key, value in specs.items()}

    @property
    def sequence_length(self) -> int:
        return next(iter(self.specs.values()))[0]

    def build(self, input_shape):
        # Nothing to build here: the keras-hub preprocessor builds on its first call, once its
        # vocabulary is loaded.
        self.built = True

    def call(self, inputs):
        if isinstance(inputs, (list, tuple)):
            inputs = tuple(inputs) if len(inputs) > 1 else inputs[0]
        outputs = run_preprocessor(self.preprocessor, inputs)
        return {key: outputs[key] for key in self.specs}

    def compute_output_spec(self, inputs):
        first = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
        return {key: keras.KerasTensor((first.shape[0], length), dtype=dtype)
                for key, (length, dtype) in self.specs.items()}

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(preprocessor=keras.saving.serialize_keras_object(self.preprocessor),
                      specs=self.specs)
        return config


POOLING_MODES = ("cls", "mean", "last")


@keras.saving.register_keras_serializable(package="keras_transfer")
class SequencePooling(keras.layers.Layer):
    """Pools ``(batch, length, dim)`` token vectors into ``(batch, dim)`` using the padding mask.

    Modes: ``"cls"`` the first token (BERT-style encoders), ``"mean"`` the mean over real tokens
    (sentence-transformers style), ``"last"`` the last real token (causal models such as GPT-2,
    whose last token is the only one that has seen the whole text; inputs padded on the right).

    Example:
    >>> x = keras.ops.reshape(keras.ops.arange(12, dtype="float32"), (1, 4, 3))
    >>> mask = keras.ops.convert_to_tensor([[1, 1, 0, 0]])
    >>> SequencePooling("mean")(x, mask).numpy().tolist()
    [[1.5, 2.5, 3.5]]
    >>> SequencePooling("last")(x, mask).numpy().tolist()
    [[3.0, 4.0, 5.0]]
    """

    def __init__(self, mode: str = "cls", **kwargs):
        super().__init__(**kwargs)
        if mode not in POOLING_MODES:
            raise ValueError(f"SequencePooling: mode={mode!r} is not one of {POOLING_MODES}.")
        self.mode = mode

    def call(self, sequence, padding_mask):
        if self.mode == "cls":
            return sequence[:, 0, :]
        mask = ops.cast(padding_mask, sequence.dtype)
        if self.mode == "mean":
            total = ops.sum(sequence * mask[:, :, None], axis=1)
            return total / ops.maximum(ops.sum(mask, axis=1, keepdims=True), 1.0)
        last = ops.maximum(ops.sum(ops.cast(padding_mask, "int32"), axis=1) - 1, 0)
        return ops.take_along_axis(sequence, last[:, None, None], axis=1)[:, 0, :]

    def compute_output_shape(self, sequence_shape, padding_mask_shape=None):
        return (sequence_shape[0], sequence_shape[-1])

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(mode=self.mode)
        return config


@keras.saving.register_keras_serializable(package="keras_transfer")
class SpanProbabilities(keras.layers.Layer):
    """Start/end logits ``(batch, length, 2)`` → two softmax distributions over positions.

    Padding positions get probability 0. Computes in float32 (mixed-precision safe).

    Example:
    >>> logits = keras.ops.zeros((1, 4, 2))
    >>> start, end = SpanProbabilities()(logits, keras.ops.convert_to_tensor([[1, 1, 0, 0]]))
    >>> start.numpy().tolist()
    [[0.5, 0.5, 0.0, 0.0]]
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, logits, padding_mask):
        logits = ops.cast(logits, "float32")
        blocked = (1.0 - ops.cast(padding_mask, "float32")) * _NEG_INF
        start = ops.softmax(logits[..., 0] + blocked, axis=-1)
        end = ops.softmax(logits[..., 1] + blocked, axis=-1)
        return start, end

    def compute_output_shape(self, logits_shape, padding_mask_shape=None):
        return tuple(logits_shape[:2]), tuple(logits_shape[:2])
