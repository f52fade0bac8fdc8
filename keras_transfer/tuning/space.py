"""The image search space as data: ranges and choices, declared to KerasTuner, applied to a config.

A trial's hyperparameter values map onto an `ImageJobConfig`, so the best trial is saved as a
config that ``keras-transfer train --config best_config.json`` re-runs as it was trained.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

from keras_transfer.errors import BadInputError

RECIPES = ("feature_extraction", "fine_tune")


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """What an image search varies. Pairs of floats are log-uniform ranges (equal ends: fixed),
    tuples of other values are choices (one value: fixed).

    Attributes:
        learning_rate: the head's learning rate (every recipe trains the head first).
        fine_tune_learning_rate: stage-2 rate (fine-tune recipe only).
        unfreeze_blocks: how many named blocks stage 2 unfreezes, from the top (fine-tune only).
        dropout: dropout before each Dense layer of the head.
        hidden_units: head width: one hidden Dense+ReLU layer of this size (0: none).
        augment_strength: 0 = flips only; s adds random contrast ±0.3·s, brightness ±0.2·s.
        recipes: ``"feature_extraction"`` (head on cached features) and/or ``"fine_tune"``
            (the same, then the last blocks unfrozen).
        head_epochs: most head epochs per trial (early stopping may stop sooner; the saved
            config records the epochs actually trained). Hyperband's largest budget.
        fine_tune_epochs: stage-2 epochs of a fine-tune trial.

    Example:
    >>> space = SearchSpace(recipes=("feature_extraction",), hidden_units=(0, 64))
    >>> space.apply({"learning_rate": 0.01, "dropout": 0.1, "hidden_units": 64,
    ...              "augment_strength": 0.0, "recipe": "feature_extraction"}).hidden_units
    (64,)
    """

    learning_rate: tuple[float, float] = (1e-4, 1e-2)
    fine_tune_learning_rate: tuple[float, float] = (1e-5, 1e-3)
    unfreeze_blocks: tuple[int, ...] = (1, 2, 3)
    dropout: tuple[float, ...] = (0.0, 0.2, 0.4)
    hidden_units: tuple[int, ...] = (0, 128, 256)
    augment_strength: tuple[float, ...] = (0.0,)
    recipes: tuple[str, ...] = RECIPES
    head_epochs: int = 25
    fine_tune_epochs: int = 4

    def __post_init__(self):
        unknown = [r for r in self.recipes if r not in RECIPES]
        if unknown or not self.recipes:
            raise BadInputError(
                f"SearchSpace.recipes={self.recipes!r}: expected some of {RECIPES}.")
        for name in ("learning_rate", "fine_tune_learning_rate"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise BadInputError(f"SearchSpace.{name}={(low, high)}: expected 0 < low <= high.")
        for name in ("unfreeze_blocks", "dropout", "hidden_units", "augment_strength"):
            if not getattr(self, name):
                raise BadInputError(f"SearchSpace.{name} is empty: give at least one value.")
        if self.head_epochs < 1 or self.fine_tune_epochs < 1:
            raise BadInputError("SearchSpace.head_epochs and fine_tune_epochs must be >= 1.")

    @classmethod
    def from_dict(cls, settings: Mapping[str, Any], source: str = "search space") -> "SearchSpace":
        """A space from JSON-like settings (lists become tuples); unknown keys are an error.

        Example:
        >>> SearchSpace.from_dict({"dropout": [0.1, 0.3]}).dropout
        (0.1, 0.3)
        """
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(settings) - fields)
        if unknown:
            raise BadInputError(f"{source}: unknown setting(s) {unknown}; known: {sorted(fields)}.")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()})

    def declare(self, hp) -> dict[str, Any]:
        """Declares the space on a KerasTuner `HyperParameters`; returns this trial's values
        (fine-tune-only values are None when the recipe is feature extraction)."""
        values = {
            "recipe": _choice(hp, "recipe", self.recipes),
            "learning_rate": _log_range(hp, "learning_rate", self.learning_rate),
            "dropout": _choice(hp, "dropout", self.dropout),
            "hidden_units": _choice(hp, "hidden_units", self.hidden_units),
            "augment_strength": _choice(hp, "augment_strength", self.augment_strength),
            "unfreeze_blocks": None,
            "fine_tune_learning_rate": None,
        }
        if "fine_tune" in self.recipes:
            with hp.conditional_scope("recipe", ["fine_tune"]):
                values["unfreeze_blocks"] = _choice(hp, "unfreeze_blocks", self.unfreeze_blocks)
                values["fine_tune_learning_rate"] = _log_range(
                    hp, "fine_tune_learning_rate", self.fine_tune_learning_rate)
        return values

    def apply(self, values: Mapping[str, Any], base=None, head_epochs: int | None = None):
        """The `ImageJobConfig` of one trial: `base` with the trial's values.

        `head_epochs` overrides the space's (Hyperband's per-trial budget).
        """
        from keras_transfer.commands.image_job import ImageJobConfig

        base = base or ImageJobConfig()
        fine_tune = values["recipe"] == "fine_tune"
        width = int(values["hidden_units"])
        strength = float(values["augment_strength"])
        return dataclasses.replace(
            base,
            # A trial is the staged recipe with fixed stages: "classic" re-runs it as trained.
            schedule="classic",
            learning_rate=float(values["learning_rate"]),
            dropout=float(values["dropout"]),
            hidden_units=(width,) if width else (),
            augment=base.augment or strength > 0,
            augment_strength=strength,
            head_epochs=int(head_epochs or self.head_epochs),
            epochs=self.fine_tune_epochs if fine_tune else 0,
            unfreeze_blocks=int(values["unfreeze_blocks"]) if fine_tune else 0,
            fine_tune_learning_rate=(float(values["fine_tune_learning_rate"]) if fine_tune
                                     else base.fine_tune_learning_rate),
        )


def recipe_of(config) -> str:
    """``"fine_tune"`` when a config trains stage 2, else ``"feature_extraction"``.

    Example:
    >>> from keras_transfer.commands.image_job import ImageJobConfig
    >>> recipe_of(ImageJobConfig(epochs=0))
    'feature_extraction'
    """
    return "fine_tune" if config.stages()[1] else "feature_extraction"


def _choice(hp, name: str, values: Sequence):
    values = list(values)
    return hp.Fixed(name, values[0]) if len(values) == 1 else hp.Choice(name, values)


def _log_range(hp, name: str, bounds: Sequence[float]):
    low, high = (float(v) for v in bounds)
    return hp.Fixed(name, low) if low == high else hp.Float(name, low, high, sampling="log")
