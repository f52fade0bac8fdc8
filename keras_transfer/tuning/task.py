"""Tuning the job of any task (``keras-transfer tune --task text|qa|lm|segmentation|detection``).

Each trial is the task job itself (`commands.task_jobs.build_model` and `recipes.fine_tune`,
with the task's compile defaults) at the trial's rates, unfrozen blocks and weight decay, scored
on the validation split by the task's first headline metric (`Task.headline`: accuracy, mean
IoU, mAP, exact match, or minus the perplexity). The data are loaded once for all trials. The
best trial's settings are a complete `TaskJobConfig`, so ``keras-transfer train --config
best_config.json`` repeats it.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Mapping

import keras

from keras_transfer.errors import BadInputError
from keras_transfer.tuning.trainers import TrialOutcome

ALL_BLOCKS = -1  # the `unfreeze_blocks` choice that means every block (None in the job config)


@dataclasses.dataclass(frozen=True)
class TaskSpace:
    """What a task search varies: log ranges for the rates, choices for the rest.

    None ranges are derived from the task's default rate (a quarter to four times it).

    Example:
    >>> TaskSpace.from_dict({"unfreeze_blocks": [1, "all"]}).unfreeze_blocks
    (1, -1)
    """

    learning_rate: tuple[float, float] | None = None
    fine_tune_learning_rate: tuple[float, float] | None = None
    unfreeze_blocks: tuple[int, ...] = (2, 4, ALL_BLOCKS)
    weight_decay: tuple[float, ...] = (0.0, 0.01)

    @classmethod
    def from_dict(cls, settings: Mapping[str, Any], source: str = "search space") -> "TaskSpace":
        """A space from a JSON/YAML mapping (``"all"`` for every block); unknown names refused.

        Example:
        >>> TaskSpace.from_dict({"learning_rate": [1e-5, 1e-4]}).learning_rate
        (1e-05, 0.0001)
        """
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise BadInputError(f"{source}: unknown setting(s) {unknown} for a task search; "
                                f"known: {sorted(known)}.")
        values = dict(settings)
        for name in ("learning_rate", "fine_tune_learning_rate"):
            if values.get(name) is not None:
                low, high = (float(v) for v in values[name])
                if not 0 < low <= high:
                    raise BadInputError(f"{source}: {name} must be [low, high] with "
                                        f"0 < low <= high, got {values[name]}.")
                values[name] = (low, high)
        if "unfreeze_blocks" in values:
            values["unfreeze_blocks"] = tuple(ALL_BLOCKS if v in ("all", None) else int(v)
                                              for v in values["unfreeze_blocks"])
        if "weight_decay" in values:
            values["weight_decay"] = tuple(float(v) for v in values["weight_decay"])
        return cls(**values)


def _around(rate: float) -> tuple[float, float]:
    return rate / 4.0, rate * 4.0


class TaskTrainer:
    """Trains one trial of a task job per config (see the module docstring).

    Example (a search over a tiny model; ~1 minute on 2 CPU cores):
    >>> # trainer = TaskTrainer(resolved(TaskJobConfig(task="qa", dataset="synthetic")), data)
    >>> # tune(trainer, max_trials=4).best_config["learning_rate"]
    """

    objective = "val_score"

    def __init__(self, config: Any, data: Any, space: TaskSpace | None = None, *,
                 run_dir: Any = None, verbose: int = 0):
        from keras_transfer.tasks import get_task

        self.config, self.data, self.verbose = config, data, verbose
        self.task = get_task(config.task)
        if not self.task.headline or self.task.evaluate is None:
            raise BadInputError(f"tune: {self.task.name} has no evaluation to score trials by.")
        space = space or TaskSpace()
        rate = config.learning_rate or self.task.default_learning_rate
        head = bool(config.head_epochs) and self.task.separate_head
        self.space = dataclasses.replace(
            space, learning_rate=space.learning_rate or _around(rate),
            fine_tune_learning_rate=(space.fine_tune_learning_rate or _around(
                config.fine_tune_learning_rate or rate)) if head else None)
        self.run_dir = run_dir

    def declare(self, hp) -> dict:
        """The trial's settings, as `TaskJobConfig` fields."""
        space = self.space
        values = {"learning_rate": hp.Float("learning_rate", *space.learning_rate,
                                            sampling="log")}
        if space.fine_tune_learning_rate:
            values["fine_tune_learning_rate"] = hp.Float(
                "fine_tune_learning_rate", *space.fine_tune_learning_rate, sampling="log")
        values["unfreeze_blocks"] = hp.Choice("unfreeze_blocks", list(space.unfreeze_blocks))
        values["weight_decay"] = hp.Choice("weight_decay", list(space.weight_decay))
        return values

    def describe(self, config: dict) -> dict:
        return {key: ("all" if key == "unfreeze_blocks" and value == ALL_BLOCKS else value)
                for key, value in config.items()}

    def job_config(self, config: dict) -> Any:
        """The `TaskJobConfig` a trial trains with."""
        values = dict(config)
        if values.get("unfreeze_blocks") == ALL_BLOCKS:
            values["unfreeze_blocks"] = None
        return dataclasses.replace(self.config, **values)

    def config_dict(self, config: dict) -> dict:
        """The whole job config of a trial: ``train --config`` on it repeats it."""
        return dataclasses.asdict(self.job_config(config))

    def train(self, config: dict, budget: int | None = None) -> TrialOutcome:
        from keras_transfer.commands.task_jobs import build_model
        from keras_transfer.evaluation.tasks import evaluate_split
        from keras_transfer.recipes import fine_tune

        started = time.perf_counter()
        job = self.job_config(config)
        keras.backend.clear_session()
        model = build_model(job, self.data, self.run_dir)  # seeds as the job does
        history = fine_tune(
            model, self.data.split("train"), self.data.split("validation"),
            head_epochs=job.head_epochs, epochs=int(budget or job.epochs),
            unfreeze_blocks=job.unfreeze_blocks, learning_rate=job.learning_rate,
            fine_tune_learning_rate=job.fine_tune_learning_rate,
            weight_decay=job.weight_decay, run_dir=None, verbose=self.verbose)
        report = evaluate_split(model, self.data, "validation", job.task)
        metric = self.task.headline[0]
        score = float(report[metric.key]) * (1.0 if metric.higher_is_better else -1.0)
        return TrialOutcome(score, dict(config), report, history.as_dict(),
                            time.perf_counter() - started)

