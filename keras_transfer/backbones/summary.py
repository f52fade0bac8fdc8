"""The table of a backbone's blocks (`describe`) and the plain-text table format it uses.

`format_table` also prints the tables of the benchmarks, the tuner and `compare_backbones`.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping, Sequence

import keras
import numpy as np

from keras_transfer.backbones.blocks import Block, blocks_of


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
