"""`keras-transfer evaluate` and `tune` for image classifiers (what they did before they served
every task): a classification report with TTA, and the KerasTuner search.

Settings are read as for `train` (`keras_transfer.commands.cli._image_config`: the ``--config`` file,
then the flags), checked before any data is read.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def evaluate_image(args: argparse.Namespace) -> int:
    """Evaluates an image classifier (a .keras file or an export folder) on a split.

    Example:
    >>> # evaluate_image(build_parser().parse_args(["evaluate", "saved_models/elpv"]))
    """
    import keras

    from keras_transfer.commands.cli import _image_config, _tta_note
    from keras_transfer.data.symmetry import group_views
    from keras_transfer.evaluation.classification import evaluate, primary_metric
    from keras_transfer.export.integrity import check_artifact
    from keras_transfer.export.predict import resolve_tta
    from keras_transfer.commands.image_job import load_image_data

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


def tune_image(args: argparse.Namespace, file_settings: dict | None = None) -> int:
    """Searches an image classifier's training settings with KerasTuner.

    `file_settings`: the ``--config`` file's settings, its ``task`` key already taken out
    (`task_cli.tune` reads the file once and checks the task); None reads ``args.config``.

    Example:
    >>> # tune_image(build_parser().parse_args(["tune", "--dataset", "photos/"]))
    """
    from keras_transfer.commands.cli import _load_config
    from keras_transfer.commands.image_job import ImageJobConfig
    from keras_transfer.commands.task_cli import merge_settings
    from keras_transfer.tuning import SearchSpace, tune_image_classifier

    args.config = getattr(args, "config", None)
    if file_settings is None:
        file_settings = _load_config(args.config) if args.config else {}
        file_settings.pop("task", None)
    base = ImageJobConfig(**merge_settings(ImageJobConfig, args, file_settings))
    base.validate()  # before any data is read
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
