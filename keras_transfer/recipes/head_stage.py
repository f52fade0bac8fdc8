"""The head stage of the default recipe: a head trained to convergence on cached features, with
the treatment of class imbalance chosen on the validation split.

Every candidate (see `keras_transfer.recipes.imbalance`) trains the same freshly initialised
head on the same cached features until the validation loss stops improving, best weights
restored; `choose_option` then keeps the most accurate one, preferring the better macro-F1 among
those the validation split cannot tell apart. Seconds in all: the backbone runs once.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_transfer.backbones import freeze
from keras_transfer.recipes.features import extract_features, split_at
from keras_transfer.recipes.fine_tune import RecipeHistory, _recompile
from keras_transfer.tasks.image import adam
from keras_transfer.recipes.imbalance import (
    ImbalanceOption,
    choose_option,
    imbalance_options,
    option_scores,
)

# Epochs without a better validation loss before a head stops (an epoch costs milliseconds).
HEAD_PATIENCE = 15
# Without a validation split nothing can stop the head early: this many epochs, then.
EPOCHS_WITHOUT_VALIDATION = 30


@dataclasses.dataclass
class HeadStage:
    """What the head stage did: the chosen treatment, every candidate's scores, and why."""

    history: RecipeHistory
    option: ImbalanceOption
    candidates: list[dict]
    reason: str
    seconds: float
    feature_seconds: float  # the backbone's pass over train + validation: its throughput
    features: keras.Model  # the frozen backbone up to the pooled features, for later probes

    def as_dict(self) -> dict[str, Any]:
        return {"imbalance": self.option.name, "loss": self.option.as_dict(),
                "reason": self.reason, "candidates": self.candidates,
                "epochs": len(self.history.series("loss")), "seconds": round(self.seconds, 1),
                "feature_seconds": round(self.feature_seconds, 1)}


def train_head(
    model: keras.Model,
    train: tf.data.Dataset,
    validation: tf.data.Dataset | None,
    *,
    imbalance: str = "auto",
    label_smoothing: float = 0.1,
    learning_rate: float = 1e-3,
    weight_decay: float = 1e-4,
    max_epochs: int = 300,
    patience: int = HEAD_PATIENCE,
    batch_size: int = 64,
    verbose: int | str = 0,
) -> HeadStage:
    """Trains `model`'s head on cached features; the backbone stays frozen.

    Args:
        imbalance: ``"auto"`` (compare no treatment, balanced class weights and focal loss
            when the classes are imbalanced), or one of ``"none"``, ``"class_weight"``,
            ``"focal"``.
        label_smoothing, weight_decay: the loss's label smoothing and AdamW's decay.
        max_epochs, patience: each candidate stops after `patience` epochs without a lower
            validation loss (best weights restored), at `max_epochs` at the latest.

    Example:
    >>> import numpy as np, tensorflow as tf
    >>> from keras_transfer import build_image_classifier
    >>> model = build_image_classifier("vgg16", num_classes=2, weights=None,
    ...                                input_shape=(32, 32, 3))
    >>> x = np.random.default_rng(0).uniform(0, 255, (16, 32, 32, 3)).astype("float32")
    >>> data = tf.data.Dataset.from_tensor_slices((x, np.arange(16) % 2)).batch(8)
    >>> stage = train_head(model, data, data, max_epochs=3)
    >>> stage.option.name, len(stage.candidates)
    ('none', 1)
    """
    import time

    started = time.perf_counter()
    freeze(model)
    features, head = split_at(model)
    progress = verbose != 0
    x, y = extract_features(features, train, description="train features", progress=progress)
    val = (extract_features(features, validation, description="validation features",
                            progress=progress) if validation is not None else None)
    feature_seconds = time.perf_counter() - started
    num_classes = int(head.output_shape[-1])
    options = imbalance_options(y, num_classes, "none" if val is None and imbalance == "auto"
                                else imbalance)
    initial = head.get_weights()
    trained, candidates = [], []
    for option in options:
        head.set_weights(initial)
        history = _fit_head(head, option.loss(label_smoothing), x, y, val, learning_rate,
                            weight_decay, max_epochs, patience, batch_size, verbose)
        scores = option_scores(val[1], head.predict(val[0], verbose=0)) if val else {}
        candidates.append({"name": option.name, **scores,
                           "epochs": len(history.history["loss"])})
        trained.append((head.get_weights(), history))
    chosen, reason = (choose_option(candidates, len(val[1])) if val else
                      (0, f"{options[0].name}: no validation split to compare treatments on"))
    head.set_weights(trained[chosen][0])
    loss = options[chosen].loss(label_smoothing)
    _recompile(model, learning_rate, loss=loss, weight_decay=weight_decay)
    result = RecipeHistory()
    result.add("head", trained[chosen][1])
    return HeadStage(result, options[chosen], candidates, reason,
                     time.perf_counter() - started, feature_seconds, features)


def _fit_head(head: keras.Model, loss: keras.losses.Loss, x: np.ndarray, y: np.ndarray,
              val: tuple[np.ndarray, np.ndarray] | None, learning_rate: float,
              weight_decay: float, max_epochs: int, patience: int, batch_size: int,
              verbose: int | str) -> keras.callbacks.History:
    head.compile(adam(head, learning_rate, weight_decay), loss=loss, metrics=["accuracy"])
    callbacks = ([keras.callbacks.EarlyStopping("val_loss", patience=patience,
                                                restore_best_weights=True)] if val else [])
    return head.fit(x, y, batch_size=batch_size, validation_data=val, shuffle=True,
                    epochs=max_epochs if val else min(max_epochs, EPOCHS_WITHOUT_VALIDATION),
                    callbacks=callbacks, verbose=verbose)
