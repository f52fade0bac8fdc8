"""Arguments as data: a flag is `add_argument`'s names and keywords, a `Command` a sub-command.

The tables, one per sub-command, are in `keras_transfer.commands.subcommands`;
`keras_transfer.commands.cli.build_parser` adds each with `add_command`. Flags several
sub-commands add alike are in `SHARED` (`shared` gives one with another help text), and the
argument types checked while parsing are here.

Example:
>>> shared("seed", help="the split seed")
(('--seed',), {'type': <class 'int'>, 'help': 'the split seed'})
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

# `add_argument`'s positional names (flags, or a positional's name) and its keywords.
Flag = tuple[tuple[str, ...], dict[str, Any]]


def flag(*names: str, **options: Any) -> Flag:
    """One argument as data, added later by `add_command`.

    Example:
    >>> flag("--top-k", type=int, default=3)
    (('--top-k',), {'type': <class 'int'>, 'default': 3})
    """
    return names, options


# argparse names a type's function in "invalid <name> value" errors: these names are kept.
def _weights(value: str) -> str | None:
    return None if value.lower() in ("none", "random") else value


def _symmetries(value: str) -> str:
    """`--tta SYMMETRIES`, checked while parsing: an image path taken by mistake is named."""
    from keras_transfer.data.symmetry import PRESETS, parse_symmetries

    try:
        parse_symmetries(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a symmetry set: a preset ({', '.join(PRESETS)}) or generators "
            "such as hflip,vflip,rot90. To use the recorded symmetries, put a bare --tta after "
            "the positional arguments.") from None
    return value


def _explain_dir(value: str) -> str:
    """`--explain OUT_DIR`, checked while parsing: an image path taken by mistake is named."""
    if Path(value).is_file() or Path(value).suffix.lower() in (
            ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"):
        raise argparse.ArgumentTypeError(
            f"{value!r} is a file or an image, not an output folder. For the default folder "
            "(gradcam/), put a bare --explain after the positional arguments.")
    return value


def _backbone_list(value: str) -> list[str]:
    """`--backbones a,b,c` (spaces and empty items ignored); the names are checked later."""
    return [name.strip() for name in value.split(",") if name.strip()]


# The TFLite files `train` writes and `compare` measures (`export` also takes "all").
TFLITE_FLAVOURS = ["float32", "float16", "dynamic", "int8"]

# Flags several sub-commands add alike; `shared` gives one with another help text.
SHARED: dict[str, Flag] = {
    "image_dataset": flag("--dataset",
                          help="built-in dataset name or image folder (default: elpv)"),
    "image_backbone": flag("--backbone", help="backbone name (default: efficientnet_lite0)"),
    "weights": flag("--weights", type=_weights, help="imagenet, none, or a weights file/preset"),
    "image_size": flag("--image-size", dest="image_size", type=int),
    "batch_size": flag("--batch-size", dest="batch_size", type=int),
    "validation_split": flag("--validation-split", dest="validation_split", type=float),
    "no_augment": flag("--no-augment", dest="augment", action="store_const", const=False),
    "seed": flag("--seed", type=int),
    "max_train_examples": flag("--max-train-examples", dest="max_train_examples", type=int),
    "config": flag("--config", help="JSON or YAML file of settings (flags override it)"),
}


def shared(name: str, **options: Any) -> Flag:
    """A `SHARED` flag, with `options` (a help text, say) replacing its own.

    Example:
    >>> shared("batch_size")
    (('--batch-size',), {'dest': 'batch_size', 'type': <class 'int'>})
    """
    names, base = SHARED[name]
    return names, {**base, **options}


@dataclasses.dataclass(frozen=True)
class Command:
    """A sub-command: its name, help line, description and flags, in the order --help lists them.

    ``suppress``: flags absent from the command line stay absent (``argparse.SUPPRESS``), so a
    ``--config`` file's settings are overridden only by the flags given.

    Example:
    >>> Command("list-backbones", "list the registered backbones").flags
    ()
    """

    name: str
    help: str
    flags: tuple[Flag, ...] = ()
    description: str | None = None
    suppress: bool = False


def add_command(subparsers: argparse._SubParsersAction, command: Command
                ) -> argparse.ArgumentParser:
    """Adds one sub-command's parser and its flags; returns the parser (for ``set_defaults``).

    Example:
    >>> parser = argparse.ArgumentParser(prog="kt")
    >>> describe = Command("describe", "print a backbone's blocks", (flag("backbone"),))
    >>> add_command(parser.add_subparsers(dest="command"), describe).parse_args(["vgg16"])
    Namespace(backbone='vgg16')
    """
    parser = subparsers.add_parser(
        command.name, help=command.help, description=command.description,
        argument_default=argparse.SUPPRESS if command.suppress else None)
    for names, options in command.flags:
        parser.add_argument(*names, **options)
    return parser
