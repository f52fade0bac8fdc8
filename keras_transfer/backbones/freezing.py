"""Freezing by block: which of a backbone's named blocks train (`keras_transfer.backbones.blocks`).

`freeze` and `unfreeze` set a prefix or a suffix of the blocks, `set_trainable` any block by name
and `set_trainable_blocks` applies a builder's ``trainable_blocks=`` argument. Heads are never
touched. BatchNormalization stays frozen (inference mode) unless ``train_batchnorm=True``, and
the base kernel of a LoRA layer never trains.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import keras
import numpy as np

from keras_transfer.backbones.blocks import Block, blocks_of, is_batchnorm
from keras_transfer.compat.keras_internals import lora_base_kernel, sublayers
from keras_transfer.errors import BadInputError


def _unknown_blocks_error(
    what: str, unknown: Sequence[str], blocks: Sequence[Block]
) -> BadInputError:
    names = [block.name for block in blocks]
    return BadInputError(f"Unknown block(s) {list(unknown)} in {what}; the blocks are {names}.")


def _set_layer_trainable(layer, trainable: bool, train_batchnorm: bool) -> None:
    layer.trainable = trainable
    for sub in sublayers(layer, include_self=True):
        if is_batchnorm(sub):
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
    >>> from keras_transfer import build_backbone, describe
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
