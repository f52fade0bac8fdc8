"""The on-disk cache (converted weights, cached features) and atomic writes."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator

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


@contextlib.contextmanager
def atomic_directory(
    target: str | os.PathLike,
    *,
    overwrite: bool = True,
    keep_existing: Callable[[Path], bool] | None = None,
) -> Iterator[Path]:
    """Yields a temporary folder beside `target`; on success it replaces `target` in one rename.

    If the body raises, the temporary folder is removed and `target` (a previous result) is left
    exactly as it was, so readers never see a half-written folder. For caches that several
    processes may fill at once (parallel test workers, notebooks), `keep_existing(target)` is
    asked once the body is done: if it says `target` is already a finished result, that one is
    kept and ours dropped, rather than swapped out from under a reader.

    Example:
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "result"
    >>> with atomic_directory(out) as tmp:
    ...     _ = (tmp / "a.txt").write_text("hello")
    >>> (out / "a.txt").read_text()
    'hello'
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if keep_existing is not None and target.exists() and keep_existing(target):
        shutil.rmtree(tmp, ignore_errors=True)
        return
    old = None
    if target.exists():
        if not overwrite:
            shutil.rmtree(tmp, ignore_errors=True)
            raise FileExistsError(f"{target} already exists (pass overwrite=True to replace it).")
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Writes `data` to `path` through a temporary file and a rename (never a half-written file).

    Example:
    >>> import tempfile, pathlib
    >>> p = atomic_write_bytes(pathlib.Path(tempfile.mkdtemp()) / "x.bin", b"abc")
    >>> p.read_bytes()
    b'abc'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path
