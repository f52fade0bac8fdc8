"""Named blocks: split a backbone's layers into ordered blocks, and freeze or unfreeze by block.

The split is computed from the backbone's `BackboneSpec` (data), never stored in the model, so it
works the same on a freshly built model and on one loaded from a `.keras` file. The backbone is
found by `keras_transfer.backbones.registry.locate_backbone`, whose finders cover classifiers,
segmenters, detectors (their `PyramidBackbone`) and text models alike.

Not every block can train something: a block whose output the model never reads (BERT's pooler
under a CLS-pooling head) or whose only weights are BatchNorm's (frozen while fine-tuning) or
which has none. `unfreeze(last=k)` counts the others, the *effective* blocks; `describe` notes
why a block is not one; `freeze(up_to=...)` and `set_trainable` accept every block name.
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
from keras_transfer.compat.keras_internals import (
    call_nodes,
    created_trainable_variables,
    lora_base_kernel,
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


def _is_batchnorm(layer) -> bool:
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
                if not _is_batchnorm(layer) and created_trainable_variables(layer)]

    def batchnorm_layers(self) -> list:
        return [layer for layer in self.layers if _is_batchnorm(layer)]

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


def _unknown_blocks_error(
    what: str, unknown: Sequence[str], blocks: Sequence[Block]
) -> BadInputError:
    names = [block.name for block in blocks]
    return BadInputError(f"Unknown block(s) {list(unknown)} in {what}; the blocks are {names}.")


# --------------------------------------------------------------------------- freezing


def _set_layer_trainable(layer, trainable: bool, train_batchnorm: bool) -> None:
    layer.trainable = trainable
    for sub in sublayers(layer, include_self=True):
        if _is_batchnorm(sub):
            # Frozen BatchNorm runs in inference mode in Keras 3: fine-tuning with batch statistics
            # of small batches would wreck the pretrained moving averages.
            sub.trainable = trainable and train_batchnorm
        base = lora_base_kernel(sub)
        if base is not None:
            # A LoRA layer trains its adapters only; unfreezing its block must not train the base.
            base.trainable = False


def _apply(
    model: keras.Model, wanted: Mapping[str, bool], train_batchnorm: bool, what: str
) -> dict[str, bool]:
    """Sets the blocks named in `wanted`; the others keep their state. Returns every block's."""
    from keras_transfer.backbones.registry import locate_backbone

    blocks = blocks_of(model)
    unknown = [name for name in wanted if name not in {b.name for b in blocks}]
    if unknown:
        raise _unknown_blocks_error(what, unknown, blocks)
    state = {b.name: bool(wanted.get(b.name, b.is_trainable())) for b in blocks}
    # Containers must be trainable for any weight inside them to train; the setter recurses, so
    # open the backbone first and then set each block's layers. Heads are never touched.
    locate_backbone(model).model.trainable = True
    for block in blocks:
        for layer in block.layers:
            _set_layer_trainable(layer, state[block.name], train_batchnorm)
    return state


def _from(blocks: Sequence[Block], start: int) -> dict[str, bool]:
    """Blocks from `start` on train, earlier ones are frozen; blocks the model never reads stay
    frozen (they would get no gradient)."""
    return {b.name: i >= start and b.reaches_outputs for i, b in enumerate(blocks)}


def _start_of_last(blocks: Sequence[Block], last: int | None, what: str) -> int:
    """Where the last `last` effective blocks start (None: all of them)."""
    effective = [i for i, block in enumerate(blocks) if block.effective]
    if last is None:
        return 0
    if isinstance(last, bool) or not isinstance(last, (int, np.integer)) \
            or not 0 <= last <= len(blocks):
        others = [f"{b.name} ({b.note.split(':')[0]})" for b in blocks if not b.effective]
        raise BadInputError(
            f"{what}: expected 0 … {len(effective)}; the backbone has {len(blocks)} blocks, "
            f"{len(effective)} of them effective (with trainable weights the model uses): "
            f"{[blocks[i].name for i in effective]}"
            + (f"; not counted: {', '.join(others)}." if others else "."))
    if last == 0:
        return len(blocks)
    # `last` may go up to the number of named blocks (`len(blocks_of(model))`): all effective.
    return effective[-last] if last <= len(effective) else 0


def _opened_by_last(blocks: Sequence[Block], last: int | None) -> dict[str, bool]:
    return _from(blocks, _start_of_last(blocks, last, f"unfreeze(last={last!r})"))


def freeze(model: keras.Model, up_to: str | None = None, *, train_batchnorm: bool = False) -> None:
    """Freezes the backbone's blocks from the stem up to and including `up_to`.

    With `up_to=None` the whole backbone is frozen (feature extraction). Blocks after `up_to`
    become trainable (like fastai's `freeze_to`), except blocks the model never reads. Heads are
    never touched. Works on a backbone or any model that contains one (classifier, segmenter,
    detector, text model). Recompile the model after changing what is trainable.

    Example:
    >>> from keras_transfer import build_image_classifier, freeze
    >>> model = build_image_classifier("vgg16", num_classes=2, weights=None,
    ...                                input_shape=(32, 32, 3))
    >>> freeze(model, up_to="block4")
    """
    blocks = blocks_of(model)
    names = [block.name for block in blocks]
    if up_to is not None and up_to not in names:
        raise _unknown_blocks_error(f"freeze(up_to={up_to!r})", [up_to], blocks)
    _apply(model, _from(blocks, len(names) if up_to is None else names.index(up_to) + 1),
           train_batchnorm, "freeze")


def unfrozen_blocks(model: keras.Model, last: int | None = None) -> list[Block]:
    """The blocks `unfreeze(model, last=last)` makes trainable, in order (for schedules that
    must know beforehand which weights will train, e.g. to build an optimizer for them).

    Example:
    >>> from keras_transfer import build_image_classifier
    >>> model = build_image_classifier("resnet50_v2", num_classes=2, weights=None,
    ...                                input_shape=(32, 32, 3))
    >>> [block.name for block in unfrozen_blocks(model, last=1)]  # 'top' is BatchNorm only
    ['block4', 'top']
    """
    blocks = blocks_of(model)
    wanted = _opened_by_last(blocks, last)
    return [block for block in blocks if wanted[block.name]]


def unfreeze(
    model: keras.Model, last: int | None = None, *, train_batchnorm: bool = False
) -> None:
    """Makes the last `last` effective blocks of the backbone trainable, and those after them;
    freezes the others.

    Effective blocks hold trainable weights the model uses: a block whose output the model never
    reads, or which holds only BatchNorm (kept frozen) or no weights, is not counted (`describe`
    says why), so ``last=1`` always trains something. `last=None` unfreezes every block; any
    `last` from the number of effective blocks up to ``len(blocks_of(model))`` does too.
    BatchNormalization layers stay frozen (inference mode) unless `train_batchnorm=True`.
    `unfrozen_blocks` tells which blocks this opens. Recompile the model afterwards.

    Example:
    >>> from keras_transfer import build_image_classifier, unfreeze
    >>> model = build_image_classifier("vgg16", num_classes=3, weights=None,
    ...                                input_shape=(32, 32, 3))
    >>> unfreeze(model, last=2)
    """
    _apply(model, _opened_by_last(blocks_of(model), last), train_batchnorm, "unfreeze")


def set_trainable(
    model: keras.Model, blocks: Mapping[str, bool], *, train_batchnorm: bool = False
) -> None:
    """Sets chosen blocks trainable or frozen, any block by name; blocks not named keep their
    state.

    Example:
    >>> from keras_transfer import build_image_classifier, set_trainable
    >>> model = build_image_classifier("vgg16", num_classes=2, weights=None,
    ...                                input_shape=(32, 32, 3))
    >>> set_trainable(model, {"block5": True})
    """
    _apply(model, dict(blocks), train_batchnorm, "set_trainable")


def set_trainable_blocks(
    model: keras.Model,
    trainable_blocks: int | str | Sequence[str] | None,
    *,
    train_batchnorm: bool = False,
) -> list[str]:
    """Applies a `trainable_blocks` argument: ``"all"``, ``0``/None (all frozen), an int N (the
    last N effective blocks, see `unfreeze`) or a list of block names (exactly those train).
    Returns the names of the blocks set trainable.

    Example:
    >>> from keras_transfer import build_backbone
    >>> bb = build_backbone("vgg16", weights=None, input_shape=(32, 32, 3))
    >>> set_trainable_blocks(bb, ["block5"])
    ['block5']
    >>> [r["status"] for r in describe(bb, print_fn=None)][-2:]
    ['frozen', 'trainable']
    """
    what = f"trainable_blocks={trainable_blocks!r}"
    blocks = blocks_of(model)
    if isinstance(trainable_blocks, str) and trainable_blocks != "all":
        raise BadInputError(f"{what}: use 'all', an int, or a list of block names.")
    if trainable_blocks == "all":
        wanted = _from(blocks, 0)
    elif trainable_blocks is None or isinstance(trainable_blocks, (int, np.integer)):
        wanted = _from(blocks, _start_of_last(blocks, trainable_blocks or 0, what))
    else:
        chosen = list(trainable_blocks)
        wanted = {b.name: b.name in chosen for b in blocks} | {name: True for name in chosen}
    state = _apply(model, wanted, train_batchnorm, what)
    return [name for name, on in state.items() if on]


# --------------------------------------------------------------------------- describing


def describe(model: keras.Model, print_fn: Callable[[str], None] | None = print) -> list[dict]:
    """Prints (and returns) a table of the backbone's blocks and what is trainable.

    Columns: block, layers, first/last layer, parameters, trainable parameters, status of the
    weighted non-BatchNorm layers (``trainable``, ``frozen`` or ``partial``; ``-`` when there
    are none), of the BatchNormalization layers (``frozen`` means inference mode, the default
    while fine-tuning), and a note on blocks `unfreeze(last=k)` does not count: ``unused`` (the
    model never reads their output), ``BatchNorm only`` or ``no weights``.

    Example:
    >>> from keras_transfer import build_backbone, describe
    >>> rows = describe(build_backbone("vgg16", weights=None, input_shape=(32, 32, 3)),
    ...                 print_fn=None)
    >>> rows[1]["block"], rows[1]["layers"], rows[0]["note"]
    ('block1', 3, 'no weights')
    """
    rows = [_row(block) for block in blocks_of(model)]
    if print_fn is not None:
        print_fn(format_table(rows))
    return rows


def _row(block: Block) -> dict:
    main, bn = block.weighted_layers(), block.batchnorm_layers()
    on = sum(layer.trainable for layer in main)
    return dict(
        block=block.name,
        layers=len(block.layers),
        first=block.layers[0].name,
        last=block.layers[-1].name,
        params=block.parameter_count(),
        trainable_params=block.trainable_parameter_count(),
        status="-" if not main else "frozen" if not on else "trainable" if on == len(main)
        else "partial",
        batchnorm="-" if not bn else "train" if any(b.trainable for b in bn) else "frozen",
        note=block.note.split(":")[0],
    )


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
