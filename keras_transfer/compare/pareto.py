"""The accuracy-latency Pareto front of a backbone comparison, and the one recommendation.

The rule (`RULE`): among the backbones whose test accuracy is within `tolerance` points of the
most accurate one, recommend the fastest; equal latencies go to the more accurate. That
backbone is always on the Pareto front: anything at least as accurate and at least as fast
would be within the tolerance too, and so would have been chosen.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

RULE = ("the fastest backbone (lowest {rank_by} TFLite latency per image) whose test accuracy is "
        "within {tolerance} of the most accurate backbone; equal latencies go to the more "
        "accurate")


def pareto_front(points: Mapping[str, tuple[float, float]]) -> list[str]:
    """The names on the Pareto front of ``{name: (accuracy, latency)}``, fastest first.

    A backbone is on the front when no other one is at least as accurate and at least as fast,
    and strictly better in one of the two (identical points are all on the front).

    Example:
    >>> pareto_front({"a": (0.80, 10.0), "b": (0.85, 20.0), "c": (0.78, 15.0),
    ...               "d": (0.85, 30.0), "e": (0.90, 50.0)})
    ['a', 'b', 'e']
    """
    def dominated(name: str) -> bool:
        accuracy, latency = points[name]
        return any(other != name and a >= accuracy and t <= latency
                   and (a > accuracy or t < latency) for other, (a, t) in points.items())

    front = [name for name in points if not dominated(name)]
    return sorted(front, key=lambda name: (points[name][1], -points[name][0]))


@dataclasses.dataclass
class Recommendation:
    """The recommended backbone, the rule that chose it, and why, in words."""

    backbone: str
    reason: str
    rule: str
    front: list[str]
    most_accurate: str
    within_tolerance: list[str]
    tolerance_points: float
    rank_by: str
    standard_error_points: float | None = None  # of the best accuracy, on the test split

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def recommend(points: Mapping[str, tuple[float, float]], *, tolerance: float = 1.0,
              rank_by: str = "float32", num_test: int | None = None) -> Recommendation:
    """Recommends one backbone of ``{name: (test accuracy in [0, 1], latency in ms)}`` by `RULE`.

    `tolerance` is in accuracy points (1.0 = one percentage point). With `num_test`, the number
    of test images, ``standard_error_points`` is the best accuracy's standard error: accuracy
    differences below it are noise.

    Example:
    >>> points = {"lite0": (0.733, 12.0), "lite1": (0.741, 18.0), "lite2": (0.745, 30.0)}
    >>> choice = recommend(points, tolerance=1.0)
    >>> choice.backbone, choice.front
    ('lite1', ['lite0', 'lite1', 'lite2'])
    >>> print(choice.reason)
    lite1: 74.10% test accuracy, 0.4 points below the most accurate (lite2, 74.50%), at 18.0 ms per image instead of 30.0 ms (1.7x faster, float32 TFLite). lite0 is faster still (12.0 ms) but 1.2 points below the best, beyond the 1 point tolerance.
    >>> recommend(points, tolerance=2.0).backbone
    'lite0'
    """
    if not points:
        raise ValueError("recommend: no backbone to recommend (every one failed).")
    order = list(points)
    best = max(order, key=lambda name: (points[name][0], -points[name][1]))
    best_accuracy = points[best][0]
    within = [name for name in order if points[name][0] >= best_accuracy - tolerance / 100 - 1e-12]
    chosen = min(within, key=lambda name: (points[name][1], -points[name][0]))
    standard_error = (100 * math.sqrt(best_accuracy * (1 - best_accuracy) / num_test)
                      if num_test else None)
    return Recommendation(
        backbone=chosen, reason=_reason(points, chosen, best, tolerance, rank_by),
        rule=RULE.format(rank_by=rank_by, tolerance=_points(tolerance)),
        front=pareto_front(points),
        most_accurate=best, within_tolerance=within, tolerance_points=tolerance,
        rank_by=rank_by,
        standard_error_points=None if standard_error is None else round(standard_error, 2))


def _reason(points: Mapping[str, tuple[float, float]], chosen: str, best: str, tolerance: float,
            rank_by: str) -> str:
    accuracy, latency = points[chosen]
    best_accuracy, best_latency = points[best]
    if len(points) == 1:
        first = (f"{chosen}: the only backbone compared that completed ({accuracy:.2%} test "
                 f"accuracy, {latency:.1f} ms per image, {rank_by} TFLite).")
    elif chosen == best:
        first = (f"{chosen}: the most accurate ({accuracy:.2%} test accuracy) and the fastest "
                 f"within {_points(tolerance)} of it ({latency:.1f} ms per image, {rank_by} "
                 "TFLite).")
    else:
        first = (f"{chosen}: {accuracy:.2%} test accuracy, {100 * (best_accuracy - accuracy):.1f} "
                 f"points below the most accurate ({best}, {best_accuracy:.2%}), at "
                 f"{latency:.1f} ms per image instead of {best_latency:.1f} ms "
                 f"({best_latency / max(latency, 1e-9):.1f}x faster, {rank_by} TFLite).")
    faster = [name for name in points if points[name][1] < latency]
    if faster:
        quickest = min(faster, key=lambda name: points[name][1])
        second = (f" {quickest} is faster still ({points[quickest][1]:.1f} ms) but "
                  f"{100 * (best_accuracy - points[quickest][0]):.1f} points below the best, "
                  f"beyond the {_points(tolerance)} tolerance.")
    else:
        second = ""
    return first + second


def _points(value: float) -> str:
    return f"{value:g} point{'' if value == 1 else 's'}"
