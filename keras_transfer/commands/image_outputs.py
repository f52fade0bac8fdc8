"""What an image job leaves behind once trained: its scores on the held-out split (and with
test-time augmentation), the exported files, and ``report.json``, ``config.json`` (the settings
as run, to repeat them) and the plots. `keras_transfer.commands.image_job` calls these.

Example:
>>> _repeatable_config(ImageJobConfig(), {"augment": {"symmetries": ["hflip"]}})["augment"]
'hflip'
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, NamedTuple

from keras_transfer.commands.image_config import ImageJobConfig


class _Scores(NamedTuple):
    """What evaluation hands to the report and the export."""

    evaluation: Any  # the test split's details (the report and the PNGs)
    report: dict  # keras_transfer.evaluation.classification.REPORT_SCHEMA
    tta_report: dict | None
    validation_report: dict | None


def _evaluate(model, data, test, config: ImageJobConfig, symmetries) -> _Scores:
    from keras_transfer.evaluation.classification import evaluate_classifier, evaluate_details

    name = f"{Path(config.dataset).name} test"
    evaluation = evaluate_details(model, test, class_names=data.class_names, name=name)
    report = evaluation.report
    tta_report = None
    if symmetries:
        tta_report = evaluate_details(model, test, class_names=data.class_names, name=name,
                                      tta=symmetries).report
    # The tuner's objective: comparable with a search's best score when re-run from its config.
    validation_report = (evaluate_classifier(model, data.validation, data.class_names)
                         if data.validation is not None else None)
    _print_scores("test", report)
    if tta_report:
        _print_scores(f"test, {tta_report['tta']['views']}-view TTA", tta_report)
    return _Scores(evaluation, report, tta_report, validation_report)


def _print_done(timings: dict, scores: _Scores, output_dir: Path) -> None:
    report, tta_report = scores.report, scores.tta_report
    print(f"Done in {timings['total_s'] / 60:.1f} min. Test accuracy {report['accuracy']:.2%}"
          + (f" ({tta_report['accuracy']:.2%} with {tta_report['tta']['views']}-view TTA)"
             if tta_report else "")
          + f". Artifacts: {', '.join(sorted(p.name for p in output_dir.iterdir()))}",
          flush=True)


def _print_scores(label: str, report: dict) -> None:
    recall = ", ".join(f"{name} {scores['recall']:.0%}"
                       for name, scores in report["per_class"].items())
    print(f"      {label}: accuracy {report['accuracy']:.4f}, macro-F1 "
          f"{report['macro_avg']['f1']:.4f} on {report['num_examples']} images; recall: "
          f"{recall}", flush=True)


def _export(model, output_dir: Path, data, test, config: ImageJobConfig, report: dict,
            symmetries, extra_files) -> dict:
    from keras_transfer.export import export

    return export(
        model, output_dir, formats=tuple(config.formats),
        quantization=config.quantization, labels=data.class_names, verify_data=test,
        representative_data=data.train if "int8" in config.quantization
        and "tflite" in config.formats else None,
        metadata={"backbone": config.backbone, "dataset": config.dataset,
                  "test_accuracy": report["accuracy"], "symmetries": list(symmetries)},
        extra_files=extra_files,
    )


def _repeatable_config(config: ImageJobConfig, decisions: dict) -> dict:
    """The settings as run, with what the recipe decided written out: `--config` repeats the
    same training (symmetries, imbalance treatment, image size, blocks and epochs fixed)."""
    settings = dataclasses.asdict(config)
    augment = decisions.get("augment", {})
    if settings["augment"] == "auto" and "symmetries" in augment:
        settings["augment"] = ",".join(augment["symmetries"]) or "none"
    if settings["imbalance"] == "auto" and "head" in decisions:
        settings["imbalance"] = decisions["head"]["imbalance"]
    if settings["image_size"] is None and "image_size" in decisions:
        settings["image_size"] = decisions["image_size"]["size"]
    plan = decisions.get("plan", {})
    if settings["epochs"] is None and "epochs_run" in plan:
        # The epochs the budget allowed, as fixed stages: a re-run trains the same, no budget.
        settings["epochs"] = plan["epochs_run"]
        settings["unfreeze_blocks"] = plan["blocks_unfrozen"]
    return settings


def _write_outputs(output_dir: Path, evaluation, report: dict, config: dict, history) -> None:
    from keras_transfer.evaluation.plots import plot_learning_curves
    from keras_transfer.utils.files import atomic_write_bytes

    write_json = lambda name, obj: atomic_write_bytes(  # noqa: E731
        output_dir / name, json.dumps(obj, indent=2, default=str).encode())
    # Into the export's temporary folder: confusion matrix, reliability, wrong examples.
    evaluation.write(output_dir)
    write_json("report.json", report)
    write_json("config.json", config)
    plot_learning_curves(history.stages, output_dir / "learning_curves.png")
