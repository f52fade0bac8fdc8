"""Training recipes: feature extraction on cached features and staged fine-tuning."""

from keras_transfer.recipes.callbacks import EpochTimer, default_callbacks
from keras_transfer.recipes.features import extract_features, split_at
from keras_transfer.recipes.fine_tune import RecipeHistory, feature_extraction, fine_tune

__all__ = [
    "EpochTimer", "RecipeHistory", "default_callbacks", "extract_features", "feature_extraction",
    "fine_tune", "split_at",
]
