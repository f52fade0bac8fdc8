"""Hyperparameter search with KerasTuner: learning rate, unfrozen blocks, dropout, head width,
augmentation strength and recipe, within a budget of trials or minutes.

Trials that share a frozen backbone share its features (computed once, `FeatureStore`), so a
search over head settings runs the backbone once. Image classifiers: `ImageTrainer` (the best
trial is saved as a config that ``keras-transfer train --config best_config.json`` re-runs);
text classifiers: `TextTrainer` with `text_classifier_builder`; any model: `ModelTrainer`.

Example:
>>> from keras_transfer.commands.image_job import ImageJobConfig
>>> from keras_transfer.tuning import SearchSpace, tune_image_classifier
>>> result = tune_image_classifier(  # doctest: +SKIP
...     ImageJobConfig(dataset="elpv"), SearchSpace(recipes=("feature_extraction",)),
...     algorithm="bayesian", max_minutes=10, output_dir="tuning/elpv")
"""

from keras_transfer.tuning.space import RECIPES, SearchSpace, recipe_of
from keras_transfer.tuning.store import FeatureStore, weights_digest
from keras_transfer.tuning.text import TEXT_SPACE, TextTrainer, text_classifier_builder
from keras_transfer.tuning.trainers import (
    ImageTrainer,
    ModelTrainer,
    Trainer,
    TrialOutcome,
    staged_trial,
)
from keras_transfer.tuning.tuner import (
    ALGORITHMS,
    TransferTuner,
    TuneResult,
    tune,
    tune_image_classifier,
)

__all__ = [
    "ALGORITHMS", "FeatureStore", "ImageTrainer", "ModelTrainer", "RECIPES", "SearchSpace",
    "TEXT_SPACE", "TextTrainer", "Trainer", "TransferTuner", "TrialOutcome", "TuneResult",
    "recipe_of", "staged_trial", "text_classifier_builder", "tune", "tune_image_classifier",
    "weights_digest",
]
