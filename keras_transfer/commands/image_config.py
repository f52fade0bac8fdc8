"""The image job's settings: `ImageJobConfig` (what ``config.json`` holds and ``--config``
reads), the named `Schedule`s, and the input size a backbone was pretrained at.

`keras_transfer.commands.image_job` runs a config (and re-exports these names, their old home).

Example:
>>> ImageJobConfig(schedule="fast").stages()
(2, 1, 1)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A named way to train: a time budget for the default recipe, or fixed stages."""

    budget_minutes: float | None = None  # the default recipe plans within it
    head_epochs: int | None = None  # fixed stages (None: decided by the recipe)
    epochs: int | None = None
    unfreeze_blocks: int | None = None
    recipe: str = "auto"  # "auto" (`keras_transfer.recipes.auto_fine_tune`) or "classic"


SCHEDULES = {
    # "default" keeps README command 1 near a quarter of an hour on a 2-core CPU (the budget
    # covers training; evaluation and export come on top); "long" gives the planner more to
    # spend (larger inputs, more epochs, the whole network).
    "default": Schedule(budget_minutes=12),
    "long": Schedule(budget_minutes=30),
    "fast": Schedule(head_epochs=2, epochs=1, unfreeze_blocks=1),  # smoke runs, notebooks
    # The default before the data-aware recipe, kept to compare against: head 25 epochs
    # (Adam), then 4 epochs of the last 3 blocks, horizontal + vertical flips.
    "classic": Schedule(head_epochs=25, epochs=4, unfreeze_blocks=3, recipe="classic"),
}
IMBALANCE_CHOICES = ("auto", "none", "class_weight", "focal")


@dataclasses.dataclass
class ImageJobConfig:
    """Settings of one training run (saved beside its outputs as ``config.json``).

    Example:
    >>> ImageJobConfig(dataset="elpv").resolved_output_dir().name
    'elpv_efficientnet_lite0'
    """

    dataset: str = "elpv"
    backbone: str = "efficientnet_lite0"
    weights: str | None = "imagenet"
    output_dir: str | None = None
    # None: the backbone's size, or larger for larger images when the budget allows.
    image_size: int | None = None
    batch_size: int = 32
    schedule: str = "default"
    # Minutes for training (head, probes, fine-tuning); None: the schedule's.
    time_budget: float | None = None
    head_epochs: int | None = None
    epochs: int | None = None
    unfreeze_blocks: int | None = None
    learning_rate: float = 1e-3
    # AdamW's peak rate while fine-tuning (the "classic" schedule: Adam's, no warmup).
    fine_tune_learning_rate: float | None = None
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    validation_split: float = 0.1
    test_split: float = 0.2
    # "auto": the dataset's declared symmetries, else those a probe shows the labels keep;
    # or "none", "flip", "flips", "dihedral", "hflip,rot90", ... (legacy True = "flips").
    augment: str | bool = "auto"
    # 0 = no photometric change; s > 0 adds random contrast (±0.3·s) and brightness (±0.2·s).
    augment_strength: float = 0.0
    imbalance: str = "auto"
    hidden_units: tuple[int, ...] = ()
    dropout: float = 0.2
    # What to export (the TFLite flavours in `quantization` need "tflite").
    formats: tuple[str, ...] = ("keras", "saved_model", "tflite")
    quantization: tuple[str, ...] = ("float32",)
    seed: int = 1337
    max_train_examples: int | None = None
    # tf.distribute (keras_transfer.distribute.STRATEGIES): batch_size is then per replica, and
    # "linear"/"sqrt" scale the learning rates by the replica count (or its square root).
    strategy: str = "default"
    scale_learning_rate: str | None = None

    def resolved_output_dir(self) -> Path:
        """`output_dir`, else ``saved_models/<dataset>_<backbone>`` (see the class example)."""
        if self.output_dir:
            return Path(self.output_dir)
        name = Path(self.dataset).name if Path(self.dataset).is_dir() else self.dataset
        return Path("saved_models") / f"{name}_{self.backbone.replace('/', '_')}"

    def resolved_schedule(self) -> Schedule:
        """The schedule with this config's explicit stages and budget applied.

        Example:
        >>> ImageJobConfig(time_budget=5).resolved_schedule().budget_minutes
        5
        """
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule={self.schedule!r}: expected one of {sorted(SCHEDULES)}.")
        base = SCHEDULES[self.schedule]
        pick = lambda value, default: default if value is None else value  # noqa: E731
        return dataclasses.replace(
            base, budget_minutes=pick(self.time_budget, base.budget_minutes),
            head_epochs=pick(self.head_epochs, base.head_epochs),
            epochs=pick(self.epochs, base.epochs),
            unfreeze_blocks=pick(self.unfreeze_blocks, base.unfreeze_blocks))

    def validate(self, *, fits_backbone: bool = True) -> None:
        """Checks every setting before any data is read: types from the field hints, ranges and
        choices from `setting_rules`; one `BadInputError` names each bad setting.
        `fits_backbone`: also that ``image_size`` is at least the backbone's smallest input
        (off where a saved model is evaluated: its input size is what it is).

        Example:
        >>> ImageJobConfig(head_epochs=-3, learning_rate=-1.0).validate()
        Traceback (most recent call last):
        ...
        keras_transfer.errors.BadInputError: 2 invalid settings: head_epochs=-3: expected an integer >= 0 or None; learning_rate=-1.0: expected a number > 0.
        """
        from keras_transfer import settings

        together = [settings.Together(("formats", "quantization"), _quantization_problem)]
        if fits_backbone:
            together.append(settings.FITS_BACKBONE)
        settings.check_settings(self, self.setting_rules(), together)

    @staticmethod
    def setting_rules() -> dict:
        """What each setting accepts beyond its type hint (`keras_transfer.settings.Rule`).

        Example:
        >>> ImageJobConfig.setting_rules()["imbalance"].choices
        ('auto', 'none', 'class_weight', 'focal')
        """
        from keras_transfer.distribute.strategies import LR_RULES, STRATEGIES
        from keras_transfer.export.schema import FORMATS
        from keras_transfer.export.tflite import QUANTIZATIONS
        from keras_transfer.settings import TRAINING_RULES, FRACTION, Rule, backbone_problem, \
            symmetries_problem

        return {
            **TRAINING_RULES,
            "backbone": Rule(check=backbone_problem),
            "image_size": Rule(min=1),  # and the backbone's smallest input (FITS_BACKBONE)
            "schedule": Rule(choices=tuple(SCHEDULES)),
            "time_budget": Rule(above=0),
            "label_smoothing": FRACTION,
            "augment": Rule(check=symmetries_problem),
            "augment_strength": Rule(min=0),
            "imbalance": Rule(choices=IMBALANCE_CHOICES),
            "hidden_units": Rule(min=1),
            "dropout": FRACTION,
            "formats": Rule(choices=FORMATS, nonempty=True),
            "quantization": Rule(choices=QUANTIZATIONS, nonempty=True),
            "max_train_examples": Rule(min=1),
            "strategy": Rule(choices=STRATEGIES),
            "scale_learning_rate": Rule(choices=LR_RULES),
        }

    def stages(self) -> tuple[int | None, int | None, int | None]:
        """(head epochs, fine-tuning epochs, unfrozen blocks); None: the recipe decides.

        Example:
        >>> ImageJobConfig().stages()
        (None, None, None)
        """
        schedule = self.resolved_schedule()
        return schedule.head_epochs, schedule.epochs, schedule.unfreeze_blocks

    def symmetries_setting(self) -> str:
        """`augment` as a symmetry setting: legacy booleans mapped to their old meaning.

        Example:
        >>> ImageJobConfig(augment=True).symmetries_setting()
        'flips'
        """
        if self.augment is True:
            return "flips"
        if self.augment is False or self.augment is None:
            return "none"
        return "flips" if self.resolved_schedule().recipe == "classic" and \
            self.augment == "auto" else str(self.augment)


def _quantization_problem(formats: tuple[str, ...], quantization: tuple[str, ...]) -> str | None:
    if "tflite" not in tuple(formats) and tuple(quantization) != ("float32",):
        return "TFLite flavours need 'tflite' in formats"
    return None


def default_image_size(backbone: str) -> int:
    """The input size a backbone was pretrained at (224 when the registry does not know it).

    Example:
    >>> default_image_size("efficientnet_lite0"), default_image_size("hub:some_preset")
    (224, 224)
    """
    from keras_transfer.backbones import get_spec

    try:
        return int(get_spec(backbone).default_size)
    except Exception:  # a hub preset or a path: resolved when built
        return 224
