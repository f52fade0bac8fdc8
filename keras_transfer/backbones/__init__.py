"""Backbones: the registry of specs, the factory and block-wise freezing."""

from keras_transfer.backbones.blocks import Block, blocks_of, split_blocks
from keras_transfer.backbones.freezing import freeze, set_trainable, set_trainable_blocks, unfreeze
from keras_transfer.backbones.registry import (
    build_backbone,
    find_backbone,
    get_spec,
    list_backbones,
    register_backbone,
)
from keras_transfer.backbones.spec import BackboneSpec, BlockEnd
from keras_transfer.backbones.summary import describe

__all__ = [
    "BackboneSpec", "Block", "BlockEnd", "blocks_of", "build_backbone", "describe",
    "find_backbone", "freeze", "get_spec", "list_backbones", "register_backbone",
    "set_trainable", "set_trainable_blocks", "split_blocks", "unfreeze",
]
