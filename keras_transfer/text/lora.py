"""LoRA on text backbones: one flag, the trainable-parameter count, adapters saved and loaded.

`enable_lora` calls keras-hub's ``backbone.enable_lora(rank)``: every backbone weight is frozen and
the attention query/value projections get low-rank adapters (``W + A·B``, ``B`` starting at 0, so
the model starts exactly as the pretrained one). The head stays trainable.

Saving: ``model.save("x.keras")`` writes the adapters *merged* into the kernels (Keras does this
for LoRA layers): the reloaded model predicts exactly the same, as a plain model. To keep training
with adapters, or to ship only the small part that trained, use `save_lora_weights` /
`load_lora_weights`: one ``.lora.h5`` file holding keras-hub's adapter weights (loadable by
``backbone.load_lora_weights`` alone) plus every other trainable weight (the head), applied to a
model built the same way from the same base preset.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import keras
import numpy as np

from keras_transfer.backbones.registry import find_backbone
from keras_transfer.compat.keras_hub import lora_enabled_layers, lora_rank
from keras_transfer.errors import BadInputError

_EXTRA_GROUP = "keras_transfer_trainable"


def _text_backbone(model: keras.Model) -> keras.Model:
    from keras_transfer.text.families import is_text_backbone

    backbone, _ = find_backbone(model)
    if not is_text_backbone(backbone):
        raise BadInputError(f"Model '{model.name}' has no keras-hub text backbone.")
    return backbone


def _forget_traced_functions(model: keras.Model) -> None:
    # fit/predict cache traced graphs of the model as it was; LoRA adds weights and changes calls.
    for name in ("train_function", "test_function", "predict_function"):
        if getattr(model, name, None) is not None:
            setattr(model, name, None)


def enable_lora(model: keras.Model, rank: int) -> dict[str, int]:
    """Freezes the text backbone inside `model` and adds LoRA adapters of `rank` to it.

    Returns `parameter_counts` of the result. Recompile the model afterwards.

    Example:
    >>> import tempfile
    >>> from keras_transfer.text import build_text_classifier
    >>> from keras_transfer.testing.tiny_text import make_tiny_preset
    >>> model = build_text_classifier(str(make_tiny_preset("bert", tempfile.mkdtemp())), 2,
    ...                               sequence_length=8, compile=False)
    >>> counts = enable_lora(model, rank=2)
    >>> counts["lora"] > 0 and counts["trainable"] < counts["total"]
    True
    """
    if not isinstance(rank, int) or rank < 1:
        raise BadInputError(f"lora_rank={rank!r}: expected a positive integer.")
    backbone = _text_backbone(model)
    if lora_enabled_layers(backbone):
        raise BadInputError(f"LoRA is already enabled on '{backbone.name}' "
                            f"(rank {lora_rank(backbone)}).")
    backbone.enable_lora(rank)
    if not lora_enabled_layers(backbone):
        raise BadInputError(
            f"{type(backbone).__name__} has none of the layers keras-hub puts LoRA on "
            f"({backbone.default_lora_layer_names()}).")
    _forget_traced_functions(model)
    return parameter_counts(model)


def _count(variables) -> int:
    return int(sum(np.prod(v.shape) for v in variables))


def parameter_counts(model: keras.Model) -> dict[str, int]:
    """Total, trainable and LoRA-adapter parameter counts of `model`.

    Example:
    >>> parameter_counts(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))
    {'total': 8, 'trainable': 8, 'lora': 0}
    """
    lora = [v for v in model.weights if "lora_kernel" in v.path]
    return {"total": _count(model.weights), "trainable": _count(model.trainable_weights),
            "lora": _count(lora)}


def describe_parameters(model: keras.Model) -> str:
    """One line: how many parameters train, e.g. for printing after enabling LoRA.

    Example:
    >>> describe_parameters(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))
    '8 of 8 parameters train (100.00%)'
    """
    counts = parameter_counts(model)
    share = 100.0 * counts["trainable"] / max(counts["total"], 1)
    text = f"{counts['trainable']:,} of {counts['total']:,} parameters train ({share:.2f}%)"
    if counts["lora"]:
        text += f"; LoRA adapters: {counts['lora']:,}"
    return text


def _extra_trainable(model: keras.Model) -> list:
    # Everything that trains besides the adapters: the head, and biases of the LoRA layers.
    return [v for v in model.trainable_weights if "lora_kernel" not in v.path]


def _keys(model: keras.Model) -> list[str]:
    # Variable paths are unique within a model built by our factories; the position makes the
    # key unique even if two were not.
    return [f"{i:04d}:{v.path}".replace("/", "|") for i, v in enumerate(_extra_trainable(model))]


def save_lora_weights(model: keras.Model, path: str | os.PathLike) -> Path:
    """Saves what LoRA training changed: the adapters and every other trainable weight.

    The file (``*.lora.h5``) is written atomically. keras-hub's own
    ``backbone.load_lora_weights(path)`` reads its adapter part.

    Example:
    >>> # save_lora_weights(model, "sentiment.lora.h5")
    """
    import h5py

    path = Path(path)
    if not path.name.endswith(".lora.h5"):
        raise BadInputError(f"save_lora_weights: {path} must end in '.lora.h5'.")
    backbone = _text_backbone(model)
    if not lora_enabled_layers(backbone):
        raise BadInputError(f"LoRA is not enabled on '{backbone.name}': nothing to save.")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        staged = tmp / path.name
        backbone.save_lora_weights(str(staged))
        with h5py.File(staged, "a") as handle:
            group = handle.create_group(_EXTRA_GROUP)
            for key, variable in zip(_keys(model), _extra_trainable(model)):
                group.create_dataset(key, data=keras.ops.convert_to_numpy(variable))
        os.replace(staged, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def load_lora_weights(model: keras.Model, path: str | os.PathLike) -> None:
    """Loads a `save_lora_weights` file into a model built the same way from the base preset.

    LoRA is enabled (at the file's rank) if it is not yet. Mismatching weights raise
    `BadInputError` naming the first one.

    Example:
    >>> # model = build_text_classifier("minilm_l6", 3, lora_rank=8)
    >>> # load_lora_weights(model, "sentiment.lora.h5")
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"load_lora_weights: {path} does not exist.")
    backbone = _text_backbone(model)
    _forget_traced_functions(model)
    try:
        backbone.load_lora_weights(str(path))
    except (KeyError, ValueError) as error:
        raise BadInputError(f"{path}: the LoRA adapters do not fit '{backbone.name}': "
                            f"{error}") from error
    with h5py.File(path, "r") as handle:
        stored = handle.get(_EXTRA_GROUP, {})
        keys, variables = _keys(model), _extra_trainable(model)
        if sorted(stored.keys()) != sorted(keys):
            missing = sorted(set(keys) ^ set(stored.keys()))[:1]
            raise BadInputError(
                f"{path}: its trainable weights do not match the model's (first difference: "
                f"{missing[0].split(':', 1)[-1].replace('|', '/') if missing else '?'}). Build "
                "the model exactly as the one that was saved (same head and sequence length).")
        for key, variable in zip(keys, variables):
            value = stored[key][()]
            if tuple(value.shape) != tuple(variable.shape):
                raise BadInputError(f"{path}: {variable.path} has shape {value.shape}, the "
                                    f"model expects {tuple(variable.shape)}.")
            variable.assign(value)
