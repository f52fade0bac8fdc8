"""Training recipes: feature extraction on cached features, staged fine-tuning, discriminative
learning rates, gradual unfreezing, the learning-rate range test and mixed precision."""

from keras_transfer.recipes.callbacks import EpochTimer, default_callbacks
from keras_transfer.recipes.discriminative import (
    DiscriminativeOptimizer,
    block_lr_multipliers,
    candidate_variables,
    discriminative_optimizer,
    variable_lr_multipliers,
)
from keras_transfer.recipes.features import extract_features, split_at
from keras_transfer.recipes.fine_tune import RecipeHistory, feature_extraction, fine_tune
from keras_transfer.recipes.lr_finder import LRFinderResult, find_learning_rate
from keras_transfer.recipes.precision import compute_dtypes, mixed_precision
from keras_transfer.recipes.unfreezing import GradualUnfreezing, ensure_optimizer_covers

__all__ = [
    "DiscriminativeOptimizer", "EpochTimer", "GradualUnfreezing", "LRFinderResult",
    "RecipeHistory", "block_lr_multipliers", "candidate_variables", "compute_dtypes",
    "default_callbacks", "discriminative_optimizer", "ensure_optimizer_covers", "extract_features",
    "feature_extraction", "find_learning_rate", "fine_tune", "mixed_precision", "split_at",
    "variable_lr_multipliers",
]
