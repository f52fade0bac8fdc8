"""`BackboneSpec`: everything keras-transfer knows about a backbone, as data.

A spec names the backbone, says how to build it, which preprocessing it expects, and how its
layers split into ordered named blocks. Every block operation (freeze, unfreeze, describe,
discriminative learning rates, gradual unfreezing, feature taps) is written once against these
block maps, so it works the same for VGG, EfficientNet-Lite0 or a keras-hub preset.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable


@dataclasses.dataclass(frozen=True)
class BlockEnd:
    """Where a block ends: the `nth` layer (in graph order) matching `pattern`.

    `pattern` is a regular expression searched in the layer name, or ``"class:Name"`` to match
    the layer's class (for families whose layers are auto-named, e.g. Inception's stem).
    `nth=-1` takes the last match, `nth=0` the first. An `optional` block is simply absent from
    models without a match (EfficientNetV2-B0…S have six stages, M and L seven).

    Example:
    >>> BlockEnd(r"^block3_").nth
    -1
    """

    pattern: str
    nth: int = -1
    optional: bool = False


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """How to build one backbone and how its layers split into named blocks.

    Attributes:
        name: short stable name, e.g. ``"resnet50"``.
        family: architecture family, e.g. ``"resnet"`` (specs of a family share a block layout).
        source: ``"keras.applications"`` or ``"keras_hub"``.
        build: builds the core model: a ``keras.applications`` function (called with
            ``input_tensor`` and ``weights``), or for keras-hub a function of the resolved
            `WeightsSource` returning a hub ``Backbone``.
        preprocessing: ImagePreprocessing mode, or a dict of its arguments.
        blocks: ordered ``(block_name, BlockEnd)`` pairs after the stem. Layers before the first
            end belong to the stem; layers after the last end form ``"top"``.
        stem_end: where the stem ends (None: the stem holds only input and preprocessing).
        default_size: the input size the pretrained weights were trained at.
        min_size: the smallest input size the architecture accepts.
        description: one line for `list_backbones()` and the README table.
        build_kwargs: extra keyword arguments for `build`.
        has_offline_weights: ``weights="imagenet"`` is served from a shipped asset, no download.

    Example:
    >>> from keras_transfer.backbones import get_spec
    >>> get_spec("vgg16").block_names()[:3]
    ('stem', 'block1', 'block2')
    """

    name: str
    family: str
    source: str
    build: Callable[..., Any]
    preprocessing: str | dict
    blocks: tuple[tuple[str, BlockEnd], ...]
    stem_end: BlockEnd | None = None
    default_size: int = 224
    min_size: int = 32
    description: str = ""
    build_kwargs: dict = dataclasses.field(default_factory=dict)
    has_offline_weights: bool = False

    def block_names(self) -> tuple[str, ...]:
        """The declared block names, in order (``"top"`` is added when a model has layers there)."""
        return ("stem",) + tuple(name for name, _ in self.blocks) + ("top",)
