"""`CompareConfig`: the settings of one backbone comparison, checked before any data is read."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

from keras_transfer.export.tflite import QUANTIZATIONS


@dataclasses.dataclass
class CompareConfig:
    """Settings of one backbone comparison (`compare_backbones`; saved in ``comparison.json``).

    Every backbone sees the same split of `dataset` (the same `seed` and fractions as
    ``keras-transfer train``) and trains the same head; `image_size` None gives each backbone
    its pretraining size. `time_budget` is the minutes of training per backbone with
    `fine_tune` (the head included, as ``train --time-budget``); without it the head trains on
    cached features to convergence. The recommendation takes the fastest backbone, by the
    `rank_by` TFLite file's latency, whose test accuracy is within `tolerance` points of the
    most accurate one (`keras_transfer.compare.recommend`).

    Example:
    >>> CompareConfig(dataset="elpv", backbones=("efficientnet_lite0",)).resolved_output_dir()
    PosixPath('runs/compare/elpv')
    """

    dataset: str = "elpv"
    # None: every registered backbone whose ImageNet weights ship offline (`offline_backbones`).
    backbones: tuple[str, ...] | None = None
    weights: str | None = "imagenet"
    output_dir: str | None = None
    image_size: int | None = None
    batch_size: int = 32
    fine_tune: bool = False
    time_budget: float = 5.0  # minutes per backbone, with fine_tune
    head_epochs: int | None = None  # most epochs of the head (None: until it converges)
    validation_split: float = 0.1
    test_split: float = 0.2
    imbalance: str = "auto"
    seed: int = 1337
    max_train_examples: int | None = None
    quantization: tuple[str, ...] = ("float32", "int8")
    calibration_images: int = 64  # training images that calibrate int8
    # Test images each .tflite file is checked on: top-1 agreement with Keras, accuracy there.
    verify_images: int = 100
    latency_rounds: int = 5  # alternating rounds over every file, 10 invocations each
    tolerance: float = 1.0  # accuracy points: how far below the best a recommendation may be
    rank_by: str = "float32"  # the TFLite file whose latency the recommendation compares

    def resolved_output_dir(self) -> Path:
        """The output folder: `output_dir`, else ``runs/compare/<dataset name>``."""
        if self.output_dir:
            return Path(self.output_dir)
        name = Path(self.dataset).name if Path(self.dataset).is_dir() else self.dataset
        return Path("runs") / "compare" / name

    def resolved_backbones(self) -> tuple[str, ...]:
        """`backbones`, or every registered backbone with offline ImageNet weights.

        Example:
        >>> CompareConfig(backbones=("vgg16", "resnet50")).resolved_backbones()
        ('vgg16', 'resnet50')
        >>> "efficientnet_lite0" in CompareConfig().resolved_backbones()
        True
        """
        return tuple(self.backbones) if self.backbones is not None else offline_backbones()

    def check(self) -> None:
        """Raises one `BadInputError` naming every bad setting, before any data is read: types
        from the field hints, ranges and choices from `setting_rules`, unknown backbones with
        the nearest registered names, duplicates, and image sizes a backbone cannot take.

        Example:
        >>> CompareConfig(backbones=("resnet50", "resnet50"), tolerance=-1.0).check()
        Traceback (most recent call last):
        ...
        keras_transfer.errors.BadInputError: 2 invalid settings: tolerance=-1.0: expected a number >= 0; backbones=('resnet50', 'resnet50'): expected each backbone once: 'resnet50' is given 2 times.
        """
        from keras_transfer import settings

        together = [
            settings.Together(("backbones",), _duplicates),
            settings.Together(("image_size", "backbones"), _fits_every_backbone),
            settings.Together(("rank_by", "quantization"), lambda rank_by, quantization: None
                              if rank_by in quantization else
                              "expected rank_by to be one of the exported quantizations"),
        ]
        settings.check_settings(self, self.setting_rules(), together)

    @staticmethod
    def setting_rules() -> dict:
        """What each setting accepts beyond its type hint (`keras_transfer.settings.Rule`).

        Example:
        >>> CompareConfig.setting_rules()["rank_by"].choices
        ('float32', 'float16', 'dynamic', 'int8')
        """
        from keras_transfer.commands.image_job import IMBALANCE_CHOICES
        from keras_transfer.settings import FRACTION, SEED, Rule, backbone_problem

        return {
            "dataset": Rule(check=dataset_problem),
            "backbones": Rule(check=backbone_problem, nonempty=True),
            "image_size": Rule(min=1),
            "batch_size": Rule(min=1),
            "time_budget": Rule(above=0),
            "head_epochs": Rule(min=1),
            "validation_split": FRACTION,
            "test_split": FRACTION,
            "imbalance": Rule(choices=IMBALANCE_CHOICES),
            "seed": SEED,
            "max_train_examples": Rule(min=1),
            "quantization": Rule(choices=QUANTIZATIONS, nonempty=True),
            "calibration_images": Rule(min=1),
            "verify_images": Rule(min=1),
            "latency_rounds": Rule(min=1),
            "tolerance": Rule(min=0),
            "rank_by": Rule(choices=QUANTIZATIONS),
        }


def offline_backbones() -> tuple[str, ...]:
    """The registered backbones whose ImageNet weights ship offline (no download needed).

    Example:
    >>> "efficientnet_lite0" in offline_backbones(), "resnet50" in offline_backbones()
    (True, False)
    """
    from keras_transfer.backbones import get_spec, list_backbones

    return tuple(name for name in list_backbones() if get_spec(name).has_offline_weights)


def dataset_problem(dataset: str) -> str | None:
    """Why `dataset` names neither a folder nor a built-in dataset (with the nearest built-in
    names), or None.

    Example:
    >>> dataset_problem("elvp")
    "neither a folder nor a built-in dataset (elpv, elpv_binary) (did you mean 'elpv'?)"
    >>> dataset_problem("elpv") is None
    True
    """
    from keras_transfer.data import builtin_names
    from keras_transfer.settings import did_you_mean

    if Path(dataset).is_dir() or dataset in builtin_names():
        return None
    return (f"neither a folder nor a built-in dataset ({', '.join(builtin_names())})"
            + did_you_mean(dataset, builtin_names()))


def _duplicates(backbones: Sequence[str] | None) -> str | None:
    repeated = {name: list(backbones).count(name) for name in backbones or ()}
    repeated = {name: count for name, count in repeated.items() if count > 1}
    if not repeated:
        return None
    return "expected each backbone once: " + ", ".join(
        f"{name!r} is given {count} times" for name, count in repeated.items())


def _fits_every_backbone(image_size: int | None, backbones: Sequence[str] | None) -> str | None:
    from keras_transfer.settings import image_fits_backbone

    for name in offline_backbones() if backbones is None else backbones:
        problem = image_fits_backbone(image_size, name)
        if problem:
            return problem
    return None
