"""Every `keras-transfer` sub-command as data: its help, description and flags (`COMMANDS`).

`keras_transfer.commands.cli.build_parser` adds them in this order (the order ``--help`` lists
them) and names the function each runs; `keras_transfer.commands.arguments` has the pieces.

Example:
>>> len(COMMANDS), COMMANDS[0].name, COMMANDS[-1].name
(9, 'train', 'compare')
>>> [names for names, _ in PREDICT.flags][:2]
[('artifact',), ('inputs',)]
"""

from __future__ import annotations

from keras_transfer.commands.arguments import (
    TFLITE_FLAVOURS,
    Command,
    _backbone_list,
    _explain_dir,
    _symmetries,
    _weights,
    flag,
    shared,
)
from keras_transfer.commands.task_cli import TASK_METAVAR, task_argument

# What the other tasks' models and data need (train and tune): their head, sequence length,
# text columns and the size of --dataset synthetic.
TASK_MODEL_FLAGS = (
    flag("--head", help="segmentation: deeplab_v3_plus (default) or unet; detection: ssd "
         "(default), retinanet, yolov8 or faster_rcnn; text: single_label (default) or "
         "multi_label"),
    flag("--sequence-length", dest="sequence_length", type=int,
         help="tokens per text (text, qa, lm; default 128, qa 256)"),
    flag("--text-column", dest="text_column",
         help="text: default 'text'; two names for a sentence pair: premise,hypothesis"),
    flag("--label-column", dest="label_column",
         help="text: default 'label' ('sentiment' for tweets)"),
    flag("--num-examples", dest="num_examples", type=int,
         help="examples --dataset synthetic generates (default 256)"),
)
DATASET = flag("--dataset", help="built-in dataset name (elpv, tweets, synthetic), folder or "
               "file (default: elpv)")
BACKBONE = flag("--backbone", help="backbone name (default: efficientnet_lite0 for images, "
                "minilm_l6 for text and qa, gpt2_base_en for lm); text tasks also take a "
                "keras-hub preset or folder, or tiny:<family> (random, tiny)")
# Every task's training: what the model is for, its data and backbone, then the image job's
# schedule, augmentation, export and distribution.
TRAIN_TASK_FLAGS = (
    flag("--task", type=task_argument, metavar=TASK_METAVAR,
         help="what the model is for (default: inferred from --dataset)"),
    DATASET,
    BACKBONE,
    flag("--weights", type=_weights, help="imagenet, none, or a weights file/preset (text, qa, "
         "lm: the preset's own, or none)"),
    *TASK_MODEL_FLAGS,
    flag("--formats", nargs="+", choices=["keras", "saved_model", "tflite"],
         help="what to export (default: all the task allows)"),
    flag("--output-dir", dest="output_dir", help="export folder"),
)
TRAIN_SCHEDULE_FLAGS = (
    shared("image_size"),
    shared("batch_size"),
    flag("--schedule", choices=["default", "long", "fast", "classic"],
         help="default (a 12-minute training budget, planned from the data), long (30 minutes: "
         "larger inputs, more epochs), fast (smoke runs), classic (the fixed schedule of earlier "
         "versions)"),
    flag("--time-budget", dest="time_budget", type=float, metavar="MINUTES",
         help="minutes of training the recipe plans within (default: the schedule's)"),
    flag("--head-epochs", dest="head_epochs", type=int),
    flag("--epochs", type=int,
         help="fine-tuning epochs (stage 2; default: as many as the budget allows)"),
    flag("--unfreeze-blocks", dest="unfreeze_blocks", type=int),
    flag("--learning-rate", dest="learning_rate", type=float, help="the head stage's rate "
         "(text, qa, lm: no head stage by default, so the rate they train at)"),
    flag("--fine-tune-learning-rate", dest="fine_tune_learning_rate", type=float),
    shared("validation_split"),
)
TRAIN_IMAGE_FLAGS = (
    flag("--augment", metavar="SYMMETRIES",
         help="auto (default: what the dataset declares or a probe shows the labels keep), "
         "none, flip, flips, dihedral, or generators such as hflip,vflip,rot90"),
    flag("--no-augment", dest="augment", action="store_const", const="none",
         help="same as --augment none"),
    flag("--imbalance", choices=["auto", "none", "class_weight", "focal"],
         help="class-imbalance treatment (default auto: chosen on validation when the classes "
         "are imbalanced)"),
    flag("--quantization", nargs="+", choices=TFLITE_FLAVOURS),
    shared("seed"),
    shared("max_train_examples", help="train on at most this many images (smoke runs)"),
    flag("--strategy",
         choices=["default", "auto", "mirrored", "multi_worker", "tpu", "one_device"],
         help="tf.distribute strategy (default: none); --batch-size is then per replica; "
         "multi_worker reads TF_CONFIG (see keras_transfer.distribute)"),
    flag("--scale-learning-rate", dest="scale_learning_rate", choices=["linear", "sqrt"],
         help="scale the learning rates with the number of replicas"),
    shared("config"),
)
TRAIN = Command(
    "train", help="fine-tune a backbone for a task (image, text, qa, lm, segmentation, "
    "detection) and export it",
    description="Fine-tune for a task on its data: image classification on a built-in dataset "
    "(default: elpv) or a folder with one sub-folder per class; text classification on a "
    "CSV/TSV/JSONL file; segmentation on a folder of images/ + masks/; detection on COCO, VOC "
    "or YOLO annotations; question answering on a SQuAD JSON file; a causal LM on a .txt corpus "
    "('synthetic' generates data for every task but image). The task is inferred from the data "
    "unless --task says it. Writes model.keras, saved_model/, .tflite files, metadata.json, "
    "report.json, config.json and PNG plots.",
    flags=TRAIN_TASK_FLAGS + TRAIN_SCHEDULE_FLAGS + TRAIN_IMAGE_FLAGS, suppress=True)

DESCRIBE = Command("describe", help="print a backbone's named blocks", flags=(
    flag("backbone"),
    flag("--weights", type=_weights, default=None,
         help="weights to load (default: none, nothing is downloaded)"),
    flag("--input-size", type=int, default=None),
))

LIST_BACKBONES = Command("list-backbones", help="list the registered backbones")

PREDICT = Command(
    "predict", help="run an exported model of any task on images, texts or questions",
    description="Runs an export folder, .keras, SavedModel or .tflite file on its inputs, the "
    "task read from metadata.json: image files (classification: top-k labels; segmentation: "
    "masks; detection: boxes), texts or a .txt/.csv/.tsv/.jsonl file of them (text "
    "classification; pairs as A B A B or two columns; causal LM prompts), --question/--context "
    "or a .json/.jsonl file (question answering). With --output, writes predictions.json (and a "
    "PNG per image for segmentation and detection).",
    flags=(
        flag("artifact", help=".keras file, SavedModel folder, .tflite or export folder"),
        flag("inputs", nargs="*", metavar="INPUT",
             help="image files, texts, or a file of texts / questions"),
        flag("--output", metavar="DIR", default=None,
             help="write predictions.json (and PNGs) to DIR"),
        flag("--top-k", type=int, default=3),
        flag("--tta", nargs="?", const=True, default=False, type=_symmetries,
             metavar="SYMMETRIES",
             help="image classification: test-time augmentation, average over flips/turns; "
             "bare: the symmetries recorded in the export's metadata.json, or e.g. 'dihedral', "
             "'hflip,vflip' (N views cost N runs per image)"),
        flag("--explain", nargs="?", const="gradcam", default=None, type=_explain_dir,
             metavar="OUT_DIR",
             help="image classification: also write a Grad-CAM overlay PNG per image to "
             "OUT_DIR (bare: gradcam/): where the model looked for its top class; needs a "
             ".keras file or an export folder holding model.keras"),
        flag("--question", action="append", metavar="Q",
             help="question answering: a question (repeatable, with --context)"),
        flag("--context", action="append", metavar="C",
             help="question answering: the context of the --question before it"),
        flag("--max-length", dest="max_length", type=int, default=None,
             help="causal LM: tokens in all, prompt included (default: the model's sequence "
             "length)"),
        flag("--score-threshold", dest="score_threshold", type=float, default=None,
             help="detection: the lowest score kept (default: the export's)"),
    ))

EXPORT = Command(
    "export", help="export a .keras model of any task (SavedModel, TFLite, metadata.json)",
    flags=(
        flag("model", help="a .keras file"),
        flag("output_dir"),
        flag("--labels", help="labels.txt, one class name per line"),
        flag("--quantization", nargs="+", default=["float32"],
             choices=[*TFLITE_FLAVOURS, "all"],
             help="TFLite flavours (all: every one the task allows)"),
        flag("--verify-data", dest="verify_data", nargs="+", metavar="PATH",
             help="images (files or a folder), texts or a file of texts / questions to verify "
             "the files on and to calibrate int8 with"),
    ))

LR_FIND = Command(
    "lr-find", help="learning-rate range test on an image dataset (PNG + JSON)",
    description="Sweeps the learning rate exponentially over a few mini-batches of the "
    "training split `train` would use (a built-in dataset or a folder with one sub-folder per "
    "class) and suggests a rate; writes lr_find.png, lr_find.json and lr_find_config.json "
    "(repeat the run with --config on it).",
    flags=(
        shared("image_dataset"),
        shared("image_backbone"),
        shared("weights"),
        flag("--output-dir", dest="output_dir",
             help="folder for the outputs (default: runs/lr_find/<dataset>_<backbone>)"),
        shared("image_size"),
        shared("batch_size"),
        flag("--unfreeze-blocks", dest="unfreeze_blocks", type=int,
             help="0 (default): the head alone trains, the rate for --learning-rate; N: the "
             "last N blocks too, the rate for --fine-tune-learning-rate"),
        flag("--min-lr", dest="min_lr", type=float, help="default 1e-7"),
        flag("--max-lr", dest="max_lr", type=float, help="default 1"),
        flag("--steps", type=int, help="mini-batches in the sweep (default 100)"),
        shared("validation_split"),
        shared("no_augment"),
        shared("seed"),
        shared("max_train_examples"),
        shared("config"),
    ), suppress=True)

EVALUATE = Command(
    "evaluate", help="evaluation report of a trained model (JSON + PNGs)",
    description="Evaluates a .keras model (or an export folder, whose config.json then gives "
    "the dataset and split) on a split of its task's data, with its task's metrics. Image "
    "classifiers: evaluation.json (accuracy, per-class precision/recall/F1, confusion matrix, "
    "top-k, calibration), confusion_matrix.png, reliability.png, confidently_wrong.png and "
    "wrong_examples_gradcam.png (Grad-CAM overlays of the wrong examples' predicted class). "
    "Other tasks: evaluation.json with accuracy and macro-F1 (text), mean IoU and pixel "
    "accuracy (segmentation), COCO mAP (detection), exact match and F1 (qa), perplexity and "
    "token accuracy (lm).",
    flags=(
        flag("model", help="a .keras file or an export folder holding model.keras"),
        flag("--task", type=task_argument, metavar=TASK_METAVAR,
             help="check the model is for this task (default: its metadata.json or the model "
             "says)"),
        flag("--dataset", help="built-in dataset name or image folder"),
        flag("--config", help="the training config.json (dataset and split)"),
        flag("--split", default="test", choices=["test", "validation", "train"]),
        flag("--output-dir", dest="output_dir", default=None,
             help="default: evaluation_<split>/ beside the model"),
        shared("image_size", help="default: the model's input size"),
        shared("batch_size"),
        shared("validation_split"),
        flag("--test-split", dest="test_split", type=float),
        shared("seed", help="the split seed used in training"),
        flag("--top-k", dest="top_k", type=int, nargs="+", default=[1, 3, 5]),
        flag("--bins", type=int, default=10, help="calibration bins (default 10)"),
        flag("--tta", nargs="?", const=True, type=_symmetries, metavar="SYMMETRIES",
             help="also evaluate with test-time augmentation (mean over flips/turns); bare: the "
             "symmetries recorded in the export folder (metadata.json or report.json), or e.g. "
             "'dihedral', 'hflip,vflip'; the report goes to evaluation_<split>_tta/ by default"),
    ), suppress=True)

TUNE = Command(
    "tune", help="search a task's training settings with KerasTuner (image: rate, unfrozen "
    "blocks, dropout, head width, augmentation, recipe; other tasks: rates, blocks, decay)",
    description="Hyperparameter search for `train` (backbone features computed once per frozen "
    "configuration); writes best_config.json (re-run it with `keras-transfer train --config`), "
    "trials.csv, tuning.json and search.png.",
    flags=(
        flag("--task", type=task_argument, metavar=TASK_METAVAR,
             help="what the model is for (default: inferred from --dataset); image searches "
             "the head and recipe on cached features, the other tasks search their job's "
             "rates, unfrozen blocks and weight decay"),
        DATASET,
        BACKBONE,
        shared("weights"),
        shared("image_size"),
        shared("batch_size"),
        shared("validation_split"),
        shared("no_augment"),
        shared("seed"),
        shared("max_train_examples"),
        flag("--config", help="base settings of every trial (a train config file)"),
        flag("--space", help="JSON or YAML file of search ranges and choices (image: "
             "SearchSpace; other tasks: TaskSpace)"),
        flag("--recipes", nargs="+", choices=["feature_extraction", "fine_tune"]),
        flag("--head-epochs", dest="head_epochs", type=int,
             help="most head epochs per trial (early stopping may stop sooner)"),
        flag("--fine-tune-epochs", dest="fine_tune_epochs", type=int),
        flag("--epochs", type=int, help="other tasks: fine-tuning epochs per trial"),
        *TASK_MODEL_FLAGS,
        flag("--algorithm", choices=["bayesian", "hyperband", "random"],
             help="default: bayesian"),
        flag("--max-trials", dest="max_trials", type=int,
             help="trial budget (default 20 unless --max-minutes is given)"),
        flag("--max-minutes", dest="max_minutes", type=float,
             help="time budget: no trial starts after it"),
        flag("--output-dir", dest="tune_dir", help="default: tuning/<dataset>_<backbone>"),
    ), suppress=True)

COMPARE = Command(
    "compare", help="compare backbones: accuracy, TFLite size and latency, a recommendation",
    description="Trains the same head on each backbone's cached features (optionally a "
    "budgeted fine-tune) on one split, exports float32 and int8 TFLite files and times them; "
    "prints a table and a recommendation, writes comparison.json and comparison.png.",
    flags=(
        shared("image_dataset"),
        flag("--backbones", type=_backbone_list, metavar="A,B,C",
             help="comma-separated backbone names (default: every backbone whose ImageNet "
             "weights ship offline)"),
        shared("weights", help="imagenet (default) or none"),
        flag("--output-dir", dest="output_dir", help="default: runs/compare/<dataset>"),
        shared("image_size", help="one size for all (default: each backbone's own)"),
        flag("--fine-tune", dest="fine_tune", action="store_true",
             help="also fine-tune each backbone within --time-budget"),
        flag("--time-budget", dest="time_budget", type=float, metavar="MINUTES",
             help="training minutes per backbone with --fine-tune (default 5)"),
        flag("--head-epochs", dest="head_epochs", type=int,
             help="most head epochs (default: until it converges)"),
        shared("batch_size"),
        shared("max_train_examples", help="train on at most this many images (quick runs)"),
        shared("seed"),
        flag("--quantization", nargs="+", choices=TFLITE_FLAVOURS,
             help="TFLite files to measure (default: float32 int8)"),
        flag("--tolerance", type=float, metavar="POINTS",
             help="accuracy points below the best a recommendation may be (default 1)"),
        flag("--rank-by", dest="rank_by", choices=TFLITE_FLAVOURS,
             help="the file whose latency the recommendation uses (default float32)"),
        shared("config"),
    ), suppress=True)

# In the order `keras-transfer --help` lists them.
COMMANDS = (TRAIN, DESCRIBE, LIST_BACKBONES, PREDICT, EXPORT, LR_FIND, EVALUATE, TUNE, COMPARE)
