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
    from keras_transfer.settings import coerce_settings, unknown_settings

    config_path = getattr(args, "config", None)
    settings = _load_config(config_path) if config_path else {}
    unknown = unknown_settings(cls, list(settings), config_path)
    if unknown:
        raise ValueError(unknown)
    settings = {**(defaults or {}), **settings}
    settings.update({field.name: getattr(args, field.name) for field in dataclasses.fields(cls)
                     if hasattr(args, field.name)})
    return coerce_settings(cls, settings)


def _train(args: argparse.Namespace) -> int:
    from keras_transfer.jobs import ImageJobConfig, run_image_classification

    run_image_classification(ImageJobConfig(**_settings(ImageJobConfig, args)))  # checks first
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


def _tta_note(symmetries: Sequence[str]) -> str:
    from keras_transfer.data.symmetry import group_views

    views = len(group_views(symmetries))
    if views == 1:
        return "test-time augmentation: no label-preserving symmetry, so a single view"
    return f"test-time augmentation: mean of {views} views ({', '.join(symmetries)})"


def _predict(args: argparse.Namespace) -> int:
    from keras_transfer.export import predict
    from keras_transfer.export.predict import load_artifact, resolve_tta

    artifact = load_artifact(args.artifact)
    if args.explain:
        from keras_transfer.explain.files import check_explainable, explain_artifact

        check_explainable(artifact)  # before predicting: a .tflite has no gradients
    symmetries = resolve_tta(args.tta, artifact.path) if args.tta else ()
    if args.tta:
        print(_tta_note(symmetries), file=sys.stderr)  # stdout stays one line per image
    results = predict(artifact, list(args.images), top_k=args.top_k, tta=symmetries)
    for path, top in zip(args.images, results):
        print(path + ": " + ", ".join(f"{label} {score:.3f}" for label, score in top))
    if args.explain:
        written = explain_artifact(artifact, list(args.images), args.explain)
        print(f"Grad-CAM: wrote {len(written)} overlay(s) to {args.explain}", file=sys.stderr)
    return 0


def _explain_dir(value: str) -> str:
    """`--explain OUT_DIR`, checked while parsing: an image path taken by mistake is named."""
    if Path(value).is_file() or Path(value).suffix.lower() in (
            ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"):
        raise argparse.ArgumentTypeError(
            f"{value!r} is a file or an image, not an output folder. For the default folder "
            "(gradcam/), put a bare --explain after the positional arguments.")
    return value


def _export(args: argparse.Namespace) -> int:
    import keras

    from keras_transfer.export import export
    from keras_transfer.export.integrity import check_artifact

    check_artifact(args.model)  # a clear error naming a truncated or altered file
    model = keras.models.load_model(args.model, safe_mode=True)
    labels = Path(args.labels).read_text().split("\n") if args.labels else None
    labels = [line for line in labels if line.strip()] if labels else None
    export(model, args.output_dir, quantization=tuple(args.quantization), labels=labels)
    return 0


def _lr_find(args: argparse.Namespace) -> int:
    from keras_transfer.lr_find_job import LRFindConfig, run_lr_find

    run_lr_find(LRFindConfig(**_settings(LRFindConfig, args)))  # checks first
    return 0


def _image_config(args: argparse.Namespace, *, fits_backbone: bool = True, **defaults):
    """A checked `ImageJobConfig` from a settings file, then flags given on the command line."""
    from keras_transfer.jobs import ImageJobConfig

    config = ImageJobConfig(**_settings(ImageJobConfig, args, defaults))
    config.validate(fits_backbone=fits_backbone)  # before any data is read
    return config


def _evaluate(args: argparse.Namespace) -> int:
    import keras

    from keras_transfer.data.symmetry import group_views
    from keras_transfer.evaluate import evaluate, primary_metric
    from keras_transfer.export.integrity import check_artifact
    from keras_transfer.export.predict import resolve_tta
    from keras_transfer.jobs import load_image_data

    tta = vars(args).pop("tta", None)  # not a training setting: kept out of the config
    path = Path(args.model)
    model_file = path / "model.keras" if path.is_dir() else path
    if not model_file.is_file():
        raise FileNotFoundError(f"{args.model}: no .keras model there (a model.keras file or an "
                                "export folder holding one).")
    # A bare --tta: the symmetries the training run recorded in the export folder.
    symmetries = resolve_tta(tta, model_file) if tta else None
    views = len(group_views(symmetries)) if symmetries is not None else 1
    # An export folder holds the config it was trained with: the same split, by default.
    config_path = getattr(args, "config", None) or (
        str(path / "config.json") if path.is_dir() and (path / "config.json").is_file() else None)
    args.config = config_path
    check_artifact(model_file)  # a clear error naming a truncated or altered file
    model = keras.models.load_model(model_file, safe_mode=True)
    config = _image_config(args, fits_backbone=False,  # the saved model's size is what it is
                           image_size=int(model.input_shape[1]), augment=False)
    data = load_image_data(config)
    # A TTA report goes beside the single-view one rather than over it.
    suffix = "_tta" if views > 1 else ""
    output_dir = args.output_dir or str(model_file.parent / f"evaluation_{args.split}{suffix}")
    report = evaluate(model, data, split=args.split, output_dir=output_dir,
                      top_k=tuple(args.top_k), num_bins=args.bins,
                      name=f"{Path(config.dataset).name} {args.split}{' TTA' if suffix else ''}",
                      tta=symmetries)
    if symmetries is not None:
        print(_tta_note(symmetries))
    single_view = report.get("tta", {}).get("single_view", {})
    if report["task"] == "single_label":
        top = ", ".join(f"top-{k} {v:.2%}" for k, v in report["top_k_accuracy"].items())
        accuracy = f"accuracy {report['accuracy']:.2%}"
        if "accuracy" in single_view:
            accuracy = (f"accuracy {single_view['accuracy']:.2%} single-view, "
                        f"{report['accuracy']:.2%} with TTA ({views} views)")
        print(f"{report['num_examples']} {args.split} examples: {accuracy}"
              f" ({top}), macro F1 {report['macro_avg']['f1']:.4f}, "
              f"ECE {report['calibration']['ece']:.4f}")
    elif single_view:
        (metric, value), = single_view.items()
        print(f"{report['num_examples']} {args.split} examples: {metric} {value:.4f} single-view,"
              f" {primary_metric(report)[1]:.4f} with TTA ({views} views)")
    print(f"Wrote {', '.join(report['files'])} to {output_dir}")
    return 0


def _tune(args: argparse.Namespace) -> int:
    from keras_transfer.tuning import SearchSpace, tune_image_classifier

    config_path = getattr(args, "config", None)
    args.config = config_path
    base = _image_config(args)
    space = {}
    if getattr(args, "space", None):
        space = _load_config(args.space)
    for name in ("recipes", "head_epochs", "fine_tune_epochs"):
        if hasattr(args, name):
            space[name] = getattr(args, name)
    space = SearchSpace.from_dict(space, source=getattr(args, "space", None) or "search space")
    output_dir = getattr(args, "tune_dir", None) or str(
        Path("tuning") / base.resolved_output_dir().name)
    result = tune_image_classifier(
        base, space, algorithm=getattr(args, "algorithm", "bayesian"),
        max_trials=getattr(args, "max_trials", None if hasattr(args, "max_minutes") else 20),
        max_minutes=getattr(args, "max_minutes", None), output_dir=output_dir,
        seed=base.seed)
    print(result.table())
    print(f"Best {result.objective} {result.best_score:.4f} (trial {result.best_trial}); "
          f"features computed {result.feature_store.get('computations', 0)} time(s) for "
          f"{len(result.rows)} trials. Re-run it: keras-transfer train --config "
          f"{Path(output_dir) / 'best_config.json'}")
    return 0


def _backbone_list(value: str) -> list[str]:
    """`--backbones a,b,c` (spaces and empty items ignored); the names are checked later."""
    return [name.strip() for name in value.split(",") if name.strip()]


def _compare(args: argparse.Namespace) -> int:
    from keras_transfer.compare import CompareConfig, compare_backbones

    compare_backbones(CompareConfig(**_settings(CompareConfig, args)))  # checks first
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
    train.add_argument("--schedule", choices=["default", "long", "fast", "classic"],
                       help="default (a 12-minute training budget, planned from the data), "
                            "long (30 minutes: larger inputs, more epochs), fast (smoke runs), "
                            "classic (the fixed schedule of earlier versions)")
    train.add_argument("--time-budget", dest="time_budget", type=float, metavar="MINUTES",
                       help="minutes of training the recipe plans within (default: the "
                            "schedule's)")
    train.add_argument("--head-epochs", dest="head_epochs", type=int)
    train.add_argument("--epochs", type=int, help="fine-tuning epochs (stage 2; default: as "
                       "many as the budget allows)")
    train.add_argument("--unfreeze-blocks", dest="unfreeze_blocks", type=int)
    train.add_argument("--learning-rate", dest="learning_rate", type=float)
    train.add_argument("--fine-tune-learning-rate", dest="fine_tune_learning_rate", type=float)
    train.add_argument("--validation-split", dest="validation_split", type=float)
    train.add_argument("--augment", metavar="SYMMETRIES",
                       help="auto (default: what the dataset declares or a probe shows the "
                            "labels keep), none, flip, flips, dihedral, or generators such as "
                            "hflip,vflip,rot90")
    train.add_argument("--no-augment", dest="augment", action="store_const", const="none",
                       help="same as --augment none")
    train.add_argument("--imbalance", choices=["auto", "none", "class_weight", "focal"],
                       help="class-imbalance treatment (default auto: chosen on validation "
                            "when the classes are imbalanced)")
    train.add_argument("--quantization", nargs="+",
                       choices=["float32", "float16", "dynamic", "int8"])
    train.add_argument("--seed", type=int)
    train.add_argument("--max-train-examples", dest="max_train_examples", type=int,
                       help="train on at most this many images (smoke runs)")
    train.add_argument("--strategy", choices=["default", "auto", "mirrored", "multi_worker", "tpu",
                                              "one_device"],
                       help="tf.distribute strategy (default: none); --batch-size is then per "
                       "replica; multi_worker reads TF_CONFIG (see keras_transfer.distribute)")
    train.add_argument("--scale-learning-rate", dest="scale_learning_rate",
                       choices=["linear", "sqrt"],
                       help="scale the learning rates with the number of replicas")
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
    predict.add_argument("--tta", nargs="?", const=True, default=False, type=_symmetries,
                         metavar="SYMMETRIES",
                         help="test-time augmentation: average over flips/turns; bare: the "
                         "symmetries recorded in the export's metadata.json, or e.g. "
                         "'dihedral', 'hflip,vflip' (N views cost N runs per image)")
    predict.add_argument("--explain", nargs="?", const="gradcam", default=None,
                         type=_explain_dir, metavar="OUT_DIR",
                         help="also write a Grad-CAM overlay PNG per image to OUT_DIR (bare: "
                         "gradcam/): where the model looked for its top class; needs a .keras "
                         "file or an export folder holding model.keras")
    predict.set_defaults(run=_predict)

    exporter = commands.add_parser("export", help="export a .keras model (SavedModel, TFLite)")
    exporter.add_argument("model", help="a .keras file")
    exporter.add_argument("output_dir")
    exporter.add_argument("--labels", help="labels.txt, one class name per line")
    exporter.add_argument("--quantization", nargs="+", default=["float32"],
                          choices=["float32", "float16", "dynamic", "int8"])
    exporter.set_defaults(run=_export)

    lr_find = commands.add_parser(
        "lr-find", help="learning-rate range test on an image dataset (PNG + JSON)",
        description="Sweeps the learning rate exponentially over a few mini-batches of the "
        "training split `train` would use (a built-in dataset or a folder with one sub-folder "
        "per class) and suggests a rate; writes lr_find.png, lr_find.json and "
        "lr_find_config.json (repeat the run with --config on it).",
        argument_default=argparse.SUPPRESS)
    lr_find.add_argument("--dataset", help="built-in dataset name or image folder (default: elpv)")
    lr_find.add_argument("--backbone", help="backbone name (default: efficientnet_lite0)")
    lr_find.add_argument("--weights", type=_weights,
                         help="imagenet, none, or a weights file/preset")
    lr_find.add_argument("--output-dir", dest="output_dir",
                         help="folder for the outputs (default: runs/lr_find/<dataset>_<backbone>)")
    lr_find.add_argument("--image-size", dest="image_size", type=int)
    lr_find.add_argument("--batch-size", dest="batch_size", type=int)
    lr_find.add_argument("--unfreeze-blocks", dest="unfreeze_blocks", type=int,
                         help="0 (default): the head alone trains, the rate for --learning-rate; "
                         "N: the last N blocks too, the rate for --fine-tune-learning-rate")
    lr_find.add_argument("--min-lr", dest="min_lr", type=float, help="default 1e-7")
    lr_find.add_argument("--max-lr", dest="max_lr", type=float, help="default 1")
    lr_find.add_argument("--steps", type=int, help="mini-batches in the sweep (default 100)")
    lr_find.add_argument("--validation-split", dest="validation_split", type=float)
    lr_find.add_argument("--no-augment", dest="augment", action="store_const", const=False)
    lr_find.add_argument("--seed", type=int)
    lr_find.add_argument("--max-train-examples", dest="max_train_examples", type=int)
    lr_find.add_argument("--config", help="JSON or YAML file of settings (flags override it)")
    lr_find.set_defaults(run=_lr_find)

    evaluator = commands.add_parser(
        "evaluate", help="evaluation report of a trained model (JSON + PNGs)",
        description="Evaluates a .keras model (or an export folder, whose config.json then gives "
        "the dataset and split) on a split of a built-in dataset or image folder; writes "
        "evaluation.json (accuracy, per-class precision/recall/F1, confusion matrix, top-k, "
        "calibration), confusion_matrix.png, reliability.png, confidently_wrong.png and "
        "wrong_examples_gradcam.png (Grad-CAM overlays of the wrong examples' predicted class).",
        argument_default=argparse.SUPPRESS)
    evaluator.add_argument("model", help="a .keras file or an export folder holding model.keras")
    evaluator.add_argument("--dataset", help="built-in dataset name or image folder")
    evaluator.add_argument("--config", help="the training config.json (dataset and split)")
    evaluator.add_argument("--split", default="test", choices=["test", "validation", "train"])
    evaluator.add_argument("--output-dir", dest="output_dir", default=None,
                           help="default: evaluation_<split>/ beside the model")
    evaluator.add_argument("--image-size", dest="image_size", type=int,
                           help="default: the model's input size")
    evaluator.add_argument("--batch-size", dest="batch_size", type=int)
    evaluator.add_argument("--validation-split", dest="validation_split", type=float)
    evaluator.add_argument("--test-split", dest="test_split", type=float)
    evaluator.add_argument("--seed", type=int, help="the split seed used in training")
    evaluator.add_argument("--top-k", dest="top_k", type=int, nargs="+", default=[1, 3, 5])
    evaluator.add_argument("--bins", type=int, default=10, help="calibration bins (default 10)")
    evaluator.add_argument("--tta", nargs="?", const=True, type=_symmetries,
                           metavar="SYMMETRIES",
                           help="also evaluate with test-time augmentation (mean over flips/"
                           "turns); bare: the symmetries recorded in the export folder "
                           "(metadata.json or report.json), or e.g. 'dihedral', 'hflip,vflip'; "
                           "the report goes to evaluation_<split>_tta/ by default")
    evaluator.set_defaults(run=_evaluate)

    tuner = commands.add_parser(
        "tune", help="search learning rate, unfrozen blocks, dropout, head width, augmentation "
        "and recipe with KerasTuner",
        description="Hyperparameter search for `train` (backbone features computed once per "
        "frozen configuration); writes best_config.json (re-run it with `keras-transfer train "
        "--config`), trials.csv, tuning.json and search.png.",
        argument_default=argparse.SUPPRESS)
    tuner.add_argument("--dataset", help="built-in dataset name or image folder (default: elpv)")
    tuner.add_argument("--backbone", help="backbone name (default: efficientnet_lite0)")
    tuner.add_argument("--weights", type=_weights, help="imagenet, none, or a weights file/preset")
    tuner.add_argument("--image-size", dest="image_size", type=int)
    tuner.add_argument("--batch-size", dest="batch_size", type=int)
    tuner.add_argument("--validation-split", dest="validation_split", type=float)
    tuner.add_argument("--no-augment", dest="augment", action="store_const", const=False)
    tuner.add_argument("--seed", type=int)
    tuner.add_argument("--max-train-examples", dest="max_train_examples", type=int)
    tuner.add_argument("--config", help="base settings of every trial (a train config file)")
    tuner.add_argument("--space",
                       help="JSON or YAML file of SearchSpace settings (ranges, choices)")
    tuner.add_argument("--recipes", nargs="+", choices=["feature_extraction", "fine_tune"])
    tuner.add_argument("--head-epochs", dest="head_epochs", type=int,
                       help="most head epochs per trial (early stopping may stop sooner)")
    tuner.add_argument("--fine-tune-epochs", dest="fine_tune_epochs", type=int)
    tuner.add_argument("--algorithm", choices=["bayesian", "hyperband", "random"],
                       help="default: bayesian")
    tuner.add_argument("--max-trials", dest="max_trials", type=int,
                       help="trial budget (default 20 unless --max-minutes is given)")
    tuner.add_argument("--max-minutes", dest="max_minutes", type=float,
                       help="time budget: no trial starts after it")
    tuner.add_argument("--output-dir", dest="tune_dir",
                       help="default: tuning/<dataset>_<backbone>")
    tuner.set_defaults(run=_tune)

    comparer = commands.add_parser(
        "compare", help="compare backbones: accuracy, TFLite size and latency, a recommendation",
        description="Trains the same head on each backbone's cached features (optionally a "
        "budgeted fine-tune) on one split, exports float32 and int8 TFLite files and times them; "
        "prints a table and a recommendation, writes comparison.json and comparison.png.",
        argument_default=argparse.SUPPRESS)
    comparer.add_argument("--dataset", help="built-in dataset name or image folder (default: elpv)")
    comparer.add_argument("--backbones", type=_backbone_list, metavar="A,B,C",
                          help="comma-separated backbone names (default: every backbone whose "
                          "ImageNet weights ship offline)")
    comparer.add_argument("--weights", type=_weights, help="imagenet (default) or none")
    comparer.add_argument("--output-dir", dest="output_dir",
                          help="default: runs/compare/<dataset>")
    comparer.add_argument("--image-size", dest="image_size", type=int,
                          help="one size for all (default: each backbone's own)")
    comparer.add_argument("--fine-tune", dest="fine_tune", action="store_true",
                          help="also fine-tune each backbone within --time-budget")
    comparer.add_argument("--time-budget", dest="time_budget", type=float, metavar="MINUTES",
                          help="training minutes per backbone with --fine-tune (default 5)")
    comparer.add_argument("--head-epochs", dest="head_epochs", type=int,
                          help="most head epochs (default: until it converges)")
    comparer.add_argument("--batch-size", dest="batch_size", type=int)
    comparer.add_argument("--max-train-examples", dest="max_train_examples", type=int,
                          help="train on at most this many images (quick runs)")
    comparer.add_argument("--seed", type=int)
    comparer.add_argument("--quantization", nargs="+",
                          choices=["float32", "float16", "dynamic", "int8"],
                          help="TFLite files to measure (default: float32 int8)")
    comparer.add_argument("--tolerance", type=float, metavar="POINTS",
                          help="accuracy points below the best a recommendation may be "
                          "(default 1)")
    comparer.add_argument("--rank-by", dest="rank_by",
                          choices=["float32", "float16", "dynamic", "int8"],
                          help="the file whose latency the recommendation uses (default float32)")
    comparer.add_argument("--config", help="JSON or YAML file of settings (flags override it)")
    comparer.set_defaults(run=_compare)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `keras-transfer` command; returns the exit status.

    Errors from bad input are printed as one line (no traceback) with exit status 2.

    Example:
    >>> main(["list-backbones"])  # one line per backbone, then the exit status
    vgg16 ... keras.applications.VGG16
    ...
    0
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
