"""Fine-tuning planned from a time budget: what to unfreeze, at what size, for how long.

The plan is made in two steps. Before training, `plan_fine_tuning` turns a measured forward
throughput into a first estimate and picks the image size and the blocks to unfreeze. During
training, `TimeBudget` measures the real step time after a few steps and sets the number of
epochs (and the length of the `WarmupCosine` schedule) so the run ends inside the budget with
the learning rate annealed to zero — whatever the CPU or GPU turns out to be.
"""

from __future__ import annotations

import dataclasses
import math
import time

import keras

# A training step (forward + backward through the unfrozen part + update) costs about this many
# forward passes when the whole network trains: backward is ~2 forward passes.
TRAIN_COST = 3.0
# Fewer epochs than this over the whole network, and fine-tuning only the top blocks wins.
MIN_EPOCHS_ALL_BLOCKS = 5
# A larger input than the default is worth its cost only with this many epochs left at it.
MIN_EPOCHS_LARGER_SIZE = 8
# Never plan more passes over the data than this (validation stops most runs well before).
MAX_EPOCHS = 60


@dataclasses.dataclass
class FineTunePlan:
    """What the budget allows, and why (printed by the job, stored in ``report.json``)."""

    image_size: int
    unfreeze_blocks: int | None  # None: every block
    epochs: int
    seconds_per_epoch: float
    budget_s: float
    reason: str

    def as_dict(self) -> dict:
        return {k: (round(v, 2) if isinstance(v, float) else v)
                for k, v in dataclasses.asdict(self).items()}


def epoch_seconds(num_train: int, num_validation: int, forward_rate: float,
                  trained_fraction: float = 1.0) -> float:
    """Estimated seconds of one epoch from a forward rate in images per second.

    Example:
    >>> round(epoch_seconds(900, 100, forward_rate=100.0), 1)  # 900 × 3 / 100 + 100 / 100
    28.0
    """
    step_cost = 1.0 + (TRAIN_COST - 1.0) * trained_fraction
    return (num_train * step_cost + num_validation) / forward_rate


def plan_fine_tuning(
    *,
    budget_s: float,
    num_train: int,
    num_validation: int,
    forward_rate: float,
    image_size: int,
    num_blocks: int,
    native_size: int | None = None,
    max_epochs: int = MAX_EPOCHS,
) -> FineTunePlan:
    """Chooses image size, unfrozen blocks and epochs that fit `budget_s` seconds.

    `forward_rate` is the measured inference throughput (images/s) at `image_size`; the cost at
    another size scales with its pixel count. Rules, in order: train every block at a larger
    size (up to `native_size`) when that still leaves `MIN_EPOCHS_LARGER_SIZE` epochs; else every
    block at `image_size` when that leaves `MIN_EPOCHS_ALL_BLOCKS`; else the most top blocks
    that leave that many epochs (at least the top one).

    Example:
    >>> plan = plan_fine_tuning(budget_s=600, num_train=1000, num_validation=100,
    ...                         forward_rate=100.0, image_size=224, num_blocks=8)
    >>> plan.unfreeze_blocks, plan.epochs, plan.image_size
    (None, 19, 224)
    >>> plan_fine_tuning(budget_s=120, num_train=1000, num_validation=100, forward_rate=100.0,
    ...                  image_size=224, num_blocks=8).unfreeze_blocks
    5
    """
    def epochs_at(size: int, fraction: float) -> tuple[int, float]:
        rate = forward_rate * (image_size / size) ** 2
        seconds = epoch_seconds(num_train, num_validation, rate, fraction)
        return int(min(max_epochs, budget_s // seconds)), seconds

    if native_size and native_size > image_size:
        # Sizes in multiples of 32 (every backbone's total stride divides them).
        larger = max(image_size, (native_size // 32) * 32)
        for size in range(larger, image_size, -32):
            epochs, seconds = epochs_at(size, 1.0)
            if epochs >= MIN_EPOCHS_LARGER_SIZE:
                return FineTunePlan(size, None, epochs, seconds, budget_s,
                                    f"the budget allows {epochs} epochs of the whole network at "
                                    f"{size}px (images are {native_size}px)")
    epochs, seconds = epochs_at(image_size, 1.0)
    if epochs >= MIN_EPOCHS_ALL_BLOCKS:
        return FineTunePlan(image_size, None, epochs, seconds, budget_s,
                            f"the budget allows {epochs} epochs of the whole network")
    # Only the top blocks: the cost of the backward pass shrinks with the trained share.
    for blocks in range(num_blocks - 1, 0, -1):
        epochs, seconds = epochs_at(image_size, blocks / num_blocks)
        if epochs >= MIN_EPOCHS_ALL_BLOCKS or blocks == 1:
            return FineTunePlan(image_size, blocks, max(1, epochs), seconds, budget_s,
                                f"{max(1, epochs)} epochs fit the budget with the top "
                                f"{blocks} of {num_blocks} blocks; the whole network would "
                                f"get fewer than {MIN_EPOCHS_ALL_BLOCKS}")
    return FineTunePlan(image_size, 1, max(1, epochs), seconds, budget_s, "one block fits")


def measure_forward_rate(model: keras.Model, image_size: int, batch_size: int = 16,
                         repeats: int = 2) -> float:
    """Images per second of `model.predict_on_batch` at `image_size` (after one warm-up call).

    Example:
    >>> inputs = keras.Input((8, 8, 3)); model = keras.Model(inputs, inputs * 2.0)
    >>> measure_forward_rate(model, 8) > 0
    True
    """
    import numpy as np

    batch = np.random.default_rng(0).uniform(0, 255, (batch_size, image_size, image_size, 3))
    batch = batch.astype("float32")
    model.predict_on_batch(batch)  # traces
    start = time.perf_counter()
    for _ in range(repeats):
        model.predict_on_batch(batch)
    return batch_size * repeats / max(time.perf_counter() - start, 1e-9)


@keras.saving.register_keras_serializable(package="keras_transfer")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup to `peak`, then cosine decay to 0 at `total_steps`.

    `total_steps` is a variable, so `TimeBudget` can set it once the step time is measured;
    the compiled training step reads the new value without retracing.

    Example:
    >>> schedule = WarmupCosine(1e-3, warmup_steps=10, total_steps=110)
    >>> [round(float(schedule(s)), 6) for s in (0, 5, 10, 60, 110)]
    [0.0, 0.0005, 0.001, 0.0005, 0.0]
    """

    def __init__(self, peak: float, warmup_steps: int, total_steps: int):
        self.peak = float(peak)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = keras.Variable(float(total_steps), trainable=False, dtype="float32",
                                          name="total_steps")

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        warmup = keras.ops.cast(max(self.warmup_steps, 1), "float32")
        decay_steps = keras.ops.maximum(self.total_steps - self.warmup_steps, 1.0)
        progress = keras.ops.clip((step - self.warmup_steps) / decay_steps, 0.0, 1.0)
        cosine = 0.5 * self.peak * (1.0 + keras.ops.cos(math.pi * progress))
        return keras.ops.where(step < self.warmup_steps, self.peak * step / warmup, cosine)

    def set_total_steps(self, steps: int) -> None:
        self.total_steps.assign(float(steps))

    def get_config(self) -> dict:
        return {"peak": self.peak, "warmup_steps": self.warmup_steps,
                "total_steps": int(keras.ops.convert_to_numpy(self.total_steps))}


class TimeBudget(keras.callbacks.Callback):
    """Ends training inside `budget_s` seconds and sizes the schedule to the epochs that fit.

    After `measure_steps` steps (the first, which traces, is not counted) it estimates an
    epoch's time, picks the epochs that fit the remaining budget (within `min_epochs` and the
    `epochs` given to `fit`) and sets `schedule.total_steps`; at each epoch end it re-checks
    with the measured epoch times (validation included) and stops when the plan is done or the
    next epoch would overrun. `self.record` holds the plan and what was spent.

    Example:
    >>> callback = TimeBudget(60.0, steps_per_epoch=10)
    >>> callback.record["budget_s"]
    60.0
    """

    def __init__(self, budget_s: float, *, steps_per_epoch: int,
                 schedule: WarmupCosine | None = None, measure_steps: int = 4,
                 min_epochs: int = 1):
        super().__init__()
        self.budget_s = float(budget_s)
        self.steps_per_epoch = max(int(steps_per_epoch), 1)
        self.schedule = schedule
        self.measure_steps = max(int(measure_steps), 1)
        self.min_epochs = int(min_epochs)
        self.record: dict = {"budget_s": self.budget_s}

    def on_train_begin(self, logs=None):
        self._start = time.perf_counter()
        self._step = 0
        self._epoch_times: list[float] = []
        self._max_epochs = int(self.params.get("epochs") or MAX_EPOCHS)
        self.planned_epochs = self._max_epochs
        self._first_epoch: int | None = None  # > 0 when fit resumes from a backup

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()
        if self._first_epoch is None:
            self._first_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self._step == 1:
            self._after_first = time.perf_counter()
        elif self._step == 1 + self.measure_steps and not self._epoch_times:
            step_s = (time.perf_counter() - self._after_first) / self.measure_steps
            self.record["measured_step_s"] = round(step_s, 4)
            # Mid-epoch: the epoch under way is counted as planned.
            first = self._first_epoch or 0
            self._set_plan(self.steps_per_epoch * step_s, done=first, at_least=first + 1)

    def on_epoch_end(self, epoch, logs=None):
        self._epoch_times.append(time.perf_counter() - self._epoch_start)
        # The first epoch includes tracing: later epochs are the better estimate when there are.
        typical = min(self._epoch_times[1:] or self._epoch_times)
        self._set_plan(typical, done=epoch + 1)
        if epoch + 1 >= self.planned_epochs:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        self.record.update(epochs_run=len(self._epoch_times), planned_epochs=self.planned_epochs,
                           spent_s=round(time.perf_counter() - self._start, 1))

    def _set_plan(self, epoch_s: float, done: int, at_least: int = 0) -> None:
        remaining = self.budget_s - (time.perf_counter() - self._start)
        fit = done + int(max(remaining, 0.0) // max(epoch_s, 1e-9))
        planned = min(self._max_epochs, max(self.min_epochs, done, at_least, fit))
        if planned != self.planned_epochs and self.schedule is not None:
            self.schedule.set_total_steps(planned * self.steps_per_epoch)
        self.planned_epochs = planned
        self.record.update(planned_epochs=planned, estimated_epoch_s=round(epoch_s, 2))
