"""What a trial runs. A trainer turns hyperparameters into a config and a config into a score.

- `ImageTrainer`: `ImageJobConfig` trials trained as the main job trains them (head on cached
  backbone features, then optionally the last blocks unfrozen), the features computed once per
  frozen configuration in a `FeatureStore`.
- `ModelTrainer`: any model: a ``declare(hp) -> config`` function and a
  ``build_model(config) -> compiled keras.Model`` function (e.g. a text classifier builder),
  trained with `fit` and scored on validation data with `keras_transfer.evaluation.classification`.

Both have the same interface (`objective`, `declare`, `train`, `describe`, `config_dict`), which
is all `TransferTuner` uses.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Hashable, Mapping, Protocol, Sequence

import keras
import numpy as np

from keras_transfer.errors import BadInputError
from keras_transfer.tuning.space import SearchSpace, recipe_of
from keras_transfer.tuning.store import FeatureStore, weights_digest


@dataclasses.dataclass
class TrialOutcome:
    """One trained trial: its score, the config that re-runs it (epochs actually trained filled
    in), its validation report (`keras_transfer.evaluation.classification` schema), history and wall time."""

    score: float
    config: Any
    report: dict
    history: dict
    seconds: float


class Trainer(Protocol):
    """The interface `TransferTuner` needs; implement it to tune anything else."""

    objective: str

    def declare(self, hp) -> Any: ...  # declare hyperparameters, return the trial's config

    def train(self, config: Any, budget: int | None = None) -> TrialOutcome: ...

    def describe(self, config: Any) -> dict: ...  # table columns of a config

    def config_dict(self, config: Any) -> dict: ...  # JSON for the saved best config


def _early_stopping(patience: int | None) -> list[keras.callbacks.Callback]:
    if not patience:
        return []
    return [keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience,
                                          restore_best_weights=True)]


def _epochs_kept(callbacks: Sequence[keras.callbacks.Callback], history) -> int:
    """Epochs whose weights the model ends with (the best epoch when early stopping restored)."""
    for callback in callbacks:
        restored = getattr(callback, "best_weights", None) is not None
        if isinstance(callback, keras.callbacks.EarlyStopping) and restored:
            return int(callback.best_epoch) + 1
    return len(history.epoch)


def staged_trial(model: keras.Model, train, validation, *, class_names: Sequence[str],
                 store: FeatureStore, data_key: Hashable, learning_rate: float, head_epochs: int,
                 epochs: int = 0, unfreeze_blocks: int | None = None,
                 fine_tune_learning_rate: float = 1e-4, early_stopping: int | None = 5,
                 verbose: int | str = 0, replay_epoch: bool = False) -> tuple[dict, dict, int]:
    """One trial of the staged recipe on a classifier with ``pool`` and ``predictions`` layers.

    Stage 1 trains the head (`recipes.feature_extraction`'s steps, plus early stopping with the
    best weights restored) on the backbone features of `store` under
    ``(data_key, weights digest)``: computed on the first trial of a frozen configuration,
    reused after. With `epochs`, stage 2 is `recipes.fine_tune` with the last `unfreeze_blocks`
    blocks unfrozen. `replay_epoch`: when the features came from the store, iterate `train`
    once first, as the feature pass would have (a shuffled or augmented pipeline then gives
    stage 2 the same epochs as a run that computed them).

    Returns ``(validation report, history, head epochs kept)``.
    """
    from keras_transfer.backbones import freeze
    from keras_transfer.evaluation.classification import classification_report, evaluate_classifier
    from keras_transfer.recipes import extract_features, fine_tune, split_at
    from keras_transfer.recipes.callbacks import EpochTimer
    from keras_transfer.recipes.fine_tune import RecipeHistory
    from keras_transfer.tasks import task_of

    freeze(model)  # the whole backbone, as recipes.feature_extraction does
    try:
        features, head = split_at(model)
    except ValueError as error:
        raise BadInputError(f"model '{model.name}' has no 'pool' layer to cache backbone "
                            f"features at ({error}); build it with a keras-transfer builder "
                            "and a pooling that makes one.") from error
    key = (data_key, weights_digest(features))
    cached = key in store

    def compute():
        x, y = extract_features(features, train, cache=None, description="train features")
        x_val, y_val = extract_features(features, validation, cache=None,
                                        description="validation features")
        return x, y, x_val, y_val

    x, y, x_val, y_val = store.get(key, compute)
    if epochs and cached and replay_epoch:
        for _ in train:
            pass
    task = task_of(model)
    loss, metrics = task.head_loss(model)
    head.compile(task.optimizer(head, learning_rate), loss=loss, metrics=metrics)
    callbacks = [EpochTimer(), *_early_stopping(early_stopping)]
    fitted = head.fit(x, y, batch_size=64, epochs=head_epochs, validation_data=(x_val, y_val),
                      shuffle=True, callbacks=callbacks, verbose=verbose)
    history = RecipeHistory()
    history.add("feature_extraction", fitted)
    if epochs:
        stage2 = fine_tune(model, train, validation, head_epochs=0, epochs=epochs,
                           unfreeze_blocks=unfreeze_blocks,
                           fine_tune_learning_rate=fine_tune_learning_rate, run_dir=None,
                           verbose=verbose)
        history.stages += stage2.stages
        report = evaluate_classifier(model, validation, class_names)
    else:  # the frozen backbone's validation features are cached: score the head on them
        # An eager call: one batch of small vectors, no predict function to trace.
        outputs = keras.ops.convert_to_numpy(head(x_val, training=False))
        report = classification_report(y_val, outputs, class_names)
    return report, history.as_dict(), _epochs_kept(callbacks, fitted)


class ImageTrainer:
    """Trains `ImageJobConfig` trials exactly as `run_image_classification` trains them.

    Each trial builds the classifier after ``keras.utils.set_random_seed(config.seed)`` (as the
    job does), trains the head on backbone features from the `FeatureStore` (computed once per
    frozen configuration: backbone weights + data settings), and for the fine-tune recipe then
    runs `recipes.fine_tune` on the whole model. Its score is the validation accuracy, which the
    job reports as ``report["validation"]["accuracy"]``. The head stops early on the validation
    loss (best weights restored) and the saved config records the epochs kept, so re-running it
    trains the same head.

    With augmentation each frozen configuration caches one augmented copy of the training set
    (as the job's head stage does); a fine-tune stage sees fresh augmentations every epoch.

    Args:
        base: settings every trial shares (dataset, backbone, weights, image size, seed …).
        space: what the search varies.
        store: a `FeatureStore` to share between searches (default: a new one).
        early_stopping: patience in epochs of the head stage (None: train all `head_epochs`).
        keep_best_model: keep the best trial's trained model in `best_model`.

    Example:
    >>> from keras_transfer.commands.image_job import ImageJobConfig
    >>> trainer = ImageTrainer(ImageJobConfig(dataset="elpv", image_size=96))
    >>> trainer.objective
    'val_accuracy'
    """

    objective = "val_accuracy"

    def __init__(self, base=None, space: SearchSpace | None = None, *,
                 store: FeatureStore | None = None, early_stopping: int | None = 5,
                 keep_best_model: bool = True, verbose: int | str = 0):
        from keras_transfer.commands.image_job import ImageJobConfig

        self.base = base or ImageJobConfig()
        if not self.base.validation_split:
            raise BadInputError("ImageTrainer: tuning scores trials on a validation split; set "
                                "validation_split > 0 in the base config.")
        self.space = space or SearchSpace()
        self.store = store or FeatureStore()
        self.early_stopping = early_stopping
        self.keep_best_model = keep_best_model
        self.verbose = verbose
        self.best_model: keras.Model | None = None
        self.last_model: keras.Model | None = None  # the latest trial's trained model
        self.best_score = -np.inf
        self._data: dict[tuple, tuple] = {}

    # -- the interface
    def declare(self, hp):
        """Declares the space on `hp`; returns the trial's `ImageJobConfig`."""
        return self.space.apply(self.space.declare(hp), self.base)

    def describe(self, config) -> dict:
        fine_tune = recipe_of(config) == "fine_tune"
        return {
            "recipe": recipe_of(config),
            "learning_rate": config.learning_rate,
            "dropout": config.dropout,
            "hidden_units": int(config.hidden_units[0]) if config.hidden_units else 0,
            "augment_strength": config.augment_strength,
            "unfreeze_blocks": config.unfreeze_blocks if fine_tune else 0,
            "fine_tune_learning_rate": config.fine_tune_learning_rate if fine_tune else None,
            "head_epochs": config.head_epochs,
        }

    def config_dict(self, config) -> dict:
        """JSON that ``keras-transfer train --config`` accepts (every `ImageJobConfig` field)."""
        return dataclasses.asdict(config)

    def data(self, config, fresh: bool = False):
        """``(ImageDataset, train split)`` for a config's data settings, loaded once each
        (`fresh`: load anew, as a fine-tune trial needs)."""
        from keras_transfer.commands.image_job import load_image_data

        key = self._data_key(config)
        if fresh or key not in self._data:
            data = load_image_data(config)
            train = data.train
            if config.max_train_examples:  # as run_image_classification subsets it
                train = train.unbatch().take(config.max_train_examples).batch(config.batch_size)
            self._data[key] = (data, train)
        return self._data[key]

    def train(self, config, budget: int | None = None) -> TrialOutcome:
        """Trains one config (`budget`: most head epochs) and scores it on the validation split."""
        from keras_transfer.heads import build_image_classifier

        started = time.perf_counter()
        if budget:
            config = dataclasses.replace(config, head_epochs=int(budget))
        head_epochs, epochs, unfreeze_blocks = config.stages()
        keras.backend.clear_session()  # free the previous trial's graphs
        # Seeded as the job seeds: before loading the data (its shuffle and augmentation seeds)
        # and again before building the model. A fine-tune trial iterates its training split,
        # so it gets a fresh pipeline, as the job does.
        keras.utils.set_random_seed(config.seed)
        data, train = self.data(config, fresh=bool(epochs))
        if data.validation is None:
            raise BadInputError(f"{config.dataset}: no validation split to score trials on.")
        keras.utils.set_random_seed(config.seed)
        model = build_image_classifier(config.backbone, data.num_classes, weights=config.weights,
                                       input_shape=data.input_shape,
                                       hidden_units=tuple(config.hidden_units),
                                       dropout=config.dropout)
        report, history, kept = staged_trial(
            model, train, data.validation, class_names=data.class_names, store=self.store,
            data_key=self._data_key(config), learning_rate=config.learning_rate,
            head_epochs=head_epochs, epochs=epochs, unfreeze_blocks=unfreeze_blocks,
            fine_tune_learning_rate=config.fine_tune_learning_rate,
            early_stopping=self.early_stopping, verbose=self.verbose, replay_epoch=True)
        config = dataclasses.replace(config, head_epochs=kept)
        score = float(report["accuracy"])
        self.last_model = model
        if self.keep_best_model and score > self.best_score:
            self.best_score, self.best_model = score, model
        return TrialOutcome(score, config, report, history, time.perf_counter() - started)

    @staticmethod
    def _data_key(config) -> tuple:
        return (config.dataset, config.image_size, config.batch_size, config.validation_split,
                config.test_split, config.seed, config.augment, config.augment_strength,
                config.max_train_examples)


class ModelTrainer:
    """Tunes any Keras model: ``declare(hp) -> config`` and ``build_model(config) -> model``.

    `build_model` returns a compiled model (any architecture; for classifiers built by
    keras-transfer, `ImageTrainer` / `TextTrainer` add cached features and the staged recipe);
    each trial fits it on `train` with early stopping on the validation loss and scores it on
    `validation` with `keras_transfer.evaluation.classification` (accuracy, macro AUC or −RMSE by task). The
    saved best config is `declare`'s dict plus ``epochs`` (the epochs kept), ready to pass to
    `build_model` again.

    Example:
    >>> import numpy as np, keras
    >>> def declare(hp):
    ...     return {"units": hp.Choice("units", [4, 8])}
    >>> def build_model(config):
    ...     model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(config["units"]),
    ...                               keras.layers.Dense(2, activation="softmax")])
    ...     model.compile("adam", "sparse_categorical_crossentropy")
    ...     return model
    >>> data = (np.zeros((8, 3), "float32"), np.arange(8) % 2)
    >>> trainer = ModelTrainer(declare, build_model, data, data, epochs=1)
    >>> trainer.train({"units": 4}).report["num_examples"]
    8
    """

    def __init__(self, declare: Callable[[Any], dict], build_model: Callable[[dict], keras.Model],
                 train: Any, validation: Any, *, epochs: int = 10,
                 early_stopping: int | None = 3, class_names: Sequence[str] | None = None,
                 seed: int = 1337, fit_kwargs: Mapping[str, Any] | None = None,
                 objective: str = "val_score", verbose: int | str = 0):
        self._declare, self.build_model = declare, build_model
        self.train_data, self.validation = train, validation
        self.epochs, self.early_stopping, self.seed = epochs, early_stopping, seed
        self.class_names = class_names
        self.fit_kwargs = dict(fit_kwargs or {})
        self.objective, self.verbose = objective, verbose

    def declare(self, hp) -> dict:
        return dict(self._declare(hp))

    def describe(self, config: dict) -> dict:
        return dict(config)

    def config_dict(self, config: dict) -> dict:
        return dict(config)

    def train(self, config: dict, budget: int | None = None) -> TrialOutcome:
        from keras_transfer.evaluation.classification import evaluate, primary_metric

        started = time.perf_counter()
        keras.backend.clear_session()
        keras.utils.set_random_seed(self.seed)
        model = self.build_model(config)
        callbacks = _early_stopping(self.early_stopping)
        train, validation = self.train_data, self.validation
        if isinstance(train, tuple):
            kwargs = dict(x=train[0], y=train[1], validation_data=validation)
        else:
            kwargs = dict(x=train, validation_data=validation)
        fitted = model.fit(**kwargs, epochs=int(budget or config.get("epochs") or self.epochs),
                           callbacks=callbacks, verbose=self.verbose, **self.fit_kwargs)
        report = evaluate(model, validation, class_names=self.class_names, num_wrong=0)
        config = {**config, "epochs": _epochs_kept(callbacks, fitted)}
        return TrialOutcome(float(primary_metric(report)[1]), config, report,
                            {k: [float(v) for v in vals] for k, vals in fitted.history.items()},
                            time.perf_counter() - started)
