"""What `compare_backbones` reports: the summary (``comparison.json``), the plot, the table.

`summarize` turns the per-backbone rows and the latencies into the summary, with each
quantization's Pareto front and the recommendation (`keras_transfer.compare.pareto`);
`write_report` prints the table and the recommendation and writes ``comparison.json`` and
``comparison.png`` atomically; `comparison_table` is the console table.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from pathlib import Path
from typing import Any

from keras_transfer.compare.config import CompareConfig
from keras_transfer.compare.pareto import Recommendation, pareto_front, recommend

RESULT_FILE, PLOT_FILE = "comparison.json", "comparison.png"


def summarize(config: CompareConfig, rows: list[dict], latency: dict,
              seconds: float) -> dict[str, Any]:
    """The comparison's summary (``comparison.json``): the rows marked with the Pareto front of
    each quantization and the recommended backbone, the settings, latencies and machine.

    Example:
    >>> row = {"backbone": "a", "status": "ok", "accuracy": 0.8, "num_test": 50,
    ...        "tflite": {"float32": {"file": "model.tflite", "latency_ms": 1.5}}}
    >>> summary = summarize(CompareConfig(dataset="photos/", backbones=["a"],
    ...                                   quantization=("float32",), rank_by="float32"),
    ...                     [row], latency={}, seconds=3.0)
    >>> summary["recommendation"]["backbone"], row["recommended"], row["pareto_front"]
    ('a', True, {'float32': True})
    """
    from keras_transfer.commands.image_job import _machine

    for row in rows:  # the temporary files are gone: keep their names only
        for entry in row.get("tflite", {}).values():
            entry.pop("path", None)
    done = [row for row in rows if row["status"] == "ok"]
    points = _points(done, config.quantization)
    fronts = {kind: pareto_front(named) for kind, named in points.items()}
    choice: Recommendation | None = None
    if done:
        choice = recommend(points[config.rank_by], tolerance=config.tolerance,
                           rank_by=config.rank_by,
                           num_test=max(row["num_test"] for row in done))
    for row in done:
        row["pareto_front"] = {kind: row["backbone"] in front for kind, front in fronts.items()}
        row["recommended"] = choice is not None and row["backbone"] == choice.backbone
    return {
        "comparison": "backbones",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "dataset": config.dataset,
        "settings": dataclasses.asdict(config),
        "backbones": rows,
        "failed": [row["backbone"] for row in rows if row["status"] != "ok"],
        "pareto_front": fronts,
        "recommendation": choice.as_dict() if choice else None,
        "latency": latency,
        "machine": _machine(),
        "seconds": round(seconds, 1),
    }


def _points(done: list[dict], kinds) -> dict[str, dict[str, tuple[float, float]]]:
    """``{quantization: {backbone: (accuracy, latency_ms)}}`` of the backbones that finished."""
    return {kind: {row["backbone"]: (row["accuracy"], row["tflite"][kind]["latency_ms"])
                   for row in done} for kind in kinds}


def write_report(config: CompareConfig, output_dir: Path, summary: dict) -> None:
    """Prints the table and the recommendation; writes ``comparison.json`` and, when a
    backbone finished, ``comparison.png`` (accuracy against latency) into `output_dir`.

    Example:
    >>> import tempfile
    >>> failed = {"backbone": "b", "status": "failed", "image_size": 32,
    ...           "error": "WeightsUnavailableError: offline", "timings": {"total_s": 0.1}}
    >>> config = CompareConfig(dataset="photos/", backbones=["b"])
    >>> folder = Path(tempfile.mkdtemp())
    >>> summary = {"backbones": [failed], "recommendation": None,
    ...            "settings": {"quantization": ["float32"]}}
    >>> write_report(config, folder, summary)  # doctest: +ELLIPSIS
    backbone  px  params  accuracy  macro-F1  float32 MiB  float32 ms  seconds  note
    ...
    Wrote .../comparison.json
    >>> sorted(path.name for path in folder.iterdir())
    ['comparison.json']
    """
    from keras_transfer.utils.files import atomic_write_bytes

    print(comparison_table(summary), flush=True)
    written = [output_dir / RESULT_FILE]
    if summary["recommendation"] is not None:
        _print_recommendation(summary)
        _plot(config, output_dir / PLOT_FILE, summary)
        written.insert(0, output_dir / PLOT_FILE)
    atomic_write_bytes(output_dir / RESULT_FILE,
                       json.dumps(summary, indent=2, default=str).encode())
    print(f"Wrote {', '.join(str(path) for path in written)}", flush=True)


def _print_recommendation(summary: dict) -> None:
    choice = summary["recommendation"]
    print(f"Recommendation — rule: {choice['rule']}.\n  {choice['reason']}", flush=True)
    if choice["standard_error_points"] and len(summary["backbones"]) > 1:
        print(f"  (On these test images one standard error of the accuracy is "
              f"{choice['standard_error_points']:.1f} points: smaller differences are "
              "noise.)", flush=True)


def _plot(config: CompareConfig, path: Path, summary: dict) -> None:
    """Accuracy against latency, the ranked quantization first, the front connected."""
    from keras_transfer.evaluation.plots import plot_accuracy_latency

    done = [row for row in summary["backbones"] if row["status"] == "ok"]
    kinds = [config.rank_by] + [k for k in config.quantization if k != config.rank_by]
    what = "fine-tuned" if config.fine_tune else "frozen features"
    plot_accuracy_latency(_points(done, kinds), path, fronts=summary["pareto_front"],
                          recommended=summary["recommendation"]["backbone"],
                          rank_by=config.rank_by,
                          title=f"{Path(config.dataset).name}: test accuracy ({what}) "
                                "against TFLite latency")


def comparison_table(summary: dict) -> str:
    """The console table of a comparison (`compare_backbones`' result): one row per backbone.

    Example:
    >>> row = {"backbone": "a", "status": "ok", "image_size": 32, "params": 1000,
    ...        "accuracy": 0.8, "frozen_accuracy": 0.8, "macro_f1": 0.79, "fine_tuned": False,
    ...        "tflite": {"float32": {"size_bytes": 2**20, "latency_ms": 1.5}},
    ...        "timings": {"total_s": 3.0}, "pareto_front": {"float32": True},
    ...        "recommended": True}
    >>> failed = {"backbone": "b", "status": "failed", "image_size": 32,
    ...           "error": "WeightsUnavailableError: offline", "timings": {"total_s": 0.1}}
    >>> print(comparison_table({"backbones": [row, failed],
    ...                         "settings": {"quantization": ["float32"]}}))
    backbone  px  params  accuracy  macro-F1  float32 MiB  float32 ms  seconds  note
    --------  --  ------  --------  --------  -----------  ----------  -------  ----------------------------------------
    a         32  1,000   80.00%    0.790     1.00         1.50        3        recommended, front
    b         32                                                       0        failed: WeightsUnavailableError: offline
    """
    from keras_transfer.backbones.summary import format_table

    kinds = list(summary["settings"]["quantization"])
    rows = summary["backbones"]
    fine_tuned = any(row.get("fine_tuned") for row in rows)
    return format_table([_table_line(row, kinds, fine_tuned) for row in rows])


def _table_line(row: dict, kinds: list[str], fine_tuned: bool) -> dict[str, Any]:
    ok = row["status"] == "ok"
    line = {"backbone": row["backbone"], "px": row["image_size"],
            "params": row["params"] if ok else ""}
    if fine_tuned:
        line["frozen"] = f"{row['frozen_accuracy']:.2%}" if ok else ""
    line["fine-tuned" if fine_tuned else "accuracy"] = f"{row['accuracy']:.2%}" if ok else ""
    line["macro-F1"] = f"{row['macro_f1']:.3f}" if ok else ""
    for kind in kinds:
        entry = row.get("tflite", {}).get(kind, {})
        line[f"{kind} MiB"] = f"{entry['size_bytes'] / 2**20:.2f}" if entry else ""
        line[f"{kind} ms"] = f"{entry['latency_ms']:.2f}" if entry else ""
    line["seconds"] = f"{row['timings']['total_s']:.0f}"
    notes = (["recommended"] if row.get("recommended") else []) + (
        ["front"] if any(row.get("pareto_front", {}).values()) else [])
    line["note"] = ", ".join(notes) if ok else short_text(f"failed: {row['error']}", 100)
    return line


# ---- wording ------------------------------------------------------------------------------


def count_text(number: int, noun: str) -> str:
    """``"1 epoch"``, ``"3 epochs"``.

    Example:
    >>> count_text(1, "epoch"), count_text(3, "epoch")
    ('1 epoch', '3 epochs')
    """
    return f"{number} {noun}{'' if number == 1 else 's'}"


def short_text(text: str, limit: int) -> str:
    """`text` on one line, cut to `limit` characters with an ellipsis.

    Example:
    >>> short_text("a  long\\nmessage", 8)
    'a long …'
    """
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
