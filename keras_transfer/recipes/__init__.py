"""Training recipes: feature extraction on cached features, staged fine-tuning, discriminative
learning rates, gradual unfreezing, the learning-rate range test, mixed precision, the
treatments of class imbalance with their loss, and the data-aware default recipe
(`auto_fine_tune`: converged head, symmetry probe, time-budget plan)."""

from keras_transfer.recipes.auto import AutoResult, auto_fine_tune, decide_symmetries
from keras_transfer.recipes.budget import (
    FineTunePlan,
    TimeBudget,
    WarmupCosine,
    plan_fine_tuning,
)
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
from keras_transfer.recipes.head_stage import HeadStage, train_head
from keras_transfer.recipes.imbalance import (
    ImbalanceOption,
    choose_option,
    class_balance,
    imbalance_options,
)
# Importing the loss registers it, so `.keras` files compiled with it load after
# `import keras_transfer` (which imports this package).
from keras_transfer.recipes.losses import SmoothedSparseCrossentropy
from keras_transfer.recipes.invariance import SymmetryProbe, probe_symmetries
from keras_transfer.recipes.lr_finder import LRFinderResult, find_learning_rate
from keras_transfer.recipes.precision import compute_dtypes, mixed_precision
from keras_transfer.recipes.unfreezing import GradualUnfreezing, ensure_optimizer_covers

__all__ = [
    "AutoResult", "FineTunePlan", "HeadStage", "SymmetryProbe", "TimeBudget", "WarmupCosine",
    "auto_fine_tune", "decide_symmetries", "plan_fine_tuning", "probe_symmetries", "train_head",
    "DiscriminativeOptimizer", "EpochTimer", "GradualUnfreezing", "ImbalanceOption",
    "LRFinderResult", "RecipeHistory", "SmoothedSparseCrossentropy", "block_lr_multipliers",
    "candidate_variables", "choose_option", "class_balance", "compute_dtypes",
    "default_callbacks", "discriminative_optimizer", "ensure_optimizer_covers", "extract_features",
    "feature_extraction", "find_learning_rate", "fine_tune", "imbalance_options",
    "mixed_precision", "split_at", "variable_lr_multipliers",
]
