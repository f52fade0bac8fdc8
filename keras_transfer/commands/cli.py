"""The `keras-transfer` command: thin argument parsing over the same functions a notebook calls."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Sequence

# TensorFlow's logging is configured before TensorFlow loads, by the `keras-transfer` command's
# entry (keras_transfer.console); this module is imported after it.
from keras_transfer.console import VERBOSE_ENV, VERBOSE_FLAG, strip_verbose


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
    from keras_transfer.commands.artifacts import predict_command

    return predict_command(args, tta_note=_tta_note)  # every task: see commands.artifacts


def _explain_dir(value: str) -> str:
    """`--explain OUT_DIR`, checked while parsing: an image path taken by mistake is named."""
    if Path(value).is_file() or Path(value).suffix.lower() in (
            ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"):
        raise argparse.ArgumentTypeError(
            f"{value!r} is a file or an image, not an output folder. For the default folder "
            "(gradcam/), put a bare --explain after the positional arguments.")
    return value


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

    from keras_transfer.commands.task_cli import TASK_METAVAR, task_argument

    train = commands.add_parser(
        "train", help="fine-tune a backbone for a task (image, text, qa, lm, segmentation, "
        "detection) and export it",
        description="Fine-tune for a task on its data: image classification on a built-in "
        "dataset (default: elpv) or a folder with one sub-folder per class; text classification "
        "on a CSV/TSV/JSONL file; segmentation on a folder of images/ + masks/; detection on "
        "COCO, VOC or YOLO annotations; question answering on a SQuAD JSON file; a causal LM on "
        "a .txt corpus ('synthetic' generates data for every task but image). The task is "
        "inferred from the data unless --task says it. Writes model.keras, saved_model/, "
        ".tflite files, metadata.json, report.json, config.json and PNG plots.",
        argument_default=argparse.SUPPRESS)
    train.add_argument("--task", type=task_argument, metavar=TASK_METAVAR,
                       help="what the model is for (default: inferred from --dataset)")
    train.add_argument("--dataset", help="built-in dataset name (elpv, tweets, synthetic), "
                       "folder or file (default: elpv)")
    train.add_argument("--backbone", help="backbone name (default: efficientnet_lite0 for "
                       "images, minilm_l6 for text and qa, gpt2_base_en for lm); text tasks "
                       "also take a keras-hub preset or folder, or tiny:<family> (random, tiny)")
    train.add_argument("--weights", type=_weights,
                       help="imagenet, none, or a weights file/preset (text, qa, lm: the "
                       "preset's own, or none)")
    train.add_argument("--head", help="segmentation: deeplab_v3_plus (default) or unet; "
                       "detection: ssd (default), retinanet, yolov8 or faster_rcnn; text: "
                       "single_label (default) or multi_label")
    train.add_argument("--sequence-length", dest="sequence_length", type=int,
                       help="tokens per text (text, qa, lm; default 128, qa 256)")
    train.add_argument("--text-column", dest="text_column", help="text: default 'text'")
    train.add_argument("--label-column", dest="label_column",
                       help="text: default 'label' ('sentiment' for tweets)")
    train.add_argument("--num-examples", dest="num_examples", type=int,
                       help="examples --dataset synthetic generates (default 256)")
    train.add_argument("--formats", nargs="+", choices=["keras", "saved_model", "tflite"],
                       help="what to export (all tasks but image; default: all the task allows)")
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
    train.add_argument("--learning-rate", dest="learning_rate", type=float,
                       help="the head stage's rate (text, qa, lm: no head stage by default, "
                       "so the rate they train at)")
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

    predict = commands.add_parser(
        "predict", help="run an exported model of any task on images, texts or questions",
        description="Runs an export folder, .keras, SavedModel or .tflite file on its inputs, "
        "the task read from metadata.json: image files (classification: top-k labels; "
        "segmentation: masks; detection: boxes), texts or a .txt/.csv/.tsv/.jsonl file of them "
        "(text classification; pairs as A B A B or two columns; causal LM prompts), "
        "--question/--context or a .json/.jsonl file (question answering). With --output, "
        "writes predictions.json (and a PNG per image for segmentation and detection).")
    predict.add_argument("artifact", help=".keras file, SavedModel folder, .tflite or export folder")
    predict.add_argument("inputs", nargs="*", metavar="INPUT",
                         help="image files, texts, or a file of texts / questions")
    predict.add_argument("--output", metavar="DIR", default=None,
                         help="write predictions.json (and PNGs) to DIR")
    predict.add_argument("--top-k", type=int, default=3)
    predict.add_argument("--tta", nargs="?", const=True, default=False, type=_symmetries,
                         metavar="SYMMETRIES",
                         help="image classification: test-time augmentation, average over "
                         "flips/turns; bare: the symmetries recorded in the export's "
                         "metadata.json, or e.g. 'dihedral', 'hflip,vflip' (N views cost N runs "
                         "per image)")
    predict.add_argument("--explain", nargs="?", const="gradcam", default=None,
                         type=_explain_dir, metavar="OUT_DIR",
                         help="image classification: also write a Grad-CAM overlay PNG per image "
                         "to OUT_DIR (bare: gradcam/): where the model looked for its top class; "
                         "needs a .keras file or an export folder holding model.keras")
    predict.add_argument("--question", action="append", metavar="Q",
                         help="question answering: a question (repeatable, with --context)")
    predict.add_argument("--context", action="append", metavar="C",
                         help="question answering: the context of the --question before it")
    predict.add_argument("--max-length", dest="max_length", type=int, default=None,
                         help="causal LM: tokens in all, prompt included (default: the model's "
                         "sequence length)")
    predict.add_argument("--score-threshold", dest="score_threshold", type=float, default=None,
                         help="detection: the lowest score kept (default: the export's)")
    predict.set_defaults(run=_predict)

    exporter = commands.add_parser(
        "export", help="export a .keras model of any task (SavedModel, TFLite, metadata.json)")
    exporter.add_argument("model", help="a .keras file")
    exporter.add_argument("output_dir")
    exporter.add_argument("--labels", help="labels.txt, one class name per line")
    exporter.add_argument("--quantization", nargs="+", default=["float32"],
                          choices=["float32", "float16", "dynamic", "int8", "all"],
                          help="TFLite flavours (all: every one the task allows)")
    exporter.add_argument("--verify-data", dest="verify_data", nargs="+", metavar="PATH",
                          help="images (files or a folder), texts or a file of texts / questions "
                          "to verify the files on and to calibrate int8 with")
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
        "the dataset and split) on a split of its task's data, with its task's metrics. Image "
        "classifiers: evaluation.json (accuracy, per-class precision/recall/F1, confusion "
        "matrix, top-k, calibration), confusion_matrix.png, reliability.png, "
        "confidently_wrong.png and wrong_examples_gradcam.png (Grad-CAM overlays of the wrong "
        "examples' predicted class). Other tasks: evaluation.json with accuracy and macro-F1 "
        "(text), mean IoU and pixel accuracy (segmentation), COCO mAP (detection), exact match "
        "and F1 (qa), perplexity and token accuracy (lm).",
        argument_default=argparse.SUPPRESS)
    evaluator.add_argument("model", help="a .keras file or an export folder holding model.keras")
    evaluator.add_argument("--task", type=task_argument, metavar=TASK_METAVAR,
                           help="check the model is for this task (default: its metadata.json "
                           "or the model says)")
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
    tuner.add_argument("--task", type=task_argument, metavar=TASK_METAVAR,
                       help="image (the search covers image classifiers; other tasks are "
                       "refused, saying what to run instead)")
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
