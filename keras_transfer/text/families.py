"""Text backbone families as data: block maps, preprocessors and heads per keras-hub backbone class.

One row per keras-hub backbone class says how its layers split into named blocks (``embeddings``,
``layer_0`` … ``layer_N``, then ``pooler`` or ``final_norm``), which preprocessor packs its
inputs, how a classifier pools its sequence, and whether it takes sentence pairs or has a causal
LM. Everything else (freeze/unfreeze/describe, discriminative learning rates, LoRA, heads) is
written once against these rows, exactly as the image side uses `BackboneSpec` block maps.

The block map of a concrete backbone is built from the layer names it really has (so the number
of ``layer_i`` blocks follows the model), through a spec finder registered with
`keras_transfer.backbones.registry`, so `freeze`, `unfreeze`, `describe` and `blocks_of` accept
text models. Importing this module does not import keras-hub.
"""

from __future__ import annotations

import dataclasses
import re

import keras

from keras_transfer.backbones.spec import BackboneSpec, BlockEnd
from keras_transfer.errors import UnknownBackboneError

# The embeddings block ends at the last of these layers (projection and relative position
# embeddings, where a family has them, belong to it).
EMBEDDINGS_END = r"^(embeddings_dropout|embeddings_projection|embedding_projection|rel_embedding)$"
POOLINGS = ("cls", "mean", "last", "pooler")


@dataclasses.dataclass(frozen=True)
class TextFamily:
    """What keras-transfer knows about one keras-hub text backbone class.

    Attributes:
        name: short family name, e.g. ``"bert"``.
        backbone_class: the keras-hub backbone class name, e.g. ``"BertBackbone"``.
        preprocessor: the keras-hub preprocessor class (in ``keras_hub.models``) that turns
            strings into this backbone's inputs.
        layer_pattern: regex for the layers of transformer block ``i``; ``{i}`` is replaced by
            the index. The block ends at the last layer that matches (ALBERT groups hold several).
        block_prefix: blocks are named ``f"{block_prefix}_{i}"``.
        tail: ``(block name, regex)`` blocks after the transformer layers.
        pooling: default pooling of a classifier: ``"cls"`` (first token), ``"mean"`` (masked
            mean), ``"last"`` (last real token, for causal models) or ``"pooler"``.
        pairs: the preprocessor packs sentence pairs (needed for pair classification and QA).
        causal_lm: the keras-hub CausalLM task class, for families that generate text.
        hub_presets: example keras-hub preset names (for documentation and offline hints).
        preprocessor_args: extra constructor arguments of `preprocessor`.
    """

    name: str
    backbone_class: str
    preprocessor: str
    layer_pattern: str = r"^transformer_layer_{i}$"
    block_prefix: str = "layer"
    tail: tuple[tuple[str, str], ...] = ()
    pooling: str = "cls"
    pairs: bool = True
    causal_lm: str | None = None
    hub_presets: tuple[str, ...] = ()
    preprocessor_args: tuple[tuple[str, object], ...] = ()


_POOLER = (("pooler", r"^pooled_dense$"),)

FAMILIES: tuple[TextFamily, ...] = (
    TextFamily("bert", "BertBackbone", "BertTextClassifierPreprocessor", tail=_POOLER,
               hub_presets=("bert_tiny_en_uncased", "bert_base_en_uncased")),
    TextFamily("distil_bert", "DistilBertBackbone", "DistilBertTextClassifierPreprocessor",
               hub_presets=("distil_bert_base_en_uncased",)),
    TextFamily("roberta", "RobertaBackbone", "RobertaTextClassifierPreprocessor",
               hub_presets=("roberta_base_en",)),
    TextFamily("albert", "AlbertBackbone", "AlbertTextClassifierPreprocessor",
               # ALBERT shares weights: a group's layer runs several times, so groups are blocks.
               layer_pattern=r"^group_{i}_inner_layer_\d+$", block_prefix="group", tail=_POOLER,
               hub_presets=("albert_base_en_uncased",)),
    TextFamily("deberta_v3", "DebertaV3Backbone", "DebertaV3TextClassifierPreprocessor",
               layer_pattern=r"^disentangled_attention_encoder_layer_{i}$",
               hub_presets=("deberta_v3_extra_small_en", "deberta_v3_base_en")),
    # keras-hub has no ELECTRA classifier preprocessor; the generic one packs like BERT.
    TextFamily("electra", "ElectraBackbone", "TextClassifierPreprocessor", tail=_POOLER,
               hub_presets=("electra_small_discriminator_uncased_en",)),
    TextFamily("gpt2", "GPT2Backbone", "GPT2Preprocessor", tail=(("final_norm", r"^layer_norm$"),),
               pooling="last", pairs=False, causal_lm="GPT2CausalLM",
               hub_presets=("gpt2_base_en",),
               preprocessor_args=(("add_start_token", True), ("add_end_token", True))),
)
_BY_CLASS = {family.backbone_class: family for family in FAMILIES}
_BY_NAME = {family.name: family for family in FAMILIES}


def is_text_backbone(layer) -> bool:
    """True for a keras-hub backbone of a supported text family.

    Example:
    >>> is_text_backbone(keras.layers.Dense(2))
    False
    """
    return (isinstance(layer, keras.Model) and type(layer).__module__.startswith("keras_hub")
            and type(layer).__name__ in _BY_CLASS)


def family_of(backbone) -> TextFamily:
    """The `TextFamily` row of a keras-hub text backbone (instance), or of a family name.

    Example:
    >>> family_of("gpt2").pooling
    'last'
    """
    if isinstance(backbone, str):
        if backbone in _BY_NAME:
            return _BY_NAME[backbone]
        raise UnknownBackboneError(
            f"Unknown text family {backbone!r}; supported: {', '.join(_BY_NAME)}.")
    family = _BY_CLASS.get(type(backbone).__name__)
    if family is None:
        raise UnknownBackboneError(
            f"{type(backbone).__name__} is not a supported text backbone; supported keras-hub "
            f"classes: {', '.join(_BY_CLASS)}. Add a TextFamily row to "
            "keras_transfer.text.families.FAMILIES to support another one."
        )
    return family


def layer_indices(backbone: keras.Model, family: TextFamily) -> list[int]:
    """The transformer block indices present in `backbone`, in order.

    Example:
    >>> from keras_transfer.testing.tiny_text import make_tiny_preset
    >>> import keras_hub, tempfile
    >>> preset = str(make_tiny_preset("bert", tempfile.mkdtemp()))
    >>> bb = keras_hub.models.Backbone.from_preset(preset)
    >>> layer_indices(bb, family_of(bb))
    [0, 1]
    """
    regex = re.compile(family.layer_pattern.replace("{i}", r"(\d+)"))
    found = {int(m.group(1)) for layer in backbone.layers if (m := regex.search(layer.name))}
    return sorted(found)


def text_spec(backbone: keras.Model) -> BackboneSpec:
    """The block map of a keras-hub text backbone as a `BackboneSpec` (blocks from its layers).

    Example:
    >>> from keras_transfer.testing.tiny_text import make_tiny_preset
    >>> import keras_hub, tempfile
    >>> preset = str(make_tiny_preset("gpt2", tempfile.mkdtemp()))
    >>> bb = keras_hub.models.Backbone.from_preset(preset)
    >>> [name for name, _ in text_spec(bb).blocks]
    ['embeddings', 'layer_0', 'layer_1', 'final_norm']
    """
    family = family_of(backbone)
    blocks = [("embeddings", BlockEnd(EMBEDDINGS_END))]
    for i in layer_indices(backbone, family):
        pattern = family.layer_pattern.replace("{i}", str(i))
        blocks.append((f"{family.block_prefix}_{i}", BlockEnd(pattern)))
    blocks += [(name, BlockEnd(pattern, optional=True)) for name, pattern in family.tail]
    return BackboneSpec(
        name=backbone.name,
        family=family.name,
        source="keras_hub",
        build=lambda *args, **kwargs: backbone,  # specs of text backbones describe, never build
        preprocessing={},
        blocks=tuple(blocks),
        description=f"keras-hub {family.backbone_class}",
    )


def find_text_spec(candidate) -> BackboneSpec | None:
    """Spec finder for `keras_transfer.backbones.registry`: a spec for text backbones, else None.

    Example:
    >>> find_text_spec(keras.Sequential()) is None
    True
    """
    return text_spec(candidate) if is_text_backbone(candidate) else None
