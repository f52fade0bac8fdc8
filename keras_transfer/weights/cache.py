"""The on-disk cache (converted weights, cached features); atomic writes are in `utils.files`."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "KERAS_TRANSFER_CACHE"


def cache_dir(*parts: str) -> Path:
    """Returns (and creates) a folder under the cache root.

    The root is ``$KERAS_TRANSFER_CACHE`` if set, else ``~/.cache/keras_transfer``.

    Example:
    >>> path = cache_dir("presets")
    >>> path.is_dir()
    True
    """
    root = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "keras_transfer")
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
