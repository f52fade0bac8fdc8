"""Named blocks: split a backbone's layers into ordered blocks, and freeze or unfreeze by block.

The split is computed from the backbone's `BackboneSpec` (data), never stored in the model, so it
works the same on a freshly built model and on one loaded from a `.keras` file.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from typing import Callable, Iterable, Mapping, Sequence

import keras
import numpy as np

from keras_transfer.backbones.hub import is_hub_backbone
from keras_transfer.backbones.spec import BackboneSpec, BlockEnd
from keras_transfer.compat.keras_internals import call_nodes, producing_layer

# Name suffix of a multi-output view of a nested keras-hub backbone's graph, made by dense heads
# (keras_transfer.heads.segmentation.feature_extractor); opened up like the hub backbone itself.
# Other nested models (ConvNeXt's Sequential stem, say) stay single layers.
FEATURE_VIEW_SUFFIX = "_features"


@dataclasses.dataclass
class Block:
    """One named block: its layers (graph order) and the layer whose output ends it."""

    name: str
    layers: list
    output_layer: object | None = None

    def parameter_count(self) -> int:
        return int(sum(np.prod(w.shape) for layer in self.layers for w in layer.weights))

    def trainable_parameter_count(self) -> int:
        return int(sum(np.prod(w.shape) for layer in self.layers for w in layer.trainable_weights))


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


def split_blocks(backbone: keras.Model, spec: BackboneSpec) -> list[Block]:
    """Splits `backbone`'s layers into the blocks `spec` declares (empty blocks are dropped).

    Example:
    >>> from keras_transfer import build_backbone
    >>> from keras_transfer.backbones import get_spec
    >>> bb = build_backbone("vgg16", weights=None, input_shape=(32, 32, 3))
    >>> [b.name for b in split_blocks(bb, get_spec("vgg16"))]
    ['stem', 'block1', 'block2', 'block3', 'block4', 'block5']
    """
    layers = _leaf_layers(backbone)
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
                raise ValueError(
                    f"Backbone '{backbone.name}': no layer matches the end of block '{name}' "
                    f"({end.pattern!r}, match {end.nth}). The block map of '{spec.name}' does "
                    "not fit this model; was it built by another keras version?"
                )
            if found < start:
                raise ValueError(
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


# --------------------------------------------------------------------------- freezing


def _set_layer_trainable(layer, trainable: bool, train_batchnorm: bool) -> None:
    layer.trainable = trainable
    for sub in layer._flatten_layers(include_self=True, recursive=True):
        if isinstance(sub, keras.layers.BatchNormalization):
            # Frozen BatchNorm runs in inference mode in Keras 3: fine-tuning with batch statistics
            # of small batches would wreck the pretrained moving averages.
            sub.trainable = trainable and train_batchnorm
        if getattr(sub, "lora_enabled", False):
            # A LoRA layer trains its adapters only; unfreezing its block must not train the base.
            sub._kernel.trainable = False


def _is_batchnorm(layer) -> bool:
    return isinstance(layer, keras.layers.BatchNormalization)


def _block_is_trainable(block: Block) -> bool:
    return any(layer.trainable for layer in block.layers if layer.weights and not _is_batchnorm(layer))


def _apply(model: keras.Model, wanted: Mapping[str, bool], train_batchnorm: bool) -> list[Block]:
    from keras_transfer.backbones.registry import find_backbone

    backbone, spec = find_backbone(model)
    blocks = split_blocks(backbone, spec)
    known = [b.name for b in blocks]
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise ValueError(
            f"Unknown block(s) {unknown} for backbone '{spec.name}'; its blocks are {known}."
        )
    state = {b.name: wanted.get(b.name, _block_is_trainable(b)) for b in blocks}
    # Containers must be trainable for any weight inside them to train; the setter recurses, so
    # open every container first and then set each block's layers.
    backbone.trainable = True
    for block in blocks:
        for layer in block.layers:
            _set_layer_trainable(layer, state[block.name], train_batchnorm)
    return blocks


def _block_names(model: keras.Model) -> list[str]:
    from keras_transfer.backbones.registry import find_backbone

    backbone, spec = find_backbone(model)
    return [b.name for b in split_blocks(backbone, spec)]


def freeze(model: keras.Model, up_to: str | None = None, *, train_batchnorm: bool = False) -> None:
    """Freezes the backbone's blocks from the stem up to and including `up_to`.

    With `up_to=None` the whole backbone is frozen (feature extraction). Blocks after `up_to`
    become trainable (like fastai's `freeze_to`). Heads are never touched. Works on a backbone or
    on any model that contains one. Recompile the model after changing what is trainable.

    Example:
    >>> from keras_transfer import build_image_classifier, freeze
    >>> model = build_image_classifier("vgg16", num_classes=2, weights=None,
    ...                                input_shape=(32, 32, 3))
    >>> freeze(model, up_to="block4")
    """
    names = _block_names(model)
    if up_to is not None and up_to not in names:
        raise ValueError(f"freeze(up_to={up_to!r}): not a block; the blocks are {names}.")
    cut = len(names) if up_to is None else names.index(up_to) + 1
    _apply(model, {name: i >= cut for i, name in enumerate(names)}, train_batchnorm)


def unfreeze(
    model: keras.Model, last: int | None = None, *, train_batchnorm: bool = False
) -> None:
    """Makes the last `last` blocks of the backbone trainable and freezes the others.

    `last=None` unfreezes every block. BatchNormalization layers stay frozen (inference mode)
    unless `train_batchnorm=True`. Recompile the model afterwards.

    Example:
    >>> from keras_transfer import build_image_classifier, unfreeze
    >>> model = build_image_classifier("vgg16", num_classes=3, weights=None,
    ...                                input_shape=(32, 32, 3))
    >>> unfreeze(model, last=2)
    """
    names = _block_names(model)
    if last is not None and not 0 <= last <= len(names):
        raise ValueError(f"unfreeze(last={last}): the backbone has {len(names)} blocks {names}.")
    count = len(names) if last is None else last
    _apply(model, {name: i >= len(names) - count for i, name in enumerate(names)}, train_batchnorm)


def set_trainable(
    model: keras.Model, blocks: Mapping[str, bool], *, train_batchnorm: bool = False
) -> None:
    """Sets chosen blocks trainable or frozen; blocks not named keep their state.

    Example:
    >>> from keras_transfer import build_image_classifier, set_trainable
    >>> model = build_image_classifier("vgg16", num_classes=2, weights=None,
    ...                                input_shape=(32, 32, 3))
    >>> set_trainable(model, {"block5": True})
    """
    _apply(model, dict(blocks), train_batchnorm)


def blocks_of(model: keras.Model) -> list[Block]:
    """The backbone's blocks, in order, for a backbone or a model containing one.

    Example:
    >>> from keras_transfer import build_backbone, blocks_of
    >>> [b.name for b in blocks_of(build_backbone("vgg16", weights=None,
    ...                                           input_shape=(32, 32, 3)))]
    ['stem', 'block1', 'block2', 'block3', 'block4', 'block5']
    """
    from keras_transfer.backbones.registry import find_backbone

    backbone, spec = find_backbone(model)
    return split_blocks(backbone, spec)


def describe(model: keras.Model, print_fn: Callable[[str], None] | None = print) -> list[dict]:
    """Prints (and returns) a table of the backbone's blocks and what is trainable.

    Columns: block, layers, first/last layer, parameters, trainable parameters, status of the
    weighted non-BatchNorm layers (``trainable``, ``frozen`` or ``partial``) and of the
    BatchNormalization layers (``frozen`` means inference mode, the default while fine-tuning).

    Example:
    >>> from keras_transfer import build_backbone, describe
    >>> rows = describe(build_backbone("vgg16", weights=None, input_shape=(32, 32, 3)),
    ...                 print_fn=None)
    >>> rows[1]["block"], rows[1]["layers"]
    ('block1', 3)
    """
    rows = []
    for block in blocks_of(model):
        total, trainable = block.parameter_count(), block.trainable_parameter_count()
        main = [layer for layer in block.layers if layer.weights and not _is_batchnorm(layer)]
        bn = [layer for layer in block.layers if _is_batchnorm(layer)]
        on = sum(layer.trainable for layer in main)
        status = "-" if not main else "frozen" if not on else "trainable" if on == len(main) else "partial"
        rows.append(
            dict(
                block=block.name,
                layers=len(block.layers),
                first=block.layers[0].name,
                last=block.layers[-1].name,
                params=total,
                trainable_params=trainable,
                status=status,
                batchnorm="-" if not bn else "train" if any(b.trainable for b in bn) else "frozen",
            )
        )
    if print_fn is not None:
        print_fn(format_table(rows))
    return rows


def format_table(rows: Iterable[Mapping], columns: Sequence[str] | None = None) -> str:
    """Formats dict rows as an aligned text table (numbers with thousands separators).

    Example:
    >>> print(format_table([{"a": 1, "b": "x"}]))
    a  b
    -  -
    1  x
    """
    rows = list(rows)
    columns = list(columns or (rows[0].keys() if rows else []))
    cells = [[f"{r[c]:,}" if isinstance(r[c], (int, np.integer)) else str(r[c]) for c in columns]
             for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip(),
             "  ".join("-" * w for w in widths).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def set_trainable_blocks(
    model: keras.Model,
    trainable_blocks: int | str | Sequence[str] | None,
    *,
    train_batchnorm: bool = False,
) -> None:
    """Applies a `trainable_blocks` argument: ``"all"``, ``0``/None (all frozen), an int N (the
    last N blocks) or a list of block names (exactly those train).

    Example:
    >>> from keras_transfer import build_backbone
    >>> bb = build_backbone("vgg16", weights=None, input_shape=(32, 32, 3))
    >>> set_trainable_blocks(bb, ["block5"])
    >>> [r["status"] for r in describe(bb, print_fn=None)][-2:]
    ['frozen', 'trainable']
    """
    if trainable_blocks == "all":
        unfreeze(model, train_batchnorm=train_batchnorm)
    elif trainable_blocks is None or isinstance(trainable_blocks, int):
        unfreeze(model, last=trainable_blocks or 0, train_batchnorm=train_batchnorm)
    elif isinstance(trainable_blocks, str):
        raise ValueError(
            f"trainable_blocks={trainable_blocks!r}: use 'all', an int, or a list of block names."
        )
    else:
        names = _block_names(model)
        chosen = set(trainable_blocks)
        _apply(model, {name: name in chosen for name in names} | {n: True for n in chosen},
               train_batchnorm)
