"""Documentation generated from the code: the README's table of backbones and tasks.

The table is built from the registry (`list_backbones()` / `get_spec()`, the backbones the package
itself registers), so it cannot drift from what `build_backbone` accepts. Its block column is what
`describe` shows: the stage count comes from the spec, the stem and top from one member of each
family built without weights (`keras_transfer.compat.keras_internals.layout_only`), with the
same notes as `describe` for blocks `unfreeze(last=k)` does not count.
``python tools/readme_tables.py`` (a repository tool, not part of the installed package) rewrites the block between
``<!-- backbones:start -->`` and ``<!-- backbones:end -->`` in README.md; ``--check`` only
reports whether it is current (exit status 1 when not), as the test suite does.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import Sequence

START_MARKER = "<!-- backbones:start -->"
END_MARKER = "<!-- backbones:end -->"
README = Path(__file__).resolve().parent.parent / "README.md"
_PACKAGE = "keras_transfer."

# Where the ImageNet weights come from, per spec source, when no asset ships them offline.
_ONLINE_WEIGHTS = {
    "keras.applications": "download",
    "keras_hub": "keras-hub preset (download)",
}
# Under the table: what the block column counts (README readers never see `describe`'s notes).
BLOCKS_NOTE = (
    "Named blocks are what `kt.describe(model)` lists: the `stem`, the stages `block1` … "
    "`blockN` and a `top` where layers follow the last stage. `kt.unfreeze(model, last=k)` counts only "
    "blocks with trainable weights the model uses, so a stem or top marked *no weights* or "
    "*BatchNorm only* (BatchNorm stays frozen unless `train_batchnorm=True`) is not counted.")
# Human names of the image heads' tasks (`heads.classification.TASKS` keys).
_TASK_NAMES = {
    "single_label": "classification",
    "multi_label": "multi-label",
    "regression": "regression",
}


def _block_count(spec) -> str:
    """Named stage blocks after the stem; optional ones (present in some variants) as a range."""
    required = sum(1 for _, end in spec.blocks if not end.optional)
    return str(required) if required == len(spec.blocks) else f"{required}–{len(spec.blocks)}"


def _family_member(name: str) -> str:
    """The first built-in backbone of `name`'s family: family members share stem and top."""
    from keras_transfer.backbones import get_spec

    family = get_spec(name).family
    return next((other for other in builtin_backbones() if get_spec(other).family == family),
                name)


@functools.lru_cache(maxsize=None)
def _stem_and_top(name: str) -> tuple[str, str | None]:
    """`describe`'s view of the stem and the top block of backbone `name`: the block name with
    `describe`'s note in parentheses (``"stem (no weights)"``); the top is None when the model
    ends with its last stage. Built at its smallest size without weights: structure only."""
    from keras_transfer.backbones import build_backbone, get_spec
    from keras_transfer.backbones.blocks import blocks_of
    from keras_transfer.compat.keras_internals import layout_only

    size = get_spec(name).min_size
    with layout_only():
        backbone = build_backbone(name, weights=None, input_shape=(size, size, 3),
                                  trainable_blocks=None)
        blocks = blocks_of(backbone)

    def cell(block) -> str:
        note = block.note.split(":")[0]
        return f"{block.name} ({note})" if note else block.name

    return cell(blocks[0]), cell(blocks[-1]) if blocks[-1].name == "top" else None


def blocks_cell(name: str) -> str:
    """The README's "named blocks" cell of backbone `name`, as `describe` shows its blocks.

    Example:
    >>> blocks_cell("vgg16"), blocks_cell("resnet50"), blocks_cell("resnet50_v2")
    ('stem (no weights) + 5', 'stem + 4', 'stem + 4 + top (BatchNorm only)')
    """
    from keras_transfer.backbones import get_spec

    stem, top = _stem_and_top(_family_member(name))
    return " + ".join([stem, _block_count(get_spec(name))] + ([top] if top else []))


def _tasks() -> str:
    from keras_transfer.heads.classification import TASKS

    return ", ".join(_TASK_NAMES.get(task, task) for task in TASKS)


def builtin_backbones() -> list[str]:
    """Registered backbones that ship with keras-transfer, in registry order.

    Backbones registered by user code (or by tests) are left out: their specs are built by
    functions defined outside the package.

    Example:
    >>> "resnet50" in builtin_backbones()
    True
    """
    from keras_transfer.backbones import get_spec, list_backbones

    return [name for name in list_backbones()
            if (getattr(get_spec(name).build, "__module__", None) or "").startswith(_PACKAGE)]


def backbone_rows(names: Sequence[str] | None = None) -> list[dict[str, str]]:
    """One row per built-in backbone (or per name given): family, blocks, input size, weights,
    tasks.

    Example:
    >>> row = backbone_rows(["efficientnet_lite0"])[0]
    >>> row["offline ImageNet weights"], row["input size"]
    ('yes', '224×224')
    """
    from keras_transfer.backbones import get_spec

    rows = []
    for name in names if names is not None else builtin_backbones():
        spec = get_spec(name)
        rows.append({
            "backbone": f"`{name}`",
            "family": spec.family,
            "named blocks": blocks_cell(name),
            "input size": f"{spec.default_size}×{spec.default_size}",
            "offline ImageNet weights": "yes" if spec.has_offline_weights
            else f"no ({_ONLINE_WEIGHTS.get(spec.source, 'download')})",
            "tasks": _tasks(),
        })
    return rows


def backbone_table_markdown(names: Sequence[str] | None = None) -> str:
    """The Markdown table of `backbone_rows` (what README.md shows between the markers).

    Example:
    >>> backbone_table_markdown(["vgg16"]).splitlines()[2].split(" | ")[:3]
    ['| `vgg16`', 'vgg', 'stem (no weights) + 5']
    """
    rows = backbone_rows(names)
    header = list(rows[0]) if rows else ["backbone"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row[column] for column in header) + " |" for row in rows]
    return "\n".join(lines)


def readme_block() -> str:
    """The whole generated block, markers included.

    Example:
    >>> readme_block().startswith(START_MARKER)
    True
    """
    note = ("Generated by `python tools/readme_tables.py` from the registry; any keras-hub image "
            "preset also works as `\"hub:<preset>\"` or a local preset directory.")
    return (f"{START_MARKER}\n<!-- {note} -->\n{backbone_table_markdown()}\n\n{BLOCKS_NOTE}\n"
            f"{END_MARKER}")


def replace_block(text: str, block: str) -> str:
    """`text` with the marked block replaced by `block` (a `ValueError` if the markers are missing).

    Example:
    >>> replace_block(f"a\\n{START_MARKER}\\nold\\n{END_MARKER}\\nb", "NEW")
    'a\\nNEW\\nb'
    """
    start, end = text.find(START_MARKER), text.find(END_MARKER)
    if start < 0 or end < start:
        raise ValueError(f"README has no '{START_MARKER}' … '{END_MARKER}' block to replace.")
    return text[:start] + block + text[end + len(END_MARKER):]


def update_readme(path: str | Path = README, *, check: bool = False) -> bool:
    """Rewrites the backbone table in `path`; returns True if it was already current.

    With ``check=True`` nothing is written.

    Example:
    >>> update_readme(check=True)  # doctest: +SKIP
    True
    """
    from keras_transfer.utils.files import atomic_write_bytes

    path = Path(path)
    text = path.read_text(encoding="utf-8")
    updated = replace_block(text, readme_block())
    if updated != text and not check:
        atomic_write_bytes(path, updated.encode("utf-8"))
    return updated == text


def main(argv: Sequence[str] | None = None) -> int:
    """``python tools/readme_tables.py [--check] [README]``: regenerates (or checks) the table."""
    parser = argparse.ArgumentParser(prog="python tools/readme_tables.py", description=__doc__)
    parser.add_argument("readme", nargs="?", default=str(README),
                        help="default: the repository's README.md")
    parser.add_argument("--check", action="store_true",
                        help="only check that the table is current (exit status 1 if not)")
    args = parser.parse_args(argv)
    try:
        current = update_readme(args.readme, check=args.check)
    except (OSError, ValueError) as error:
        print(f"readme_tables: error: {error}", file=sys.stderr)
        return 2
    if args.check and not current:
        print(f"{args.readme}: the backbone table is out of date; run "
              "python tools/readme_tables.py", file=sys.stderr)
        return 1
    print(f"{args.readme}: backbone table {'already current' if current else 'updated'}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
