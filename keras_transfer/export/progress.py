"""One short progress line per export step (plain prints, flushed, so logs stream in CI)."""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Iterator


@contextlib.contextmanager
def step(message: str, *, verbose: bool = True) -> Iterator[None]:
    """Prints ``[export] message ...`` and, when the body finishes, the seconds it took.

    Example:
    >>> with step("writing nothing", verbose=False):
    ...     pass
    """
    start = time.perf_counter()
    if verbose:
        print(f"[export] {message} ...", end="", flush=True, file=sys.stdout)
    try:
        yield
    except BaseException:
        if verbose:
            print(" failed", flush=True)
        raise
    if verbose:
        print(f" done ({time.perf_counter() - start:.1f} s)", flush=True)
