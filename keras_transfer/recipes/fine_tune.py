"""Transfer recipes: feature extraction on cached features, and staged fine-tuning."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Mapping, Sequence

import keras
import tensorflow as tf

from keras_transfer import distribute
from keras_transfer.backbones import freeze, unfreeze
from keras_transfer.errors import BadInputError
from keras_transfer.recipes.budget import TimeBudget, WarmupCosine
from keras_transfer.recipes.callbacks import EpochTimer, default_callbacks
from keras_transfer.recipes.discriminative import discriminative_optimizer
from keras_transfer.recipes.features import extract_features, split_at
from keras_transfer.recipes.unfreezing import GradualUnfreezing
from keras_transfer.tasks import task_of


@dataclasses.dataclass
class RecipeHistory:
    """Per-epoch metrics of every stage, in order: ``stages[i] = (name, history_dict)``."""

    stages: list[tuple[str, dict[str, list[float]]]] = dataclasses.field(default_factory=list)
    budget: dict | None = None  # `TimeBudget.record` when stage 2 ran on a time budget

    def add(self, name: str, history: keras.callbacks.History | dict) -> None:
        logs = history.history if hasattr(history, "history") else history
        self.stages.append((name, {k: [float(v) for v in vals] for k, vals in logs.items()}))

    def as_dict(self) -> dict:
        return {name: logs for name, logs in self.stages}

    def series(self, metric: str) -> list[float]:
        """One metric over all stages, concatenated (e.g. for a learning-curve plot)."""
        return [v for _, logs in self.stages for v in logs.get(metric, [])]


def _head_loss(model: keras.Model) -> tuple:
    task = task_of(model)
    if task.head_loss is None:
        raise BadInputError(
            f"feature_extraction: a {task.name} model's head cannot be trained on cached "
            "backbone features; use fine_tune(..., head_on_cached_features=False).")
    return task.head_loss(model)


def feature_extraction(
    model: keras.Model,
    train: tf.data.Dataset,
    validation: tf.data.Dataset | None = None,
    *,
    epochs: int = 30,
    learning_rate: float = 1e-3,
    batch_size: int = 64,
    passes: int = 1,
    cache: str | None = "memory",
    class_weight: dict | None = None,
    loss: keras.losses.Loss | str | None = None,
    weight_decay: float = 0.0,
    patience: int | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: int | str = "auto",
    strategy: str | tf.distribute.Strategy | None = None,
) -> RecipeHistory:
    """Trains only the head, on backbone features computed once (the backbone stays frozen).

    With `validation` and `patience`, `epochs` is a ceiling: training stops once the
    validation loss has not improved for `patience` epochs and the best head is restored (an
    epoch on cached features costs milliseconds, so train to convergence, not to a count).
    `loss` replaces the task's default loss (e.g. label smoothing or focal loss from
    `keras_transfer.recipes.losses`); `weight_decay` > 0 trains with AdamW.

    The model is trained in place and comes back whole (backbone + trained head), ready to
    evaluate and export. `passes` > 1 caches several augmented copies of the training set when
    its pipeline augments (caching otherwise freezes one augmentation per image).

    `strategy` (a `keras_transfer.distribute.resolve_strategy` name or a tf.distribute
    strategy) trains the head data-parallel; `batch_size` is then per replica. Features are
    computed on every worker from the whole `train` dataset.

    Example:
    >>> import numpy as np, tensorflow as tf
    >>> from keras_transfer import build_image_classifier
    >>> model = build_image_classifier("vgg16", num_classes=2, weights=None,
    ...                                input_shape=(32, 32, 3))
    >>> data = tf.data.Dataset.from_tensor_slices(
    ...     (np.random.uniform(0, 255, (8, 32, 32, 3)), np.arange(8) % 2)).batch(4)
    >>> history = feature_extraction(model, data, epochs=2, verbose=0)
    >>> len(history.series("loss"))
    2
    """
    with distribute.training_scope(model, strategy) as net:  # the head's optimizer in scope
        freeze(net)
        features, head = split_at(net)
        progress = verbose != 0  # verbose=0 silences the feature pass as well as `fit`
        x, y = extract_features(features, train, passes=passes, cache=cache,
                                description="train features", progress=progress)
        val = None
        if validation is not None:
            val = extract_features(features, validation, cache=cache,
                                   description="validation features", progress=progress)
        default_loss, metrics = _head_loss(net)
        head.compile(task_of(net).optimizer(head, learning_rate, weight_decay),
                     loss=loss or default_loss, metrics=metrics)
        timer = EpochTimer()
        if val is not None and patience:
            callbacks = [*callbacks, keras.callbacks.EarlyStopping(
                "val_loss", patience=patience, restore_best_weights=True)]
        global_batch = batch_size if strategy is None else distribute.global_batch_size(
            batch_size, distribute.resolve_strategy(strategy))
        history = head.fit(
            x, y, batch_size=global_batch, epochs=epochs, validation_data=val, shuffle=True,
            class_weight=class_weight, callbacks=[timer, *callbacks], verbose=verbose,
        )
        _recompile(net, learning_rate, loss=loss, weight_decay=weight_decay)
    if net is not model:  # trained as a copy inside the scope; `model` has its weights now
        _recompile(model, learning_rate, loss=loss, weight_decay=weight_decay)
    result = RecipeHistory()
    result.add("feature_extraction", history)
    return result


def _recompile(model: keras.Model,
               learning_rate: float | keras.optimizers.schedules.LearningRateSchedule,
               discriminative: float | Mapping[str, float] | None = None, *,
               loss: keras.losses.Loss | str | None = None, weight_decay: float = 0.0) -> None:
    # The task's optimizer, loss, metrics and compile flags (a text model keeps AdamW and
    # jit_compile=False, a segmenter its mean IoU and ignore class, a detector its losses).
    task = task_of(model)
    optimizer = task.optimizer(model, learning_rate, weight_decay or None)
    if discriminative is not None:
        if isinstance(discriminative, (int, float)):
            optimizer = discriminative_optimizer(model, optimizer, decay=float(discriminative))
        else:
            optimizer = discriminative_optimizer(model, optimizer, multipliers=discriminative)
    task.compile(model, optimizer, loss)


def fine_tune(
    model: keras.Model,
    train: tf.data.Dataset,
    validation: tf.data.Dataset | None = None,
    *,
    head_epochs: int = 20,
    epochs: int = 5,
    unfreeze_blocks: int | None = 3,
    learning_rate: float = 1e-3,
    fine_tune_learning_rate: float = 1e-4,
    train_batchnorm: bool = False,
    head_on_cached_features: bool | None = None,
    class_weight: dict | None = None,
    discriminative: float | Mapping[str, float] | None = None,
    gradual_unfreezing: int | None = None,
    loss: keras.losses.Loss | str | None = None,
    weight_decay: float = 0.0,
    warmup_epochs: float = 0.0,
    time_budget: float | None = None,
    run_dir: str | Path | None = None,
    callbacks: Sequence[keras.callbacks.Callback] | None = None,
    verbose: int | str = "auto",
    strategy: str | tf.distribute.Strategy | None = None,
) -> RecipeHistory:
    """Staged fine-tuning: train the head on a frozen backbone, then unfreeze the last blocks.

    Stage 1 trains the head (on cached features by default: seconds, not minutes). Stage 2
    unfreezes the last `unfreeze_blocks` named blocks (None: all) and trains them with the head
    at `fine_tune_learning_rate`, decayed by a cosine schedule; BatchNorm stays in inference
    mode. Starting stage 2 from a trained head keeps large random-head gradients from wrecking
    the pretrained features (the keras.io guide's and fastai's `fine_tune` advice).

    Works on every task (`keras_transfer.tasks`): the model's task gives the optimizer, loss,
    metrics and compile flags of both stages; a task without a head apart from its backbone
    (a causal LM) skips stage 1.

    Args:
        head_on_cached_features: train stage 1 on backbone features computed once; None: where
            the task's head can be split from the backbone (image classifiers), else on images.
        discriminative: stage-2 learning-rate multipliers per block: a decay factor (the last
            block trains at ``decay`` × the rate, the one before at ``decay**2``…, the head at
            the full rate) or a ``{block or "head": multiplier}`` mapping; None: one rate.
        gradual_unfreezing: unfreeze the stage-2 blocks one at a time, one more every this many
            epochs (from the top, up to `unfreeze_blocks`); None: all at once.
        loss: replaces the task's default loss in both stages (e.g.
            `keras_transfer.recipes.losses.SparseCrossentropy` with label smoothing).
        weight_decay: > 0 trains with AdamW (decoupled weight decay) instead of Adam.
        warmup_epochs: stage 2 warms the rate up linearly over this many epochs, then
            decays it by a cosine (`WarmupCosine`).
        time_budget: seconds for stage 2. `epochs` becomes a ceiling: after a few steps the
            measured step time sets how many epochs fit, the cosine is stretched to end there,
            and training stops inside the budget (`TimeBudget`; its record is in
            ``history.budget``).
        callbacks: stage-2 callbacks; None means `default_callbacks(run_dir)` (TensorBoard,
            checkpoint, early stopping, BackupAndRestore, TerminateOnNaN).
        strategy: train data-parallel under this tf.distribute strategy (a name of
            `keras_transfer.distribute.resolve_strategy` or a strategy): the model, optimizer
            and metrics are built in its scope (a model built outside it is trained as a copy
            whose weights come back into `model`), `train`/`validation` get the right
            auto-shard policy, and only the chief writes under `run_dir`. Batch the datasets
            with the global batch (`keras_transfer.distribute.global_batch_size`). None: no
            distribution.

    Example:
    >>> import numpy as np, tensorflow as tf
    >>> from keras_transfer import build_image_classifier
    >>> model = build_image_classifier("vgg16", num_classes=2, weights=None,
    ...                                input_shape=(32, 32, 3))
    >>> data = tf.data.Dataset.from_tensor_slices(
    ...     (np.random.uniform(0, 255, (8, 32, 32, 3)), np.arange(8) % 2)).batch(8)
    >>> history = fine_tune(model, data, head_epochs=1, epochs=1, unfreeze_blocks=1, verbose=0)
    >>> [name for name, _ in history.stages]
    ['head', 'fine_tune']
    """
    result = RecipeHistory()
    if strategy is not None:
        strategy = distribute.resolve_strategy(strategy)
        train = distribute.with_sharding(train, strategy)
        validation = distribute.with_sharding(validation, strategy)
    with distribute.training_scope(model, strategy) as net:
        task = task_of(net)
        if head_on_cached_features is None:  # where the task's head can be split off
            head_on_cached_features = task.head_loss is not None
        if head_epochs and not task.separate_head:
            print(f"[fine_tune] a {task.name} model has no head apart from its backbone: "
                  "no head stage, fine-tuning starts at once.", flush=True)
            head_epochs = 0
        if head_epochs:
            result.add("head", _head_stage(
                net, train, validation, epochs=head_epochs, learning_rate=learning_rate,
                on_cached_features=head_on_cached_features, class_weight=class_weight,
                loss=loss, weight_decay=weight_decay, verbose=verbose, strategy=strategy))
        if epochs:
            history, budget = _fine_tune_stage(
                net, train, validation, epochs=epochs, unfreeze_blocks=unfreeze_blocks,
                learning_rate=fine_tune_learning_rate, train_batchnorm=train_batchnorm,
                class_weight=class_weight, discriminative=discriminative,
                gradual_unfreezing=gradual_unfreezing, loss=loss, weight_decay=weight_decay,
                warmup_epochs=warmup_epochs, time_budget=time_budget, run_dir=run_dir,
                callbacks=callbacks, verbose=verbose, strategy=strategy)
            result.add("fine_tune", history)
            if budget is not None:
                result.budget = budget.record
    if net is not model:  # trained as a copy inside the scope; `model` has its weights now
        _recompile(model, fine_tune_learning_rate if epochs else learning_rate,
                   discriminative if epochs else None, loss=loss, weight_decay=weight_decay)
    return result


def _head_stage(net: keras.Model, train: tf.data.Dataset, validation: tf.data.Dataset | None,
                *, epochs: int, learning_rate: float, on_cached_features: bool,
                class_weight: dict | None, loss, weight_decay: float, verbose: int | str,
                strategy) -> keras.callbacks.History | dict:
    """Stage 1: the head on a frozen backbone, on cached features or on the images."""
    if on_cached_features:
        stage = feature_extraction(
            net, train, validation, epochs=epochs, learning_rate=learning_rate,
            class_weight=class_weight, loss=loss, weight_decay=weight_decay, verbose=verbose,
            strategy=strategy)
        return stage.stages[0][1]
    freeze(net)
    _recompile(net, learning_rate, loss=loss, weight_decay=weight_decay)
    return net.fit(train, validation_data=validation, epochs=epochs, class_weight=class_weight,
                   verbose=verbose)


def _fine_tune_stage(net: keras.Model, train: tf.data.Dataset,
                     validation: tf.data.Dataset | None, *, epochs: int,
                     unfreeze_blocks: int | None, learning_rate: float, train_batchnorm: bool,
                     class_weight: dict | None, discriminative, gradual_unfreezing: int | None,
                     loss, weight_decay: float, warmup_epochs: float, time_budget: float | None,
                     run_dir, callbacks, verbose: int | str, strategy
                     ) -> tuple[keras.callbacks.History, TimeBudget | None]:
    """Stage 2: the last blocks unfrozen and trained with the head under the cosine schedule
    (stretched to `time_budget` when given); returns the history and the `TimeBudget`."""
    unfreeze(net, last=unfreeze_blocks, train_batchnorm=train_batchnorm)
    steps = _steps_per_epoch(train)
    schedule = _stage2_schedule(learning_rate, steps, epochs, warmup_epochs,
                                budgeted=time_budget is not None)
    _recompile(net, schedule, discriminative, loss=loss, weight_decay=weight_decay)
    if callbacks is None:
        callbacks = default_callbacks(
            run_dir, monitor="val_loss" if validation is not None else "loss",
            strategy=strategy, settings={  # what a resumed stage must share
                "epochs": epochs, "unfreeze_blocks": unfreeze_blocks,
                "learning_rate": learning_rate,
                "discriminative": discriminative, "weight_decay": weight_decay})
    extra: list[keras.callbacks.Callback] = [EpochTimer()]
    budget = None
    if time_budget is not None:
        budget = TimeBudget(time_budget, steps_per_epoch=steps or 1,
                            schedule=schedule if isinstance(schedule, WarmupCosine) else None)
        extra.append(budget)
    if gradual_unfreezing:
        extra.append(GradualUnfreezing(every=gradual_unfreezing, start=0,
                                       max_blocks=unfreeze_blocks,
                                       train_batchnorm=train_batchnorm))
    history = net.fit(train, validation_data=validation, epochs=epochs,
                      class_weight=class_weight, callbacks=[*extra, *callbacks], verbose=verbose)
    return history, budget


def _stage2_schedule(peak: float, steps: int | None, epochs: int, warmup_epochs: float,
                     budgeted: bool) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """Cosine decay over the planned steps; with a warmup or a budget, `WarmupCosine` (whose
    length a `TimeBudget` can set once the step time is known)."""
    if not steps:
        return peak
    if warmup_epochs or budgeted:
        return WarmupCosine(peak, warmup_steps=round(warmup_epochs * steps),
                            total_steps=steps * epochs)
    return keras.optimizers.schedules.CosineDecay(peak, steps * epochs)


def _steps_per_epoch(dataset: tf.data.Dataset) -> int | None:
    cardinality = int(dataset.cardinality())
    return cardinality if cardinality > 0 else None
