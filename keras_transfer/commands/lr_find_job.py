"""The learning-rate range test as a job: what `keras-transfer lr-find` runs.

Loads the same training split `keras-transfer train` would (a built-in dataset or a folder of
class sub-folders), builds the classifier with the head alone trainable (or the last N blocks
too), sweeps the learning rate with `recipes.find_learning_rate`, and writes ``lr_find.png``,
``lr_find.json`` and ``lr_find_config.json`` (to repeat the run: ``--config`` on that file).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

import keras

PLOT_FILE, RESULT_FILE, CONFIG_FILE = "lr_find.png", "lr_find.json", "lr_find_config.json"


@dataclasses.dataclass
class LRFindConfig:
    """Settings of one learning-rate range test (saved beside its outputs).

    `unfreeze_blocks` 0 sweeps the rate for training the head on the frozen backbone (stage 1,
    ``train --learning-rate``); N > 0 also lets the last N blocks train (stage 2,
    ``train --fine-tune-learning-rate``).

    Example:
    >>> LRFindConfig(dataset="elpv").resolved_output_dir().as_posix()
    'runs/lr_find/elpv_efficientnet_lite0'
    """

    dataset: str = "elpv"
    backbone: str = "efficientnet_lite0"
    weights: str | None = "imagenet"
    output_dir: str | None = None
    image_size: int = 224
    batch_size: int = 32
    unfreeze_blocks: int = 0
    min_lr: float = 1e-7
    max_lr: float = 1.0
    steps: int = 100
    validation_split: float = 0.1
    augment: bool = True
    seed: int = 1337
    max_train_examples: int | None = None

    def resolved_output_dir(self) -> Path:
        if self.output_dir:
            return Path(self.output_dir)
        name = Path(self.dataset).name if Path(self.dataset).is_dir() else self.dataset
        return Path("runs") / "lr_find" / f"{name}_{self.backbone.replace('/', '_')}"

    def check(self) -> None:
        """Raises one `BadInputError` (a `ValueError`) naming every bad setting, before any work
        starts: types from the field hints, ranges and choices from `setting_rules`.

        Example:
        >>> LRFindConfig(min_lr=1.0, max_lr=0.1).check()
        Traceback (most recent call last):
        ...
        keras_transfer.errors.BadInputError: min_lr=1.0, max_lr=0.1: expected 0 < min_lr < max_lr.
        """
        from keras_transfer import settings

        below = settings.Together(("min_lr", "max_lr"), lambda low, high: None if low < high
                                  else "expected 0 < min_lr < max_lr")
        settings.check_settings(self, self.setting_rules(), [below, settings.FITS_BACKBONE])

    @staticmethod
    def setting_rules() -> dict:
        """What each setting accepts beyond its type hint (`keras_transfer.settings.Rule`).

        Example:
        >>> LRFindConfig.setting_rules()["steps"].min
        2
        """
        from keras_transfer.settings import FRACTION, SEED, Rule, backbone_problem

        return {
            "backbone": Rule(check=backbone_problem),
            "image_size": Rule(min=1),  # and the backbone's smallest input (FITS_BACKBONE)
            "batch_size": Rule(min=1),
            "unfreeze_blocks": Rule(min=0),
            "min_lr": Rule(above=0),
            "max_lr": Rule(above=0),
            "steps": Rule(min=2),  # a slope needs two losses
            "validation_split": FRACTION,
            "seed": SEED,
            "max_train_examples": Rule(min=1),
        }


class _Ticking:
    """Re-iterable wrapper that advances a progress bar on every batch handed out."""

    def __init__(self, dataset: Iterable, bar: keras.utils.Progbar):
        self.dataset, self.bar = dataset, bar

    def __iter__(self) -> Iterator:
        for batch in self.dataset:
            self.bar.add(1)
            yield batch


def run_lr_find(config: LRFindConfig | None = None, **overrides: Any) -> dict:
    """Runs the range test and returns what it writes to ``lr_find.json``.

    Example (a few seconds on a folder of small images):
    >>> result = run_lr_find(dataset="photos/", backbone="mobilenet_v2",  # doctest: +SKIP
    ...                      weights=None, image_size=64, steps=30)
    >>> result["suggestion"]  # doctest: +SKIP
    """
    from keras_transfer.recipes import find_learning_rate

    config = dataclasses.replace(config or LRFindConfig(), **overrides)
    config.check()
    keras.utils.set_random_seed(config.seed)
    started = time.perf_counter()

    print(f"[1/3] Loading {config.dataset} …", flush=True)
    data, train = _training_split(config)
    model = _build(config, data)
    print(f"[3/3] Sweeping the learning rate from {config.min_lr:.1e} to {config.max_lr:.1e} "
          f"over {config.steps} mini-batches …", flush=True)
    bar = keras.utils.Progbar(config.steps, unit_name="step")
    result = find_learning_rate(model, _Ticking(train, bar), min_lr=config.min_lr,
                                max_lr=config.max_lr, steps=config.steps)
    if result.diverged:
        bar.update(config.steps, finalize=True)
        print(f"      stopped after {len(result.learning_rates)} steps: the loss diverged.")
    return _write_outputs(config, result, data.class_names, started)


def _training_split(config: LRFindConfig):
    """The dataset and its training split, as `train` would read them."""
    from keras_transfer.commands.image_job import ImageJobConfig, load_image_data

    # The same split `train` uses (same seed and fractions), so the sweep never sees test images.
    data = load_image_data(ImageJobConfig(
        dataset=config.dataset, image_size=config.image_size, batch_size=config.batch_size,
        validation_split=config.validation_split, augment=config.augment, seed=config.seed))
    train = data.train
    if config.max_train_examples:
        train = train.unbatch().take(config.max_train_examples).batch(config.batch_size)
    return data, train


def _build(config: LRFindConfig, data) -> keras.Model:
    """The classifier with the head (and the last `unfreeze_blocks` blocks) trainable."""
    from keras_transfer.heads import build_image_classifier

    what = (f"the head and the last {config.unfreeze_blocks} blocks" if config.unfreeze_blocks
            else "the head (backbone frozen)")
    print(f"[2/3] Building {config.backbone} (weights={config.weights}); {what} will train …",
          flush=True)
    return build_image_classifier(
        config.backbone, data.num_classes, weights=config.weights, input_shape=data.input_shape,
        trainable_blocks=config.unfreeze_blocks, learning_rate=config.min_lr)


def _write_outputs(config: LRFindConfig, result, class_names: list[str], started: float) -> dict:
    """Writes the JSON files and the plot, says what to use; returns ``lr_find.json``'s content."""
    from keras_transfer.utils.files import atomic_write_bytes

    output_dir = config.resolved_output_dir()
    flag = "--fine-tune-learning-rate" if config.unfreeze_blocks else "--learning-rate"
    summary = {
        **dataclasses.asdict(result),
        "use_with": f"keras-transfer train {flag} {result.suggestion:.3g}",
        "class_names": class_names,
        "settings": dataclasses.asdict(config),
        "seconds": round(time.perf_counter() - started, 2),
    }
    write_json = lambda name, obj: atomic_write_bytes(  # noqa: E731
        output_dir / name, json.dumps(obj, indent=2, default=str).encode())
    write_json(RESULT_FILE, summary)
    write_json(CONFIG_FILE, dataclasses.asdict(config))
    result.plot(output_dir / PLOT_FILE)
    print(f"Suggested learning rate: {result.suggestion:.3g} (steepest descent of the loss; "
          f"its minimum is at {result.min_loss_learning_rate:.3g}). Use it with: "
          f"{summary['use_with']}", flush=True)
    print(f"Wrote {output_dir / PLOT_FILE}, {output_dir / RESULT_FILE}, "
          f"{output_dir / CONFIG_FILE}", flush=True)
    return summary
