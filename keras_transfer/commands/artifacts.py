"""`keras-transfer predict` and `keras-transfer export` for every task.

``predict ARTIFACT INPUT...`` reads the task from the export's ``metadata.json`` (or the
``.keras`` file's config), reads the inputs as that task takes them (image files; texts as
arguments or a .txt/.csv/.tsv/.jsonl file; ``--question``/``--context`` or a JSON file;
prompts), prints one line per input and, with ``--output DIR``, writes ``predictions.json``
(and a PNG per image for segmentation and detection). ``export MODEL.keras OUT`` loads the
model with ``safe_mode`` and exports it with `keras_transfer.export` (its task's adapter).
Bad input is one `BadInputError` line naming the file or argument, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

from keras_transfer.errors import BadInputError
from keras_transfer.tasks import inputs as read

_SHOWN = 10  # detections printed per image (all of them go to predictions.json)
# Options that mean something for some tasks only: (option, attribute, tasks).
_TASK_OPTIONS = (
    ("--tta", "tta", ("image_classification",)),
    ("--explain", "explain", ("image_classification",)),
    ("--question/--context", "question", ("question_answering",)),
    ("--max-length", "max_length", ("causal_lm",)),
    ("--score-threshold", "score_threshold", ("detection",)),
)


def _check_options(args: argparse.Namespace, task: str) -> None:
    for option, attribute, tasks in _TASK_OPTIONS:
        if getattr(args, attribute, None) and task not in tasks:
            raise BadInputError(f"{option} is for {' and '.join(tasks)} models; "
                                f"{args.artifact} is a {task} model.")


def predict_command(args: argparse.Namespace, *, tta_note: Callable[[Any], str]) -> int:
    """Runs ``keras-transfer predict`` (see the module); returns the exit status.

    Example:
    >>> # predict_command(build_parser().parse_args(["predict", "exports/qa", "--question",
    >>> #     "Where?", "--context", "In Paris."]), tta_note=str)
    """
    from keras_transfer.tasks.artifacts import artifact_task

    task = artifact_task(args.artifact)
    _check_options(args, task)
    values = list(args.inputs)
    try:
        if task == "image_classification":
            return _classify_images(args, values, tta_note)
        run = {"segmentation": _segment, "detection": _detect, "text_classification": _classify,
               "question_answering": _answer, "causal_lm": _generate}.get(task)
        if run is None:
            raise BadInputError(f"{args.artifact}: predict does not know task {task!r}.")
        run(args, values)
    except (IndexError, OSError, TypeError) as error:  # e.g. a file that is not what it says
        raise BadInputError(f"{args.artifact}: cannot predict on {values or 'these inputs'} "
                            f"({type(error).__name__}: {error}).") from None
    return 0


def _written(args: argparse.Namespace, pictures: int = 0) -> None:
    if args.output:
        extra = f" and {pictures} PNG(s)" if pictures else ""
        print(f"wrote predictions.json{extra} to {args.output}", file=sys.stderr)


def _classify_images(args, values: list[str], tta_note) -> int:
    from keras_transfer.export.predict import load_artifact, resolve_tta
    from keras_transfer.tasks.predictors import classify_images

    images = read.image_files(values)
    artifact = load_artifact(args.artifact)
    if args.explain:
        from keras_transfer.explain.files import check_explainable, explain_artifact

        check_explainable(artifact)  # before predicting: a .tflite has no gradients
    symmetries = resolve_tta(args.tta, artifact.path) if args.tta else ()
    if args.tta:
        print(tta_note(symmetries), file=sys.stderr)  # stdout stays one line per image
    results = classify_images(artifact, images, top_k=args.top_k, tta=symmetries,
                              output_dir=args.output)
    for path, top in zip(images, results):
        print(path + ": " + ", ".join(f"{label} {score:.3f}" for label, score in top))
    if args.explain:
        written = explain_artifact(artifact, images, args.explain)
        print(f"Grad-CAM: wrote {len(written)} overlay(s) to {args.explain}", file=sys.stderr)
    _written(args)
    return 0


def _segment(args, values: list[str]) -> None:
    import numpy as np

    from keras_transfer.tasks.artifacts import read_metadata
    from keras_transfer.tasks.predictors import segment_images

    images = read.image_files(values)
    labels = read_metadata(args.artifact).get("labels")
    masks = segment_images(args.artifact, images, output_dir=args.output)
    for path, mask in zip(images, masks):
        ids, counts = np.unique(mask, return_counts=True)
        order = np.argsort(-counts, kind="stable")
        shares = ", ".join(f"{labels[ids[i]] if labels and ids[i] < len(labels) else ids[i]} "
                           f"{counts[i] / mask.size:.1%}" for i in order)
        print(f"{path}: mask {mask.shape[0]}x{mask.shape[1]}: {shares}")
    _written(args, len(images) if args.output else 0)


def _detect(args, values: list[str]) -> None:
    from keras_transfer.tasks.predictors import detect_images

    images = read.image_files(values)
    found = detect_images(args.artifact, images, score_threshold=args.score_threshold,
                          output_dir=args.output)
    for path, detections in zip(images, found):
        parts = [f"{label} {score:.2f} [{', '.join(f'{v:.0f}' for v in box)}]"
                 for label, score, box in zip(detections["labels"], detections["scores"],
                                              detections["boxes"])]
        count = len(parts)
        shown = parts[:_SHOWN] + ([f"… {count - _SHOWN} more"] if count > _SHOWN else [])
        print(f"{path}: {count} detection{'s' * (count != 1)}" + (": " if parts else "")
              + ", ".join(shown))
    _written(args, len(images) if args.output else 0)


def _classify(args, values: list[str]) -> None:
    from keras_transfer.tasks.artifacts import read_metadata
    from keras_transfer.tasks.text_predictors import classify_texts

    metadata = read_metadata(args.artifact)
    kind = (metadata.get("input") or {}).get("kind")
    arity = 2 if kind == "pairs" or len(metadata.get("string_inputs") or []) == 2 else 1
    texts = read.read_texts(values, arity)
    results = classify_texts(args.artifact, texts, top_k=args.top_k, output_dir=args.output)
    for text, top in zip(texts, results):
        shown = " | ".join(text) if isinstance(text, tuple) else text
        print(f"{_short(shown)}: " + ", ".join(f"{label} {score:.3f}" for label, score in top))
    _written(args)


def _answer(args, values: list[str]) -> None:
    from keras_transfer.tasks.text_predictors import answer_questions

    items = read.read_questions(values, args.question, args.context)
    for item, answer in zip(items, answer_questions(args.artifact, items,
                                                    output_dir=args.output)):
        where = (f"characters {answer['start']}-{answer['end']}" if answer["start"] >= 0
                 else "context not aligned")
        print(f"{_short(item['question'])}: {answer['answer']!r} (score "
              f"{answer['score']:.3f}, {where})")
    _written(args)


def _generate(args, values: list[str]) -> None:
    from keras_transfer.tasks.text_predictors import generate

    prompts = read.read_texts(values, 1)
    for prompt, text in zip(prompts, generate(args.artifact, prompts, max_length=args.max_length,
                                              output_dir=args.output)):
        print(f"{_short(prompt)}: {text}")
    _written(args)


def _short(text: str, width: int = 60) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[:width - 1] + "…"


def export_command(args: argparse.Namespace) -> int:
    """Runs ``keras-transfer export MODEL.keras OUT`` for a model of any task; returns 0.

    Example:
    >>> # export_command(build_parser().parse_args(["export", "det.keras", "out"]))
    """
    from keras_transfer.export.runner import load_keras_model
    from keras_transfer.tasks import task_config_of, task_of
    from keras_transfer.tasks.api import export

    if not Path(args.model).is_file():
        raise BadInputError(f"{args.model}: no such .keras file.")
    model = load_keras_model(args.model)  # checked, then loaded with safe_mode
    task = task_of(model)
    options: dict[str, Any] = {}
    if args.labels:
        options["labels"] = _labels(args.labels)
    if args.verify_data:
        pairs = bool(task_config_of(model).get("pairs"))
        options["verify_data"] = _verify_data(task.inputs, list(args.verify_data), pairs)
    quantization = ("all",) if "all" in args.quantization else tuple(args.quantization)
    info = export(model, args.output_dir, quantization=quantization, **options)
    files = ", ".join(f"{name} ({entry.get('size_bytes', 0) / 1024:.0f} KiB)"
                      for name, entry in info["files"].items())
    print(f"exported a {task.name} model to {args.output_dir}: {files}")
    return 0


def _labels(path: str) -> list[str]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise BadInputError(f"{path}: cannot read labels ({error.strerror or error}).") from None
    return [line.strip() for line in lines if line.strip()]


def _verify_data(kind: str, values: list[str], pairs: bool) -> Any:
    """`--verify-data` as the task reads it: image files, texts (pairs), or questions."""
    if kind == "images":
        return read.image_files(values)
    if kind == "question_context":
        return [(item["question"], item["context"]) for item in read.read_questions(values)]
    return read.read_texts(values, 2 if pairs else 1)
