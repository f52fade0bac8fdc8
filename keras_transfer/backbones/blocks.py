"""Named blocks: split a backbone's layers into ordered blocks, and freeze or unfreeze by block.

The split is computed from the backbone's `BackboneSpec` (data), never stored in the model, so it
works the same on a freshly built model and on one loaded from a `.keras` file. The backbone is
found by `keras_transfer.backbones.registry.locate_backbone`, whose finders cover classifiers,
segmenters, detectors (their `PyramidBackbone`) and text models alike.

Not every block can train something: a block whose output the model never reads (BERT's pooler
under a CLS-pooling head) or whose only weights are BatchNorm's (frozen while fine-tuning) or
which has none. `unfreeze(last=k)` counts the others, the *effective* blocks; `describe` notes
why a block is not one; `freeze(up_to=...)` and `set_trainable` accept every block name.

This module finds the blocks; `keras_transfer.backbones.freezing` sets what trains and
`keras_transfer.backbones.summary` prints them (`describe`). Their names import from here too.
"""

from __future__ import annotations

import dataclasses
import importlib
import itertools
import re
from typing import Any, Callable, Sequence

import keras
import numpy as np

from keras_transfer.backbones.hub import is_hub_backbone
from keras_transfer.backbones.spec import BackboneSpec, BlockEnd
from keras_transfer.compat.keras_internals import (
    call_nodes,
    created_trainable_variables,
    producer,
    producing_layer,
    producing_node,
    sublayers,
)
from keras_transfer.errors import BadInputError

# Name suffix of a multi-output view of a nested keras-hub backbone's graph, made by dense heads
# (keras_transfer.heads.segmentation.feature_extractor); opened up like the hub backbone itself.
# Other nested models (ConvNeXt's Sequential stem) stay single layers.
FEATURE_VIEW_SUFFIX = "_features"

# Why a block is not effective (`Block.note`), as shown by `describe`.
UNUSED = "unused: the model never reads its output"
BATCHNORM_ONLY = "BatchNorm only: trains only with train_batchnorm=True"
NO_WEIGHTS = "no weights"

# Names that moved to sibling modules and still import from here (`__getattr__` below: lazily,
# since those modules import this one).
_MOVED = {
    **dict.fromkeys(("freeze", "unfreeze", "unfrozen_blocks", "set_trainable",
                     "set_trainable_blocks"), "keras_transfer.backbones.freezing"),
    **dict.fromkeys(("describe", "format_table"), "keras_transfer.backbones.summary"),
}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def is_batchnorm(layer) -> bool:
    """True for a BatchNormalization layer, which block-wise freezing treats apart.

    Example:
    >>> is_batchnorm(keras.layers.BatchNormalization()), is_batchnorm(keras.layers.Dense(1))
    (True, False)
    """
    return isinstance(layer, keras.layers.BatchNormalization)


@dataclasses.dataclass
class Block:
    """One named block: its layers (graph order), the layer whose output ends it, and whether
    that output (or any of its layers') reaches the model's outputs.

    Example:
    >>> block = Block("head", [keras.layers.Dense(2)])
    >>> block.effective, block.note  # an unbuilt layer holds no weights yet
    (False, 'no weights')
    """

    name: str
    layers: list
    output_layer: object | None = None
    reaches_outputs: bool = True

    def parameter_count(self) -> int:
        return int(sum(np.prod(w.shape) for layer in self.layers for w in layer.weights))

    def trainable_parameter_count(self) -> int:
        return int(sum(np.prod(w.shape) for layer in self.layers for w in layer.trainable_weights))

    def weighted_layers(self) -> list:
        """The layers that unfreezing trains: those with trainable weights, BatchNorm aside."""
        return [layer for layer in self.layers
                if not is_batchnorm(layer) and created_trainable_variables(layer)]

    def batchnorm_layers(self) -> list:
        return [layer for layer in self.layers if is_batchnorm(layer)]

    @property
    def effective(self) -> bool:
        """Unfreezing it trains something: it has weighted layers and the model reads them."""
        return self.reaches_outputs and bool(self.weighted_layers())

    @property
    def note(self) -> str:
        """Why the block is not effective ('' when it is)."""
        if not self.reaches_outputs:
            return UNUSED
        if self.weighted_layers():
            return ""
        return BATCHNORM_ONLY if self.batchnorm_layers() else NO_WEIGHTS

    def is_trainable(self) -> bool:
        """Any of its weighted (non-BatchNorm) layers trains."""
        return any(layer.trainable for layer in self.weighted_layers())


def is_nested_backbone(layer) -> bool:
    """True for a keras-hub backbone nested in our wrapper, or a feature view of one."""
    return is_hub_backbone(layer) or (
        isinstance(layer, keras.Model) and layer.name.endswith(FEATURE_VIEW_SUFFIX)
    )


def _leaf_layers(model: keras.Model) -> list:
    """Layers in graph order; a nested backbone (`is_nested_backbone`) is opened up, input layers
    dropped."""
    leaves = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if is_nested_backbone(layer):
            leaves.extend(_leaf_layers(layer))
        else:
            leaves.append(layer)
    return leaves


def _last_use(layers: Sequence) -> list[int]:
    """For each layer, the position of the last layer consuming its output (itself if none)."""
    position = {id(layer): i for i, layer in enumerate(layers)}
    last = list(range(len(layers)))
    for i, layer in enumerate(layers):
        for node in call_nodes(layer):
            for tensor in node.input_tensors:
                producer = position.get(id(producing_layer(tensor)))
                if producer is not None:
                    last[producer] = max(last[producer], i)
    return last


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _is_auto_named(layer) -> bool:
    return re.fullmatch(rf"{_snake(type(layer).__name__)}(_\d+)?", layer.name) is not None


def _find_end(layers: Sequence, end: BlockEnd) -> int | None:
    if end.pattern.startswith("class:"):
        wanted = end.pattern[len("class:") :]
        matches = [i for i, layer in enumerate(layers) if type(layer).__name__ == wanted]
    else:
        regex = re.compile(end.pattern)
        matches = [i for i, layer in enumerate(layers) if regex.search(layer.name)]
    if not matches or not -len(matches) <= end.nth < len(matches):
        return None
    return matches[end.nth]


def _extend_to_cut(layers: Sequence, last_use: Sequence[int], index: int) -> int:
    """Moves a block end over auto-named glue layers (e.g. Xception's residual BN and add) until
    no earlier output is still waiting for a consumer, so no block ends with a branch open."""
    open_until = list(itertools.accumulate(last_use, max))  # open_until[i]: max over j <= i

    def is_cut(i: int) -> bool:
        return i == 0 or open_until[i - 1] <= i

    i = index
    while not is_cut(i) and i + 1 < len(layers) and _is_auto_named(layers[i + 1]):
        i += 1
    return i if is_cut(i) else index


def split_blocks(
    backbone: keras.Model, spec: BackboneSpec, layers: Sequence | None = None
) -> list[Block]:
    """Splits `backbone`'s layers (or `layers`, in graph order) into the blocks `spec` declares
    (empty blocks are dropped).

    Example:
    >>> from keras_transfer import build_backbone
    >>> from keras_transfer.backbones import get_spec
    >>> bb = build_backbone("vgg16", weights=None, input_shape=(32, 32, 3))
    >>> [b.name for b in split_blocks(bb, get_spec("vgg16"))]
    ['stem', 'block1', 'block2', 'block3', 'block4', 'block5']
    """
    layers = list(layers) if layers is not None else _leaf_layers(backbone)
    last_use = _last_use(layers)
    ends: list[tuple[str, BlockEnd | None]] = [("stem", spec.stem_end), *spec.blocks]
    blocks, start = [], 0
    for name, end in ends:
        if end is None:  # stem without layers of its own: input preprocessing only
            stop = max(start, _first_index(layers, _is_preprocessing) + 1)
        else:
            found = _find_end(layers, end)
            if found is None:
                if end.optional:
                    continue
                raise BadInputError(
                    f"Backbone '{backbone.name}': no layer matches the end of block '{name}' "
                    f"({end.pattern!r}, match {end.nth}). The block map of '{spec.name}' does "
                    "not fit this model; was it built by another keras version?"
                )
            if found < start:
                raise BadInputError(
                    f"Backbone '{backbone.name}': block '{name}' ends before it starts "
                    f"(layer '{layers[found].name}')."
                )
            stop = _extend_to_cut(layers, last_use, found) + 1
        blocks.append(Block(name, layers[start:stop], layers[stop - 1] if stop > start else None))
        start = stop
    if start < len(layers):
        blocks.append(Block("top", layers[start:], layers[-1]))
    return [block for block in blocks if block.layers]


def _first_index(layers: Sequence, predicate: Callable) -> int:
    return next((i for i, layer in enumerate(layers) if predicate(layer)), -1)


def _is_preprocessing(layer) -> bool:
    from keras_transfer.layers import ImagePreprocessing

    return isinstance(layer, ImagePreprocessing)


# --------------------------------------------------------------------------- the output path


def _graph_outputs(layer) -> list | None:
    """The symbolic outputs of a model built as a graph (functional, Sequential), else None."""
    if not isinstance(layer, keras.Model):
        return None
    try:
        outputs = layer.outputs
    except AttributeError:  # subclassed, or a Sequential never built
        return None
    return list(outputs) if outputs else None


def layers_reaching_outputs(model: keras.Model) -> set[int] | None:
    """Ids of the layers whose outputs reach `model`'s outputs; None when `model` is no graph.

    The graph is walked back from the outputs tensor by tensor, so a layer feeding only an output
    nobody reads (BERT's pooler under a CLS-pooling head) is left out. A nested graph model is
    entered at the output actually read, and its inputs are taken as all needed; any other layer
    counts whole (it and every layer inside it).

    Example:
    >>> inputs = keras.Input((2,))
    >>> used, unused = keras.layers.Dense(1), keras.layers.Dense(1)
    >>> inner = keras.Model(inputs, [used(inputs), unused(inputs)])
    >>> outer_inputs = keras.Input((2,))
    >>> model = keras.Model(outer_inputs, inner(outer_inputs)[0])
    >>> reached = layers_reaching_outputs(model)
    >>> id(used) in reached, id(unused) in reached
    (True, False)
    """
    pending = _graph_outputs(model)
    if pending is None:
        return None
    reached: set[int] = set()
    seen: set[int] = set()
    while pending:
        tensor = pending.pop()
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        operation, _, tensor_index = producer(tensor)
        reached.add(id(operation))
        inner = _graph_outputs(operation)
        if inner is not None:
            pending.append(inner[tensor_index])
        elif isinstance(operation, keras.layers.Layer):
            reached.update(id(layer) for layer in sublayers(operation))
        pending.extend(producing_node(tensor).input_tensors)
    return reached


# --------------------------------------------------------------------------- finding blocks


def blocks_of(model: keras.Model) -> list[Block]:
    """The backbone's blocks, in order, for a backbone or any model containing one (image
    classifier, segmenter, detector, text model); `Block.effective` says which can train.

    Example:
    >>> from keras_transfer import build_backbone, blocks_of
    >>> [b.name for b in blocks_of(build_backbone("vgg16", weights=None,
    ...                                           input_shape=(32, 32, 3)))]
    ['stem', 'block1', 'block2', 'block3', 'block4', 'block5']
    """
    from keras_transfer.backbones.registry import locate_backbone

    match = locate_backbone(model)
    blocks = split_blocks(match.model, match.spec, layers=match.layers)
    reached = layers_reaching_outputs(model)
    if reached is not None:
        for block in blocks:
            block.reaches_outputs = any(id(layer) in reached for layer in block.layers)
    return blocks
