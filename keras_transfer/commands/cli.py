"""The `keras-transfer` command: thin argument parsing over the same functions a notebook calls.

The sub-commands and their flags are data (`keras_transfer.commands.subcommands`); here is what
each one runs, and how a job's settings are merged: defaults, then ``--config``, then flags.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

# The argument types live in `commands.arguments`; re-exported here, their old home.
from keras_transfer.commands.arguments import (  # noqa: F401
    _backbone_list,
    _explain_dir,
    _symmetries,
    _weights,
    add_command,
)

# TensorFlow's logging is configured before TensorFlow loads, by the `keras-transfer` command's
# entry (keras_transfer.console); this module is imported after it.
from keras_transfer.console import VERBOSE_ENV, VERBOSE_FLAG, strip_verbose


def _load_config(path: str) -> dict:
    text = Path(path).read_text()
    if path.endswith((".yaml", ".yml")):
        import yaml

        try:
            settings = yaml.load(text, Loader=_yaml_loader()) or {}
        except yaml.YAMLError as error:  # a ValueError, so it is reported as one line
            raise ValueError(f"{path}: not valid YAML: {error}") from None
    else:
        try:
            settings = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON: {error}") from None
    if not isinstance(settings, dict):
        raise ValueError(f"{path}: expected a mapping of setting names to values.")
    return settings


def _yaml_loader():
    """YAML's safe loader, reading ``1e-3`` as a number: YAML 1.1 wants ``1.0e-3`` and would
    otherwise give the string '1e-3', which the settings checks then reject."""
    import re

    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver("tag:yaml.org,2002:float",
                                 re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"),
                                 list("-+0123456789"))
    return Loader


def _settings(cls: type, args: argparse.Namespace, defaults: dict | None = None) -> dict:
    """A config class's settings: its defaults here, then the ``--config`` file, then the flags
    given on the command line (flags default to SUPPRESS: absent unless given)."""
    from keras_transfer.commands.task_cli import merge_settings

    config_path = getattr(args, "config", None)
    return merge_settings(cls, args, _load_config(config_path) if config_path else {}, defaults)


def _train(args: argparse.Namespace) -> int:
    from keras_transfer.commands.task_cli import train

    return train(args)  # the image job, or the task job for every other task


def _describe(args: argparse.Namespace) -> int:
    from keras_transfer import build_backbone, describe

    size = args.input_size
    backbone = build_backbone(args.backbone, weights=args.weights,
                              input_shape=(size, size, 3) if size else None)
    describe(backbone)
    return 0


def _list_backbones(args: argparse.Namespace) -> int:
    from keras_transfer import get_spec, list_backbones

    for name in list_backbones():
        spec = get_spec(name)
        print(f"{name:22s} {spec.family:20s} {spec.default_size:4d}px  {spec.description}")
    print("\nAny keras-hub image preset also works: 'hub:<preset>' or a local preset directory.")
    return 0


def _tta_note(symmetries: Sequence[str]) -> str:
    from keras_transfer.data.symmetry import group_views

    views = len(group_views(symmetries))
    if views == 1:
        return "test-time augmentation: no label-preserving symmetry, so a single view"
    return f"test-time augmentation: mean of {views} views ({', '.join(symmetries)})"


def _predict(args: argparse.Namespace) -> int:
    from keras_transfer.commands.artifacts import predict_command

    return predict_command(args, tta_note=_tta_note)  # every task: see commands.artifacts


def _export(args: argparse.Namespace) -> int:
    from keras_transfer.commands.artifacts import export_command

    return export_command(args)  # every task: the model's task exports it


def _lr_find(args: argparse.Namespace) -> int:
    from keras_transfer.commands.lr_find_job import LRFindConfig, run_lr_find

    run_lr_find(LRFindConfig(**_settings(LRFindConfig, args)))  # checks first
    return 0


def _image_config(args: argparse.Namespace, *, fits_backbone: bool = True, **defaults):
    """A checked `ImageJobConfig` from a settings file, then flags given on the command line."""
    from keras_transfer.commands.image_job import ImageJobConfig

    config = ImageJobConfig(**_settings(ImageJobConfig, args, defaults))
    config.validate(fits_backbone=fits_backbone)  # before any data is read
    return config


def _evaluate(args: argparse.Namespace) -> int:
    from keras_transfer.commands.task_cli import evaluate

    return evaluate(args)  # the model's task says which report


def _tune(args: argparse.Namespace) -> int:
    from keras_transfer.commands.task_cli import tune

    return tune(args)  # image classifiers; other tasks are refused, saying what to run


def _compare(args: argparse.Namespace) -> int:
    from keras_transfer.compare import CompareConfig, compare_backbones

    compare_backbones(CompareConfig(**_settings(CompareConfig, args)))  # checks first
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `keras-transfer` (exposed for tests and docs): the sub-commands'
    tables (`keras_transfer.commands.subcommands`), each with the function it runs.

    Example:
    >>> build_parser().parse_args(["train", "--epochs", "2"]).epochs
    2
    """
    from keras_transfer.commands.subcommands import COMMANDS

    runs = {"train": _train, "describe": _describe, "list-backbones": _list_backbones,
            "predict": _predict, "export": _export, "lr-find": _lr_find,
            "evaluate": _evaluate, "tune": _tune, "compare": _compare}
    parser = argparse.ArgumentParser(
        prog="keras-transfer",
        description="Transfer learning on Keras 3: fine-tune pretrained backbones and export them.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        add_command(commands, command).set_defaults(run=runs[command.name])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `keras-transfer` command; returns the exit status.

    Errors from bad input are printed as one line (no traceback) with exit status 2.
    ``--verbose`` is accepted anywhere on the line; what it does (TensorFlow's log lines kept)
    happens before TensorFlow loads, in `keras_transfer.console.main`, where the command starts.

    Example:
    >>> main(["list-backbones"])  # one line per backbone, then the exit status
    vgg16 ... keras.applications.VGG16
    ...
    0
    """
    from keras_transfer.errors import KerasTransferError

    parser = build_parser()
    parser.add_argument(VERBOSE_FLAG, action="store_true",
                        help="keep TensorFlow's start-up and C++ log lines (quiet by default; "
                        f"also {VERBOSE_ENV}=1); may go anywhere on the command line")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(strip_verbose(argv))  # read before TensorFlow loaded (console)
    try:
        return args.run(args)
    except (KerasTransferError, ValueError, FileNotFoundError, KeyError) as error:
        print(f"keras-transfer {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
