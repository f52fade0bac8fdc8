"""What machine a run or a benchmark ran on: platform, versions, CPU model, its vector
extensions and the cores this process may use (recorded in ``report.json`` and bench results).

Example:
>>> sorted(_machine())
['cpu', 'cpu_count', 'cpu_flags', 'keras', 'platform', 'python']
"""

from __future__ import annotations

import platform
from pathlib import Path

import keras


def _machine() -> dict:
    """Platform, Python and Keras versions, CPU model and flags, usable cores (`report.json`)."""
    return {"platform": platform.platform(), "python": platform.python_version(),
            "keras": keras.__version__, "cpu_count": _cpu_count(), **_cpu_flags()}


def read_cpu() -> tuple[str, set[str]]:
    """The CPU model name and its feature flags (from /proc/cpuinfo; empty flags elsewhere):
    what every benchmark records beside its timings.

    Example:
    >>> model, flags = read_cpu()
    >>> isinstance(model, str) and isinstance(flags, set)
    True
    """
    model, flags = platform.processor() or platform.machine(), set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return model, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            model = value.strip()
        elif key.strip() == "flags":
            flags = set(value.split())
        if flags and key.strip() == "flags":
            break  # the first processor says it for all
    return model, flags


def _cpu_flags() -> dict:
    """The CPU model and the vector extensions that decide CPU training speed."""
    model, flags = read_cpu()
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")
    return {"cpu": model, "cpu_flags": [flag for flag in wanted if flag in flags]}


def _cpu_count() -> int:
    """The cores this process may run on (its affinity mask, where the OS has one)."""
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
