"""On-device latency of a comparison's ``.tflite`` files, timed in alternating rounds.

All files are timed once every backbone is done, in turn, round after round: on a shared
machine the load then falls on each file alike, which timing them one after the other would not
give.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from keras_transfer.compare.report import count_text

INVOCATIONS_PER_ROUND = 10  # images per file per latency round


def time_files(rows: list[dict], rounds: int) -> dict[str, Any]:
    """Median latency per image of every exported file, the files timed in turn, round after
    round; written into the rows' ``tflite`` entries as ``latency_ms``. Returns how it was
    measured.

    Example:
    >>> record = time_files([{"backbone": "a", "status": "failed"}], rounds=3)
    >>> record["rounds"], record["invocations_per_round"]
    (3, 10)
    """
    from keras_transfer.export.interpreter import (
        TFLiteRunner,
        default_threads,
        interpreter_class,
    )

    entries = [entry for row in rows for entry in row.get("tflite", {}).values()]
    record = {"method": f"median of {rounds} alternating rounds x {INVOCATIONS_PER_ROUND} "
                        "batch-1 invocations per file, after one warm-up",
              "rounds": rounds, "invocations_per_round": INVOCATIONS_PER_ROUND,
              "threads": default_threads(), "interpreter": interpreter_class()[1]}
    if not entries:
        return record
    print(f"[latency] timing {len(entries)} .tflite file(s) in "
          f"{count_text(rounds, 'alternating round')} of {INVOCATIONS_PER_ROUND} images "
          f"({record['threads']} threads) …", flush=True)
    runners = _warm_runners(entries, record["threads"], TFLiteRunner)
    for _ in range(rounds):
        for _, runner, batch in runners:
            runner(batch)
    for entry, runner, _ in runners:
        entry["latency_ms"] = round(float(np.median(runner.latencies_ms)), 3)
    return record


def _warm_runners(entries: list[dict], threads: int, runner_class) -> list[tuple]:
    """``(entry, runner, images)`` per file: each runner run once untimed (the first
    invocation allocates), random images of its input size, one set per size."""
    rng = np.random.default_rng(0)
    runners, images = [], {}
    for entry in entries:
        runner = runner_class(entry["path"], threads=threads)
        size = runner.image_size
        if size not in images:
            images[size] = rng.uniform(0, 255, (INVOCATIONS_PER_ROUND, *size, 3)).astype(
                "float32")
        runner(images[size][:1])  # warm-up, not timed
        runner.latencies_ms.clear()
        runners.append((entry, runner, images[size]))
    return runners
