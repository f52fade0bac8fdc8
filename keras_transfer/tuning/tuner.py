"""`TransferTuner`: a KerasTuner search whose trials are run by a trainer, within a budget.

The oracle (Bayesian optimisation, Hyperband or random search) proposes hyperparameters; the
trainer turns them into a config and trains it (`trainers.py`). Trial models are not saved:
the best trial is kept as a config that re-runs it (``best_config.json``), next to the results
table (``trials.csv``), a summary (``tuning.json``) and a plot (``search.png``).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import time
from pathlib import Path
from typing import Any

import keras_tuner
from keras_tuner.engine.base_tuner import BaseTuner

from keras_transfer.errors import BadInputError, KerasTransferError
from keras_transfer.tuning.trainers import Trainer, TrialOutcome

ALGORITHMS = ("bayesian", "hyperband", "random")


class _Space(keras_tuner.HyperModel):
    """Declares the trainer's hyperparameters; "building" returns the trial's config."""

    def __init__(self, trainer: Trainer):
        super().__init__(name="keras_transfer_space")
        self.trainer = trainer

    def build(self, hp):
        return self.trainer.declare(hp)


def _oracle(algorithm: str, objective: str, max_trials: int | None, seed: int,
            max_epochs: int) -> keras_tuner.Oracle:
    goal = keras_tuner.Objective(objective, direction="max")
    if algorithm == "bayesian":
        return keras_tuner.oracles.BayesianOptimizationOracle(goal, max_trials=max_trials or 10**6,
                                                              seed=seed)
    if algorithm == "random":
        return keras_tuner.oracles.RandomSearchOracle(goal, max_trials=max_trials or 10**6,
                                                      seed=seed)
    if algorithm == "hyperband":
        oracle = keras_tuner.oracles.HyperbandOracle(goal, max_epochs=max_epochs, factor=3,
                                                     seed=seed)
        oracle.max_trials = max_trials  # the base oracle stops at this many trials
        return oracle
    raise BadInputError(f"algorithm={algorithm!r}: expected one of {ALGORITHMS}.")


class TransferTuner(BaseTuner):
    """A KerasTuner tuner over a `Trainer`, with a budget in trials and/or minutes.

    The minutes budget is checked before each trial starts (a running trial finishes); at
    least one trial runs. With Hyperband, ``tuner/epochs`` is passed to the trainer as the
    trial's epoch budget and every trial trains from scratch (no warm start from an earlier
    bracket), so each trial is re-runnable from its config alone.

    Example:
    >>> from keras_transfer.tuning import ModelTrainer
    >>> trainer = ModelTrainer(lambda hp: {"u": hp.Choice("u", [1, 2])}, None, None, None)
    >>> TransferTuner(trainer, max_trials=2, directory=None).oracle.max_trials
    2
    """

    def __init__(self, trainer: Trainer, *, algorithm: str = "bayesian",
                 max_trials: int | None = 20, max_minutes: float | None = None,
                 max_epochs: int | None = None, seed: int = 1337,
                 directory: str | Path | None = None, project_name: str = "keras_tuner",
                 overwrite: bool = True):
        if not max_trials and not max_minutes:
            raise BadInputError("tune: give a budget: max_trials and/or max_minutes.")
        if max_epochs is None:
            space = getattr(trainer, "space", None)
            max_epochs = getattr(space, "head_epochs", None) or getattr(trainer, "epochs", 10)
        if directory is None:
            import tempfile

            directory = tempfile.mkdtemp(prefix="keras_transfer_tuning_")
        self.trainer = trainer
        self.algorithm = algorithm
        self.max_minutes = max_minutes
        self.outcomes: dict[str, TrialOutcome] = {}
        self.configs: dict[str, Any] = {}
        self._deadline: float | None = None
        self._started = time.perf_counter()
        super().__init__(_oracle(algorithm, trainer.objective, max_trials, seed, max_epochs),
                         _Space(trainer), directory=str(directory), project_name=project_name,
                         overwrite=overwrite)

    def on_search_begin(self):
        self._started = time.perf_counter()
        if self.max_minutes is not None:
            self._deadline = self._started + 60.0 * self.max_minutes

    def pre_create_trial(self):
        if self._deadline is not None and time.perf_counter() >= self._deadline:
            # The base oracle answers STOPPED once it holds max_trials trials.
            self.oracle.max_trials = max(len(self.oracle.trials), 1)

    def run_trial(self, trial, *args, **kwargs):
        hp = trial.hyperparameters
        config = self.trainer.declare(hp)
        self.configs[trial.trial_id] = config
        try:
            outcome = self.trainer.train(config, budget=hp.values.get("tuner/epochs"))
        except (KerasTransferError, ValueError) as error:
            # Bad settings or data fail every trial alike: stop at once, with the real error.
            raise keras_tuner.errors.FatalError(str(error)) from error
        self.outcomes[trial.trial_id] = outcome
        self.configs[trial.trial_id] = outcome.config
        return {self.trainer.objective: outcome.score}

    def save_model(self, trial_id, model, step=0):
        """Trial models are not saved: the best one is re-run from its config."""

    def load_model(self, trial):
        raise NotImplementedError("Trial models are not saved; re-run the best config instead.")

    def result(self) -> "TuneResult":
        """The search so far as a `TuneResult` (rows in run order)."""
        rows = []
        for trial_id in self.oracle.start_order:
            trial = self.oracle.trials[trial_id]
            outcome = self.outcomes.get(trial_id)
            config = self.configs.get(trial_id)
            row = {"trial": trial_id, "status": str(trial.status),
                   "score": round(outcome.score, 4) if outcome else None}
            if config is not None:
                row.update(self.trainer.describe(config))
            row["seconds"] = round(outcome.seconds, 1) if outcome else None
            if outcome is None and trial.message:
                row["error"] = trial.message.strip().splitlines()[-1]
            rows.append(row)
        done = dict(self.outcomes)
        if not done:
            errors = [r.get("error") for r in rows if r.get("error")]
            raise BadInputError("tune: no trial finished" + (f"; last error: {errors[-1]}"
                                                              if errors else "."))
        best_id = max(done, key=lambda k: (done[k].score, -int(k)))
        best = done[best_id]
        stats = self.trainer.store.stats() if hasattr(self.trainer, "store") else {}
        return TuneResult(
            objective=self.trainer.objective, algorithm=self.algorithm, best_trial=best_id,
            best_score=best.score, best_config=self.trainer.config_dict(best.config),
            best_report=best.report, best_history=best.history, rows=rows, feature_store=stats,
            seconds=round(time.perf_counter() - self._started, 1))


@dataclasses.dataclass
class TuneResult:
    """A finished search: the best trial's config (JSON-ready) and report, every trial's row."""

    objective: str
    algorithm: str
    best_trial: str
    best_score: float
    best_config: dict
    best_report: dict
    best_history: dict
    rows: list[dict]
    feature_store: dict
    seconds: float
    best_model: Any = dataclasses.field(default=None, repr=False, compare=False)
    trainer: Any = dataclasses.field(default=None, repr=False, compare=False)

    def table(self) -> str:
        """The trials as an aligned text table, best first."""
        from keras_transfer.backbones.blocks import format_table

        columns = list(dict.fromkeys(k for row in self.rows for k in row if k != "error"))
        ordered = sorted(self.rows, key=lambda r: -(r["score"] if r["score"] is not None else -1))
        cells = [{c: _cell(row.get(c)) for c in columns} for row in ordered]
        return format_table(cells, columns)

    def summary(self) -> dict:
        """Everything but the model and trainer, JSON-ready (``tuning.json``)."""
        skip = ("best_model", "trainer")
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in skip}

    def write(self, output_dir: str | Path) -> dict[str, Path]:
        """Writes ``best_config.json``, ``trials.csv``, ``tuning.json`` and ``search.png``."""
        from keras_transfer.evaluation.plots import plot_search_results
        from keras_transfer.utils.files import atomic_write_bytes

        output_dir = Path(output_dir)
        columns = list(dict.fromkeys(k for row in self.rows for k in row))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns)
        writer.writeheader()
        writer.writerows(self.rows)
        to_json = lambda obj: json.dumps(obj, indent=2, default=str).encode()  # noqa: E731
        return {
            "best_config.json": atomic_write_bytes(output_dir / "best_config.json",
                                                   to_json(self.best_config)),
            "trials.csv": atomic_write_bytes(output_dir / "trials.csv", buffer.getvalue().encode()),
            "tuning.json": atomic_write_bytes(output_dir / "tuning.json", to_json(self.summary())),
            "search.png": plot_search_results(self.rows, output_dir / "search.png",
                                              objective=self.objective),
        }


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e-2 and value else f"{value:.4g}"
    return str(value)


def tune(trainer: Trainer, *, algorithm: str = "bayesian", max_trials: int | None = 20,
         max_minutes: float | None = None, output_dir: str | Path | None = None,
         seed: int = 1337, overwrite: bool = True, verbose: int = 1) -> TuneResult:
    """Searches `trainer`'s hyperparameters and returns (and writes) the result.

    Args:
        algorithm: ``"bayesian"`` (Gaussian-process Bayesian optimisation), ``"hyperband"``
            (epoch budgets by successive halving) or ``"random"``.
        max_trials, max_minutes: the budget; the search stops at whichever comes first.
        output_dir: where ``best_config.json``, ``trials.csv``, ``tuning.json``,
            ``search.png`` (and KerasTuner's state, under ``keras_tuner/``) go.
        overwrite: start afresh; False resumes a search from KerasTuner's state in `output_dir`.

    Example:
    >>> import numpy as np, keras
    >>> from keras_transfer.tuning import ModelTrainer
    >>> def build(config):
    ...     model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, "softmax")])
    ...     model.compile(keras.optimizers.Adam(config["lr"]), "sparse_categorical_crossentropy")
    ...     return model
    >>> data = (np.eye(2, dtype="float32").repeat(4, 0), np.arange(8) // 4)
    >>> trainer = ModelTrainer(lambda hp: {"lr": hp.Choice("lr", [0.01, 0.1])}, build,
    ...                        data, data, epochs=2)
    >>> result = tune(trainer, algorithm="random", max_trials=2, verbose=0)
    >>> len(result.rows), sorted(result.best_config)
    (2, ['epochs', 'lr'])
    """
    tuner = TransferTuner(
        trainer, algorithm=algorithm, max_trials=max_trials, max_minutes=max_minutes, seed=seed,
        directory=Path(output_dir) if output_dir else None, project_name="keras_tuner",
        overwrite=overwrite)
    try:
        tuner.search(verbose=verbose)
    except keras_tuner.errors.FatalError as error:
        raise (error.__cause__ or error) from None
    except RuntimeError as error:  # KerasTuner gives up after consecutive failed trials
        messages = [t.message for t in tuner.oracle.trials.values() if t.message]
        last = messages[-1].strip().splitlines()[-1] if messages else str(error)
        raise KerasTransferError(f"tune: {error} The last trial failed with: {last}") from None
    result = tuner.result()
    if output_dir is not None:
        result.write(output_dir)
    return result


def tune_image_classifier(base=None, space=None, *, early_stopping: int | None = 5,
                          store=None, verbose: int = 1, **kwargs: Any) -> TuneResult:
    """Tunes an image classifier config (`ImageJobConfig`) over a `SearchSpace`.

    Keyword arguments go to `tune`. The result's ``best_config`` is an `ImageJobConfig` dict:
    ``keras-transfer train --config <output_dir>/best_config.json`` re-runs the best trial;
    its ``report["validation"]["accuracy"]`` is the trial's score. `result.trainer.best_model`
    (``result.best_model``) is the best trial's trained model.

    Example (minutes on 2 CPU cores; offline with the `assets` extra):
    >>> from keras_transfer.commands.image_job import ImageJobConfig
    >>> result = tune_image_classifier(ImageJobConfig(dataset="elpv"),  # doctest: +SKIP
    ...                                max_minutes=10, output_dir="tuning/elpv")
    >>> print(result.table())  # doctest: +SKIP
    """
    from keras_transfer.tuning.trainers import ImageTrainer

    trainer = ImageTrainer(base, space, store=store, early_stopping=early_stopping,
                           verbose=0 if verbose < 2 else 1)
    result = tune(trainer, verbose=verbose, **kwargs)
    result.best_model = trainer.best_model
    result.trainer = trainer
    return result
