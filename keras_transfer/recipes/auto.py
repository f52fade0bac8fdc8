"""The default recipe: every choice made from the data and a time budget, and reported.

`auto_fine_tune` runs four named steps on an `ImageDataset` and a classifier:

1. `train_head` — the head to convergence on cached features, the class-imbalance treatment
   chosen on validation;
2. `decide_symmetries` — which flips / quarter turns keep the label (declared by the dataset,
   named by the user, or probed on the validation split with the trained head);
3. `plan_fine_tuning` — blocks to unfreeze and epochs, from the remaining budget and the
   forward throughput measured while caching features;
4. `fine_tune` stage 2 — AdamW, warmup + cosine stretched to the budget by `TimeBudget`, the
   kept symmetries as augmentation, early stopping with the best weights restored.

`AutoResult.decisions` says what was chosen and why, in a form `report.json` stores and the
job's settings can repeat.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from keras_transfer.backbones import blocks_of
from keras_transfer.data.symmetry import RandomSymmetry, group_views, parse_symmetries
from keras_transfer.recipes.budget import FineTunePlan, plan_fine_tuning
from keras_transfer.recipes.fine_tune import RecipeHistory, fine_tune
from keras_transfer.recipes.head_stage import train_head
from keras_transfer.recipes.invariance import probe_symmetries

# Most validation images the symmetry probe looks at (4 forward passes each).
PROBE_EXAMPLES = 1000
# Fine-tuning rates, fastai's `fine_tune` idea: the head at the peak, each block below it at
# `BLOCK_DECAY` × the rate of the block above (the stem of a 9-block backbone at ~1 %), so the
# generic early features move little and the task-specific top moves most.
FINE_TUNE_PEAK = 5e-4
BLOCK_DECAY = 0.6
# In the run folder's decisions: the choices a resumed run must repeat to restore its backup.
PLAN_KEY = "auto_plan"


@dataclasses.dataclass
class AutoResult:
    """The trained model's history, the symmetries it tolerates, and every decision."""

    history: RecipeHistory
    symmetries: tuple[str, ...]
    decisions: dict[str, Any]


def decide_symmetries(
    augment: str | Sequence[str],
    *,
    declared: Sequence[str] | None,
    model: keras.Model | None = None,
    validation: tf.data.Dataset | None = None,
) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The symmetries to augment with, and the decision record.

    ``augment="auto"`` takes the dataset's `declared` symmetries when it has them, else probes
    the validation split with `model` (`probe_symmetries`); with neither it augments nothing
    (never a transform the data has not been shown to tolerate). Any other value names the
    symmetries explicitly (``"none"``, ``"flip"``, ``"dihedral"``, ``"hflip,vflip"``, ...).

    Example:
    >>> decide_symmetries("auto", declared=("hflip", "vflip", "rot90"))[0]
    ('hflip', 'vflip', 'rot90')
    >>> decide_symmetries("flip", declared=None)[1]["source"]
    'setting'
    """
    if augment != "auto":
        kept = parse_symmetries(augment)
        return kept, {"symmetries": list(kept), "source": "setting",
                      "reason": f"augment={augment!r} was given"}
    if declared is not None:
        kept = parse_symmetries(tuple(declared))
        return kept, {"symmetries": list(kept), "source": "dataset",
                      "reason": "the dataset declares these symmetries"}
    if model is None or validation is None:
        return (), {"symmetries": [], "source": "none",
                    "reason": "no validation split to probe: no flip or turn augmentation"}
    images, labels = _take_arrays(validation, PROBE_EXAMPLES)
    probe = probe_symmetries(lambda x: model.predict(x, batch_size=64, verbose=0), images,
                             labels)
    return probe.kept, {"symmetries": list(probe.kept), "source": "probe",
                        "reason": probe.summary(), "probe": probe.as_dict()}


def auto_fine_tune(
    model: keras.Model,
    data: Any,
    *,
    time_budget: float | None,
    augment: str | Sequence[str] = "auto",
    imbalance: str = "auto",
    label_smoothing: float = 0.1,
    weight_decay: float = 0.05,
    learning_rate: float = 1e-3,
    fine_tune_learning_rate: float = FINE_TUNE_PEAK,
    block_decay: float | None = BLOCK_DECAY,
    head_epochs: int | None = None,
    unfreeze_blocks: int | None | str = "auto",
    epochs: int | None = None,
    reserve: float = 0.0,
    seed: int | None = None,
    run_dir: str | Path | None = None,
    after_head: Callable[[keras.Model], Any] | None = None,
    verbose: int | str = "auto",
) -> AutoResult:
    """Trains `model` on `data` (an `ImageDataset`) within `time_budget` seconds.

    Args:
        time_budget: seconds for the whole recipe, from this call; `reserve` of them are kept
            for what follows it (evaluation, export). None: `epochs` must be given.
        augment: ``"auto"`` or explicit symmetries (`decide_symmetries`).
        imbalance: ``"auto"``, ``"none"``, ``"class_weight"`` or ``"focal"`` (`train_head`).
        head_epochs: the most epochs a head candidate trains (None: until it converges).
        unfreeze_blocks, epochs: ``"auto"`` / None let the budget decide; numbers fix them
            (`epochs` given: exactly that many, no budget stop).
        after_head: called with the model once the head is trained (e.g. to evaluate the
            frozen-features baseline).
        fine_tune_learning_rate: AdamW's peak rate when fine-tuning (the head's), reached
            after a warmup.
        block_decay: each backbone block trains at this × the rate of the block above it
            (discriminative rates); None: one rate for all.

    Example (about a minute on 2 CPU cores; tiny model, random weights):
    >>> import numpy as np
    >>> from keras_transfer import build_image_classifier
    >>> from keras_transfer.data import from_arrays
    >>> x = np.random.default_rng(0).uniform(0, 255, (48, 32, 32, 3)).astype("uint8")
    >>> data = from_arrays(x, np.arange(48) % 2, validation_split=0.25, verbose=False)
    >>> model = build_image_classifier("vgg16", 2, weights=None, input_shape=(32, 32, 3))
    >>> result = auto_fine_tune(model, data, time_budget=60, verbose=0)  # doctest: +SKIP
    >>> sorted(result.decisions)  # doctest: +SKIP
    ['augment', 'fine_tune', 'head', 'plan']
    """
    if time_budget is None and epochs is None:
        raise ValueError("auto_fine_tune needs a time_budget (seconds) or a number of epochs.")
    started = time.perf_counter()
    say = (lambda text: None) if verbose == 0 else (lambda text: print(text, flush=True))
    # 1. The head, to convergence on cached features.
    head = train_head(model, data.train, data.validation, imbalance=imbalance,
                      label_smoothing=label_smoothing, learning_rate=learning_rate,
                      weight_decay=weight_decay,
                      **({"max_epochs": head_epochs} if head_epochs else {}), verbose=0)
    say(f"      head: {len(head.history.series('loss'))} epochs, {head.seconds:.0f} s with the "
        f"feature pass; imbalance → {head.reason}")
    if after_head is not None:
        after_head(model)
    # 2 and 3. The symmetries and the plan (those of an interrupted run when resuming).
    symmetries, augment_record, plan = _symmetries_and_plan(
        model, data, head, augment=augment, run_dir=run_dir, say=say,
        remaining=lambda: (float("inf") if time_budget is None else
                           time_budget - (time.perf_counter() - started) - reserve),
        unfreeze_blocks=unfreeze_blocks, epochs=epochs)
    # 4. Fine-tuning, kept only if it beats the frozen-features model on validation.
    train = _augmented(data.train, symmetries, seed)
    head_weights = model.get_weights()  # the frozen-features model, if fine-tuning does worse
    stage2_started = time.perf_counter()
    stage2 = fine_tune(
        model, train, data.validation, head_epochs=0,
        epochs=plan.epochs if epochs is not None else _ceiling(plan.epochs),
        unfreeze_blocks=plan.unfreeze_blocks, fine_tune_learning_rate=fine_tune_learning_rate,
        discriminative=block_decay,
        loss=head.option.loss(label_smoothing), weight_decay=weight_decay,
        warmup_epochs=min(1.0, plan.epochs / 10), time_budget=None if epochs is not None else
        max(plan.budget_s, 1.0), run_dir=run_dir, verbose=verbose)
    spent = {"seconds": round(time.perf_counter() - stage2_started, 1), **(stage2.budget or {})}
    say(f"      fine-tuning: {len(stage2.series('loss'))} epochs in {spent['seconds']:.0f} s "
        f"({_budget_text(plan.budget_s)})")
    kept = _keep_the_better(model, head_weights, head, data.validation)
    say(f"      {kept['reason']}")
    if kept["kept"] == "frozen_features" and symmetries:
        # Its head saw the images as they are, never their flips and turns: averaging over
        # those views (TTA) would feed it what it was not trained on.
        augment_record = {**augment_record, "tta": [], "tta_reason": (
            "none: the kept frozen-features head was trained on unaugmented features")}
        say(f"      test-time augmentation: {augment_record['tta_reason']}")
        symmetries = ()
    plan_record = {**plan.as_dict(), "measured": spent,
                   # What `unfreeze(last=...)` needs to repeat it (None = all of them).
                   "blocks_unfrozen": (len(blocks_of(model)) if plan.unfreeze_blocks is None
                                       else plan.unfreeze_blocks),
                   "peak_learning_rate": fine_tune_learning_rate, "block_decay": block_decay,
                   "epochs_run": len(stage2.series("loss"))}
    decisions = {"head": head.as_dict(), "augment": augment_record, "fine_tune": kept,
                 "plan": plan_record}
    return AutoResult(RecipeHistory(head.history.stages + stage2.stages), symmetries, decisions)


def _symmetries_and_plan(model: keras.Model, data: Any, head, *, augment: str | Sequence[str],
                         run_dir: str | Path | None, say: Callable[[str], None],
                         remaining: Callable[[], float], unfreeze_blocks: int | None | str,
                         epochs: int | None) -> tuple[tuple[str, ...], dict, FineTunePlan]:
    """Steps 2 and 3: the symmetries to augment with and the fine-tuning plan for the budget
    `remaining()` leaves once they are known; recorded in `run_dir`, or read back from it when
    an interrupted run resumes (its choices, not new measurements, so its backup fits)."""
    recorded = _recorded_plan(run_dir)
    if recorded is not None:
        symmetries, augment_record, plan = recorded
        say("      resuming: the interrupted run's augmentation and plan are reused")
    else:
        symmetries, augment_record = decide_symmetries(
            augment, declared=getattr(data, "symmetries", None), model=model,
            validation=data.validation)
        rate = _forward_rate(data, head.feature_seconds)
        plan = _plan(model, data, remaining(), rate, unfreeze_blocks, epochs)
        _record_plan(run_dir, symmetries, augment_record, plan)
    say(f"      augmentation: {_describe(symmetries)} ({augment_record['source']}: "
        f"{augment_record['reason']})")
    say(f"      plan: {plan.epochs} epochs, "
        f"{'all' if plan.unfreeze_blocks is None else plan.unfreeze_blocks} blocks unfrozen, "
        f"~{plan.seconds_per_epoch:.0f} s/epoch, {_budget_text(plan.budget_s)} ({plan.reason})")
    return symmetries, augment_record, plan


def _augmented(train: tf.data.Dataset, symmetries: Sequence[str],
               seed: int | None) -> tf.data.Dataset:
    """The training split with the kept symmetries as random augmentation (none: as it is)."""
    if not symmetries:
        return train
    augmenter = RandomSymmetry(symmetries, seed=seed)
    return train.map(lambda x, y: (augmenter(x, training=True), y),
                     num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _keep_the_better(model: keras.Model, head_weights: list, head, validation) -> dict:
    """Keeps the fine-tuned weights unless the frozen-features model was more accurate on the
    validation split (a short or noisy fine-tuning must never hand back a worse model)."""
    if validation is None:
        return {"kept": "fine_tuned", "reason": "no validation split: the fine-tuned model"}
    from keras_transfer.evaluation.classification import predict_dataset

    chosen = next(c for c in head.candidates if c["name"] == head.option.name)
    probabilities, labels = predict_dataset(model, validation)
    tuned = float(np.mean(np.argmax(probabilities, axis=-1) == np.asarray(labels).reshape(-1)))
    record = {"validation_accuracy": {"frozen_features": chosen["accuracy"],
                                      "fine_tuned": round(tuned, 4)}}
    if tuned >= chosen["accuracy"]:
        return {"kept": "fine_tuned", **record, "reason": (
            f"kept the fine-tuned model: validation accuracy {tuned:.3f} vs {chosen['accuracy']:.3f}"
            " with frozen features")}
    model.set_weights(head_weights)
    return {"kept": "frozen_features", **record, "reason": (
        f"kept the frozen-features model: fine-tuning reached a validation accuracy of "
        f"{tuned:.3f}, below its {chosen['accuracy']:.3f}")}


def _budget_text(seconds: float) -> str:
    return "no time budget" if seconds == float("inf") else f"budget {seconds:.0f} s"


def _describe(symmetries: Sequence[str]) -> str:
    if not symmetries:
        return "no flips or turns"
    return f"{', '.join(symmetries)} ({len(group_views(symmetries))} views)"


def _recorded_plan(run_dir: str | Path | None):
    """(symmetries, augment record, plan) of an interrupted run whose backup is resumable."""
    from keras_transfer.runs import recall

    record = recall(run_dir, PLAN_KEY) if run_dir is not None else None
    try:
        return (tuple(record["symmetries"]), record["augment"],
                FineTunePlan(**record["plan"]))
    except (KeyError, TypeError):
        return None  # no usable record: plan afresh (the backup then starts clean if it differs)


def _record_plan(run_dir: str | Path | None, symmetries: Sequence[str], augment_record: dict,
                 plan: FineTunePlan) -> None:
    from keras_transfer.runs import remember

    if run_dir is not None:
        remember(run_dir, PLAN_KEY, {"symmetries": list(symmetries), "augment": augment_record,
                                     "plan": dataclasses.asdict(plan)})


def _ceiling(planned_epochs: int) -> int:
    # `TimeBudget` may find the machine faster than the estimate: room to use the budget.
    from keras_transfer.recipes.budget import MAX_EPOCHS

    return min(MAX_EPOCHS, max(2 * planned_epochs, planned_epochs + 2))


def _forward_rate(data: Any, feature_seconds: float) -> float:
    sizes = data.sizes
    images = sizes.get("train", 0) + sizes.get("validation", 0)
    return max(images / max(feature_seconds, 1e-3), 1e-3)


def _plan(model: keras.Model, data: Any, budget_s: float, rate: float,
          unfreeze_blocks: int | None | str, epochs: int | None) -> FineTunePlan:
    # Blocks that train when unfrozen (no unused pooler, no BatchNorm-only top); the stem is
    # never the only block worth training.
    blocks = sum(block.effective for block in blocks_of(model)[1:])
    sizes = data.sizes
    plan = plan_fine_tuning(budget_s=budget_s, num_train=sizes.get("train", 0),
                            num_validation=sizes.get("validation", 0), forward_rate=rate,
                            image_size=int(data.image_size[0]), num_blocks=blocks)
    if unfreeze_blocks != "auto":
        plan = dataclasses.replace(plan, unfreeze_blocks=unfreeze_blocks,
                                   reason=f"unfreeze_blocks={unfreeze_blocks} was given")
    if epochs is not None:
        plan = dataclasses.replace(plan, epochs=int(epochs), reason=plan.reason +
                                   f"; epochs={epochs} was given")
    return plan


def _take_arrays(dataset: tf.data.Dataset, limit: int) -> tuple[np.ndarray, np.ndarray]:
    images, labels, count = [], [], 0
    for x, y in dataset:
        images.append(np.asarray(x))
        labels.append(np.asarray(y))
        count += len(images[-1])
        if count >= limit:
            break
    return np.concatenate(images)[:limit], np.concatenate(labels)[:limit]
