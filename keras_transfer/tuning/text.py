"""`TextTrainer`: the image search's recipe and space for text classifiers (or any builder).

A trial's config is a dict; `build_model(config)` makes the classifier from it, e.g. with
`keras_transfer.text.build_text_classifier` (use `text_classifier_builder`). Trials share the
frozen transformer's pooled features through a `FeatureStore`, as image trials do.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import keras
import numpy as np

from keras_transfer.tuning.space import SearchSpace
from keras_transfer.tuning.store import FeatureStore
from keras_transfer.tuning.trainers import TrialOutcome, staged_trial

# BERT-like backbones end with a "pooler" block that "cls" pooling does not use: unfreezing the
# last N blocks trains N - 1 transformer layers there, hence 2 and 3.
TEXT_SPACE = SearchSpace(learning_rate=(1e-4, 1e-2), fine_tune_learning_rate=(1e-5, 1e-4),
                         unfreeze_blocks=(2, 3), dropout=(0.0, 0.1, 0.3), hidden_units=(0, 128),
                         head_epochs=20, fine_tune_epochs=2)


def text_classifier_builder(preset: str, num_classes: int, **kwargs: Any
                            ) -> Callable[[dict], keras.Model]:
    """A ``build_model(config)`` for `TextTrainer` over `keras_transfer.text.build_text_classifier`
    (dropout and head width from the trial; other keyword arguments fixed).

    Example:
    >>> build = text_classifier_builder("minilm_l6", 3, sequence_length=64)
    >>> callable(build)
    True
    """

    def build(config: dict) -> keras.Model:
        from keras_transfer.text import build_text_classifier

        width = int(config.get("hidden_units") or 0)
        return build_text_classifier(preset, num_classes, trainable_blocks=0,
                                     dropout=float(config["dropout"]),
                                     hidden_units=(width,) if width else (), compile=False,
                                     **kwargs)

    return build


class TextTrainer:
    """Tunes a classifier built by ``build_model(config)`` on fixed `train` / `validation`
    datasets with the staged recipe: head on cached features, then (fine-tune recipe) the last
    blocks unfrozen, e.g. the last transformer layers of a keras-hub text backbone.

    `build_model` gets the trial's config (``dropout``, ``hidden_units`` …) and returns a
    classifier with a ``pool`` layer (features are cached there) and a ``predictions`` layer,
    its backbone blocks known to keras-transfer (`build_text_classifier`,
    `build_image_classifier`). The saved best config holds the epochs actually kept;
    ``trainer.train(config)`` re-runs it. `space.augment_strength` is not used.

    Example:
    >>> trainer = TextTrainer(text_classifier_builder("minilm_l6", 2), None, None)
    >>> trainer.objective, trainer.space.fine_tune_epochs
    ('val_accuracy', 2)
    """

    objective = "val_accuracy"

    def __init__(self, build_model: Callable[[dict], keras.Model], train: Any, validation: Any,
                 *, space: SearchSpace | None = None, class_names: Sequence[str] | None = None,
                 seed: int = 1337, store: FeatureStore | None = None,
                 early_stopping: int | None = 5, verbose: int | str = 0):
        self.build_model, self.train_data, self.validation = build_model, train, validation
        self.space = space or TEXT_SPACE
        self.class_names = class_names
        self.seed, self.early_stopping, self.verbose = seed, early_stopping, verbose
        self.store = store or FeatureStore()
        self.best_model: keras.Model | None = None
        self.best_score = -np.inf

    def declare(self, hp) -> dict:
        values = self.space.declare(hp)
        fine_tune = values["recipe"] == "fine_tune"
        return {
            "recipe": values["recipe"],
            "learning_rate": float(values["learning_rate"]),
            "dropout": float(values["dropout"]),
            "hidden_units": int(values["hidden_units"]),
            "unfreeze_blocks": int(values["unfreeze_blocks"]) if fine_tune else 0,
            "fine_tune_learning_rate": (float(values["fine_tune_learning_rate"]) if fine_tune
                                        else None),
            "head_epochs": self.space.head_epochs,
            "epochs": self.space.fine_tune_epochs if fine_tune else 0,
            "seed": self.seed,
        }

    def describe(self, config: dict) -> dict:
        return {k: v for k, v in config.items() if k not in ("seed", "epochs")}

    def config_dict(self, config: dict) -> dict:
        return dict(config)

    def train(self, config: dict, budget: int | None = None) -> TrialOutcome:
        started = time.perf_counter()
        config = {**config, "head_epochs": int(budget or config["head_epochs"])}
        keras.backend.clear_session()
        keras.utils.set_random_seed(int(config.get("seed", self.seed)))
        model = self.build_model(config)
        names = self.class_names or [str(i) for i in range(model.output_shape[-1])]
        report, history, kept = staged_trial(
            model, self.train_data, self.validation, class_names=names, store=self.store,
            data_key=(id(self.train_data), id(self.validation)),
            learning_rate=config["learning_rate"], head_epochs=config["head_epochs"],
            epochs=config["epochs"], unfreeze_blocks=config["unfreeze_blocks"],
            fine_tune_learning_rate=config["fine_tune_learning_rate"] or 1e-4,
            early_stopping=self.early_stopping, verbose=self.verbose)
        score = float(report["accuracy"])
        if score > self.best_score:
            self.best_score, self.best_model = score, model
        return TrialOutcome(score, {**config, "head_epochs": kept}, report, history,
                            time.perf_counter() - started)
