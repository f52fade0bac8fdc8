"""Class imbalance: measure it, list the treatments worth trying, and pick one on validation.

No training happens here. The recipe fits the head once per `ImbalanceOption` (on cached
features, seconds each), scores each fit on the validation split (`option_scores`) and lets
`choose_option` pick: accuracy first, within its noise, then macro-F1, which is what a
treatment of imbalance is meant to raise (the small classes' recall).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from keras_transfer.errors import BadInputError
from keras_transfer.recipes.losses import SmoothedSparseCrossentropy
from keras_transfer.evaluation.metrics import classification_report

# Largest / smallest class count from which the labels count as imbalanced. At 3:1 the
# minority of two classes is 25 %, the edge of what is usually called mild imbalance: from there
# on a plain cross-entropy head can buy accuracy by neglecting the small class. Below it the
# treatments rarely change anything, and comparing them would cost extra fits for nothing.
IMBALANCE_RATIO_THRESHOLD = 3.0
# Lin et al. (2017) found γ = 2 best; the focal loss is only a candidate, so no tuning here.
FOCAL_GAMMA = 2.0
IMBALANCE_MODES = ("auto", "none", "class_weight", "focal")


def _labels(labels: Sequence[int], num_classes: int) -> np.ndarray:
    labels = np.asarray(labels).reshape(-1)
    if labels.size and not np.all(np.equal(np.mod(labels, 1), 0)):
        raise BadInputError("labels must be integer class ids; got fractional values.")
    labels = labels.astype(int)
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        raise BadInputError(f"labels must be class ids in [0, {num_classes}); got values "
                            f"{sorted(set(labels[bad].tolist()))[:5]}.")
    return labels


def class_balance(labels: Sequence[int], num_classes: int) -> dict:
    """Counts and frequencies per class, the imbalance ratio (largest over smallest non-empty
    class; 1.0 without labels) and whether it reaches `IMBALANCE_RATIO_THRESHOLD`.

    Example:
    >>> balance = class_balance([0, 0, 0, 0, 1, 2, 2], num_classes=3)
    >>> balance["counts"], balance["imbalance_ratio"], balance["is_imbalanced"]
    ([4, 1, 2], 4.0, True)
    """
    labels = _labels(labels, num_classes)
    counts = np.bincount(labels, minlength=num_classes)
    present = counts[counts > 0]
    ratio = float(present.max() / present.min()) if present.size else 1.0
    return dict(
        num_examples=int(labels.size),
        counts=counts.tolist(),
        frequencies=(counts / max(labels.size, 1)).tolist(),
        imbalance_ratio=ratio,
        is_imbalanced=ratio >= IMBALANCE_RATIO_THRESHOLD,
    )


def balanced_sqrt_weights(labels: Sequence[int], num_classes: int) -> tuple[float, ...]:
    """Class weights ∝ 1/sqrt(class frequency), scaled so their mean over the examples is 1.

    The square root because full inverse-frequency weights overshoot: a class of 4 % would
    weigh 24 times a class of 96 % and the head would over-predict it, trading much accuracy
    for little recall; 1/sqrt gives it about 5 times. Mean 1 over the examples keeps the loss
    (and so the effective learning rate) on the unweighted scale. A class without examples gets
    the largest weight, as at least as rare as the rarest one.

    Example:
    >>> [round(w, 3) for w in balanced_sqrt_weights([0, 0, 0, 1], num_classes=2)]
    [0.845, 1.464]
    """
    labels = _labels(labels, num_classes)
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    if not labels.size:
        return (1.0,) * num_classes
    present = counts > 0
    weights = np.zeros(num_classes)
    weights[present] = 1.0 / np.sqrt(counts[present] / labels.size)
    weights /= (counts * weights).sum() / labels.size
    weights[~present] = weights[present].max()
    return tuple(float(w) for w in weights)


@dataclass(frozen=True)
class ImbalanceOption:
    """One treatment of class imbalance, as a loss: class weights, a focal γ, or neither.

    Example:
    >>> option = ImbalanceOption("focal", class_weights=None, focal_gamma=2.0)
    >>> option.loss(label_smoothing=0.1).get_config()["focal_gamma"]
    2.0
    >>> option.as_dict()
    {'name': 'focal', 'class_weights': None, 'focal_gamma': 2.0}
    """

    name: str
    class_weights: tuple[float, ...] | None
    focal_gamma: float

    def loss(self, label_smoothing: float = 0.0, **kwargs) -> SmoothedSparseCrossentropy:
        """The loss for this option; `kwargs` (name, reduction, ...) go to the loss.

        Example:
        >>> ImbalanceOption("none", None, 0.0).loss().get_config()["class_weights"] is None
        True
        """
        return SmoothedSparseCrossentropy(label_smoothing=label_smoothing,
                                          focal_gamma=self.focal_gamma,
                                          class_weights=self.class_weights, **kwargs)

    def as_dict(self) -> dict:
        """JSON-ready fields (class weights as a list).

        Example:
        >>> ImbalanceOption("class_weight", (0.5, 2.0), 0.0).as_dict()["class_weights"]
        [0.5, 2.0]
        """
        weights = None if self.class_weights is None else list(self.class_weights)
        return dict(name=self.name, class_weights=weights, focal_gamma=self.focal_gamma)


def imbalance_options(
    labels: Sequence[int], num_classes: int, mode: str = "auto"
) -> list[ImbalanceOption]:
    """The treatments to try for the `imbalance` setting `mode`, "none" always first.

    ``"none"``, ``"class_weight"`` (`balanced_sqrt_weights` of `labels`) and ``"focal"``
    (γ = `FOCAL_GAMMA`) give that one option; ``"auto"`` gives just "none" when the labels are
    not imbalanced (`class_balance`), otherwise all three, for `choose_option` to compare.

    Example:
    >>> labels = [0] * 9 + [1]
    >>> [option.name for option in imbalance_options(labels, 2)]
    ['none', 'class_weight', 'focal']
    >>> [option.name for option in imbalance_options([0, 1, 1], 2)]
    ['none']
    """
    if mode not in IMBALANCE_MODES:
        raise BadInputError(f"imbalance={mode!r} is not a known setting; use one of "
                            f"{', '.join(repr(m) for m in IMBALANCE_MODES)}.")
    none = ImbalanceOption("none", None, 0.0)
    if mode == "none":
        return [none]
    if mode == "auto" and not class_balance(labels, num_classes)["is_imbalanced"]:
        return [none]
    weighted = ImbalanceOption("class_weight", balanced_sqrt_weights(labels, num_classes), 0.0)
    focal = ImbalanceOption("focal", None, FOCAL_GAMMA)
    return {"class_weight": [weighted], "focal": [focal]}.get(mode, [none, weighted, focal])


def option_scores(labels: Sequence[int], probabilities: np.ndarray) -> dict:
    """Validation scores of one option's predictions, as `choose_option` reads them: accuracy,
    macro-F1 and the recall per class (from `report_metrics.classification_report`, so classes
    absent from `labels` are left out of the macro average).

    Example:
    >>> option_scores([0, 0, 1], np.array([[.9, .1], [.8, .2], [.7, .3]]))
    {'accuracy': 0.6667, 'macro_f1': 0.4, 'recall': [1.0, 0.0]}
    """
    probabilities = np.asarray(probabilities)
    names = [str(i) for i in range(probabilities.shape[-1])]
    report = classification_report(labels, probabilities, names, top_k=(), num_wrong=0)
    return dict(accuracy=report["accuracy"], macro_f1=report["macro_avg"]["f1"],
                recall=[report["per_class"][name]["recall"] for name in names])


def choose_option(
    scores: Sequence[Mapping[str, float]],
    num_examples: int,
    names: Sequence[str] | None = None,
) -> tuple[int, str]:
    """Picks an option from its validation scores; returns its index and the reason, one sentence.

    The options whose accuracy is within one binomial standard error ``sqrt(p (1 - p) / n)`` of
    the best accuracy ``p`` (``n = num_examples``) are as accurate as the validation split can
    tell; among them the highest macro-F1 wins, and a tie keeps the earlier option (so "none"
    unless a treatment does better). Names come from `names`, else each score's ``"name"``,
    else "option i".

    Example:
    >>> scores = [dict(accuracy=0.79, macro_f1=0.52), dict(accuracy=0.78, macro_f1=0.61)]
    >>> choose_option(scores, num_examples=200, names=["none", "class_weight"])
    (1, 'class_weight: validation macro-F1 0.610 vs 0.520 for none at accuracy 0.780 vs 0.790 (within one standard error 0.029)')
    """
    if not scores:
        raise ValueError("choose_option needs the scores of at least one option.")
    if num_examples <= 0:
        raise ValueError(f"num_examples={num_examples!r}: expected the validation split's size.")
    if names is None:
        names = [score.get("name", f"option {i}") for i, score in enumerate(scores)]
    accuracy = [float(score["accuracy"]) for score in scores]
    f1 = [float(score["macro_f1"]) for score in scores]
    best = max(accuracy)
    error = math.sqrt(best * (1.0 - best) / num_examples)
    # The tolerance absorbs rounding of accuracies (reports keep 4 decimals).
    as_accurate = [i for i, a in enumerate(accuracy) if a >= best - error - 1e-9]
    chosen = max(as_accurate, key=lambda i: (f1[i], -i))
    if len(scores) == 1:
        return chosen, (f"{names[0]}: the only option (validation accuracy {accuracy[0]:.3f}, "
                        f"macro-F1 {f1[0]:.3f})")
    # Against the baseline ("none", first), or for the baseline against its strongest rival.
    others = [i for i in range(len(scores)) if i != chosen]
    rival = 0 if chosen != 0 else max(others, key=lambda i: (f1[i], -i))
    versus = (f"macro-F1 {f1[chosen]:.3f} vs {f1[rival]:.3f} for {names[rival]} "
              f"at accuracy {accuracy[chosen]:.3f} vs {accuracy[rival]:.3f}")
    if rival not in as_accurate:
        reason = (f"validation {versus}, {names[rival]} being more than one standard error "
                  f"({error:.3f}) below the best accuracy")
    elif f1[rival] == f1[chosen]:
        reason = (f"validation {versus} (within one standard error {error:.3f}; "
                  f"a tie keeps the earlier option)")
    else:
        reason = f"validation {versus} (within one standard error {error:.3f})"
    return chosen, f"{names[chosen]}: {reason}"
