"""Parity of an exported detector with Keras: raw outputs, decoded detections, the graph's NMS.

Two runtimes' detections are compared detection by detection (`compare_detections`), with
margins far above the float noise between them; `parity_record` is one exported file's whole
record against the Keras model, as ``metadata.json`` stores it.
"""

from __future__ import annotations

from typing import Any, Sequence

import keras
import numpy as np

from keras_transfer.detection.decode import box_decoder, decode_detections, detections_from_outputs
from keras_transfer.errors import BadInputError


def parity_record(model: keras.Model, outputs: dict[str, np.ndarray], images: np.ndarray, *,
                  tolerance: float, score_threshold: float = 0.05,
                  nms: dict[str, Any] | None = None) -> dict[str, Any]:
    """One file's record against Keras: raw outputs, their host decoding and, when the file
    has them (and `nms` gives the graph's thresholds), the graph's detections; ``"problems"``
    lists what differs (absent when nothing).

    Example:
    >>> from keras_transfer.detection import build_detector
    >>> detector = build_detector("ssd", "mobilenet_v2", num_classes=2, weights=None,
    ...                           input_shape=(64, 64, 3))
    >>> images = np.zeros((1, 64, 64, 3), np.float32)
    >>> outputs = {k: np.asarray(v) + 1e-6 for k, v in detector(images).items()}
    >>> record = parity_record(detector, outputs, images, tolerance=1e-3)
    >>> record["parity"], record["detections_equal"]
    (True, True)
    """
    reference = {k: keras.ops.convert_to_numpy(v) for k, v in model(images, training=False).items()}
    missing = sorted(set(reference) - set(outputs))
    if missing:
        raise BadInputError(f"exported outputs {sorted(outputs)} lack Keras's {missing}.")
    diffs = {k: float(np.abs(outputs[k] - reference[k]).max()) for k in reference}
    scale = {k: float(np.abs(reference[k]).max()) or 1.0 for k in reference}
    allowed = {k: tolerance * max(1.0, scale[k]) for k in reference}
    problems = [f"raw output {k!r} differs by {d:.3g} (tolerance {allowed[k]:.3g})"
                for k, d in diffs.items() if not d <= allowed[k]]
    decoder = box_decoder(model)
    theirs = decode_detections(decoder, reference, score_threshold=score_threshold)
    ours = decode_detections(decoder, {k: outputs[k] for k in reference},
                             score_threshold=score_threshold)
    detection_problems = compare_detections(theirs, ours, score_threshold=score_threshold)
    result = {"images": len(images), "max_abs_diff": diffs,
              "detections_equal": not detection_problems}
    problems += detection_problems
    if nms is not None and "num_detections" in outputs:
        expected = decode_detections(decoder, reference, **nms)
        graph_problems = compare_detections(
            expected, detections_from_outputs(outputs), score_threshold=nms["score_threshold"],
            max_detections=nms["max_detections"])
        result["graph_detections_equal"] = not graph_problems
        problems += [f"graph NMS: {p}" for p in graph_problems]
    result["parity"] = not problems
    if problems:
        result["problems"] = problems
    return result


def compare_detections(
    reference: Sequence[dict[str, np.ndarray]],
    candidate: Sequence[dict[str, np.ndarray]],
    *,
    score_threshold: float = 0.05,
    max_detections: int = 100,
    score_margin: float = 1e-3,
    box_tolerance: float = 0.5,
) -> list[str]:
    """What differs between two runtimes' detections of the same images (empty: equal).

    Each detection must have one of the same class in the other list with every box coordinate
    within `box_tolerance` pixels and the score within `score_margin`. A detection without a
    counterpart is a difference only if its score is `score_margin` above where the other list
    stops (`score_threshold`, or its lowest score when it holds `max_detections`): float noise
    moves scores that sit right at the cut across it, and that is not a difference. The default
    margins are far above the noise of two float32 runtimes (scores differ by ~1e-6) and far
    below a real difference; comparing lists position by position, as before, failed on
    detections swapping places or crossing the threshold by 1e-6.

    Example:
    >>> a = [{"boxes": np.array([[0, 0, 10, 10], [5, 5, 9, 9]], np.float32),
    ...       "scores": np.array([0.9, 0.0505]), "classes": np.array([1, 0])}]
    >>> b = [{"boxes": np.array([[0, 0, 10.001, 10]], np.float32),
    ...       "scores": np.array([0.9]), "classes": np.array([1])}]
    >>> compare_detections(a, b)   # the 0.0505 one sits at the 0.05 threshold: noise
    []
    >>> compare_detections(a, [{**b[0], "classes": np.array([0])}])
    ['image 0: 2 Keras vs 1 TFLite detections, 1 only in Keras (best score 0.90), 1 only in ...']
    """
    margins = dict(score_threshold=score_threshold, max_detections=max_detections,
                   score_margin=score_margin, box_tolerance=box_tolerance)
    problems = [_image_difference(ref, cand, **margins)
                for ref, cand in zip(reference, candidate)]
    return [f"image {index}: {problem}" for index, problem in enumerate(problems) if problem]


def _image_difference(ref: dict[str, np.ndarray], cand: dict[str, np.ndarray], *,
                      score_threshold: float, max_detections: int, score_margin: float,
                      box_tolerance: float) -> str:
    """What differs between one image's two lists of detections ('' when nothing)."""
    cut_ref = _cutoff(ref["scores"], score_threshold, max_detections)
    cut_cand = _cutoff(cand["scores"], score_threshold, max_detections)
    unmatched = list(range(len(cand["scores"])))
    only_ref, box_diff, score_diff = [], 0.0, 0.0
    for i in np.argsort(-np.asarray(ref["scores"]), kind="stable"):
        same = [j for j in unmatched if cand["classes"][j] == ref["classes"][i]]
        gaps = [float(np.abs(cand["boxes"][j] - ref["boxes"][i]).max()) for j in same]
        if gaps and min(gaps) <= box_tolerance:
            j = same[int(np.argmin(gaps))]
            unmatched.remove(j)
            box_diff = max(box_diff, min(gaps))
            score_diff = max(score_diff, abs(float(cand["scores"][j] - ref["scores"][i])))
        elif ref["scores"][i] >= cut_cand + score_margin:
            only_ref.append(float(ref["scores"][i]))
    only_cand = [float(cand["scores"][j]) for j in unmatched
                 if cand["scores"][j] >= cut_ref + score_margin]
    if not (only_ref or only_cand or score_diff > score_margin):
        return ""
    parts = [f"{len(ref['scores'])} Keras vs {len(cand['scores'])} TFLite detections"]
    if only_ref:
        parts.append(f"{len(only_ref)} only in Keras (best score {max(only_ref):.2f})")
    if only_cand:
        parts.append(f"{len(only_cand)} only in TFLite (best score {max(only_cand):.2f})")
    if score_diff > score_margin:
        parts.append(f"scores differ by up to {score_diff:.3f}")
    if box_diff:
        parts.append(f"boxes by up to {box_diff:.2f} px")
    return ", ".join(parts)


def _cutoff(scores: np.ndarray, threshold: float, max_detections: int) -> float:
    """The lowest score a list of detections could have kept."""
    if len(scores) >= max_detections:
        return max(threshold, float(np.min(scores)))
    return threshold
