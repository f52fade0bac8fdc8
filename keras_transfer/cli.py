"""The `keras-transfer` command: thin argument parsing over the same functions a notebook calls."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _weights(value: str) -> str | None:
    return None if value.lower() in ("none", "random") else value


def _load_config(path: str) -> dict:
    text = Path(path).read_text()
    if path.endswith((".yaml", ".yml")):
        import yaml

        return yaml.safe_load(text) or {}
    return json.loads(text)


def _train(args: argparse.Namespace) -> int:
    from keras_transfer.jobs import ImageJobConfig, run_image_classification

    config_path = getattr(args, "config", None)
    settings = _load_config(config_path) if config_path else {}
    fields = {f.name for f in dataclasses.fields(ImageJobConfig)}
    unknown = sorted(set(settings) - fields)
    if unknown:
        raise ValueError(f"{config_path}: unknown setting(s) {unknown}; known: {sorted(fields)}.")
    for name in fields:  # flags given on the command line win over the config file
        if name != "config" and hasattr(args, name):  # flags default to SUPPRESS: absent unless given
            settings[name] = getattr(args, name)
    if "quantization" in settings:
        settings["quantization"] = tuple(settings["quantization"])
    run_image_classification(ImageJobConfig(**settings))
    return 0


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


def _predict(args: argparse.Namespace) -> int:
    from keras_transfer.export import predict

    results = predict(args.artifact, list(args.images), top_k=args.top_k)
    for path, top in zip(args.images, results):
        print(path + ": " + ", ".join(f"{label} {score:.3f}" for label, score in top))
    return 0


def _export(args: argparse.Namespace) -> int:
    import keras

    from keras_transfer.export import export

    model = keras.models.load_model(args.model, safe_mode=True)
    labels = Path(args.labels).read_text().split("\n") if args.labels else None
    labels = [line for line in labels if line.strip()] if labels else None
    export(model, args.output_dir, quantization=tuple(args.quantization), labels=labels)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `keras-transfer` (exposed for tests and docs).

    Example:
    >>> build_parser().parse_args(["train", "--epochs", "2"]).epochs
    2
    """
    parser = argparse.ArgumentParser(
        prog="keras-transfer",
        description="Transfer learning on Keras 3: fine-tune pretrained backbones and export them.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser(
        "train", help="fine-tune a backbone on an image dataset and export it",
        description="Fine-tune on a built-in dataset (default: elpv) or a folder with one "
        "sub-folder per class; writes model.keras, saved_model/, model.tflite, labels.txt, "
        "report.json and PNG plots.", argument_default=argparse.SUPPRESS)
    train.add_argument("--dataset", help="built-in dataset name or image folder (default: elpv)")
    train.add_argument("--backbone", help="backbone name (default: efficientnet_lite0)")
    train.add_argument("--weights", type=_weights, help="imagenet, none, or a weights file/preset")
    train.add_argument("--output-dir", dest="output_dir", help="export folder")
    train.add_argument("--image-size", dest="image_size", type=int)
    train.add_argument("--batch-size", dest="batch_size", type=int)
    train.add_argument("--schedule", choices=["default", "long", "fast"],
                       help="default (~15 min on 2 cores for ELPV), long (more accurate), fast")
    train.add_argument("--head-epochs", dest="head_epochs", type=int)
    train.add_argument("--epochs", type=int, help="fine-tuning epochs (stage 2)")
    train.add_argument("--unfreeze-blocks", dest="unfreeze_blocks", type=int)
    train.add_argument("--learning-rate", dest="learning_rate", type=float)
    train.add_argument("--fine-tune-learning-rate", dest="fine_tune_learning_rate", type=float)
    train.add_argument("--validation-split", dest="validation_split", type=float)
    train.add_argument("--no-augment", dest="augment", action="store_const", const=False,
                       help="train without augmentation")
    train.add_argument("--quantization", nargs="+",
                       choices=["float32", "float16", "dynamic", "int8"])
    train.add_argument("--seed", type=int)
    train.add_argument("--max-train-examples", dest="max_train_examples", type=int,
                       help="train on at most this many images (smoke runs)")
    train.add_argument("--config", help="JSON or YAML file of settings (flags override it)")
    train.set_defaults(run=_train)

    describe = commands.add_parser("describe", help="print a backbone's named blocks")
    describe.add_argument("backbone")
    describe.add_argument("--weights", type=_weights, default=None,
                          help="weights to load (default: none, nothing is downloaded)")
    describe.add_argument("--input-size", type=int, default=None)
    describe.set_defaults(run=_describe)

    listing = commands.add_parser("list-backbones", help="list the registered backbones")
    listing.set_defaults(run=_list_backbones)

    predict = commands.add_parser("predict", help="top-k labels from an exported model")
    predict.add_argument("artifact", help=".keras file, SavedModel folder, .tflite or export folder")
    predict.add_argument("images", nargs="+", help="image files")
    predict.add_argument("--top-k", type=int, default=3)
    predict.set_defaults(run=_predict)

    exporter = commands.add_parser("export", help="export a .keras model (SavedModel, TFLite)")
    exporter.add_argument("model", help="a .keras file")
    exporter.add_argument("output_dir")
    exporter.add_argument("--labels", help="labels.txt, one class name per line")
    exporter.add_argument("--quantization", nargs="+", default=["float32"],
                          choices=["float32", "float16", "dynamic", "int8"])
    exporter.set_defaults(run=_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `keras-transfer` command; returns the exit status.

    Errors from bad input are printed as one line (no traceback) with exit status 2.

    Example:
    >>> main(["list-backbones"])  # doctest: +SKIP
    """
    from keras_transfer.errors import KerasTransferError

    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (KerasTransferError, ValueError, FileNotFoundError, KeyError) as error:
        print(f"keras-transfer {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
