"""Writing files safely: atomic files and folders, the umask's modes, leftover temporary folders.

Every output keras-transfer writes (exports, reports, backups, the feature cache) goes through
`atomic_write_bytes` or `atomic_directory`: a kill leaves the previous file whole, never half of it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

# Temporary folders of a legacy name (no PID in it) are stale once this old.
_LEGACY_STALE_S = 24 * 3600


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows.

    Example:
    >>> 0 <= current_umask() <= 0o777
    True
    """
    try:  # Linux >= 4.7: no need to touch the (process-global) umask at all.
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    # Elsewhere the only way is to set it and put it back: for that instant another thread's
    # new file would get mode 0o666 / 0o777, which is more open, never less.
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def file_mode() -> int:
    """The mode `open()` gives a new file (``0o666`` less the umask).

    `tempfile.mkstemp` makes files ``0o600``; what is renamed into place gets this instead.

    Example:
    >>> oct(file_mode() & 0o600)
    '0o600'
    """
    return 0o666 & ~current_umask()


def dir_mode() -> int:
    """The mode `mkdir()` gives a new folder (``0o777`` less the umask), not mkdtemp's 0o700.

    Example:
    >>> oct(dir_mode() & 0o700)
    '0o700'
    """
    return 0o777 & ~current_umask()


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # ours: maybe another thread's folder in progress
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    except OSError:
        return True  # cannot tell: keep it
    return True


def remove_stale(target: str | os.PathLike) -> list[str]:
    """Removes what interrupted `atomic_directory` / `atomic_write_bytes` calls left beside
    `target`: ``.{name}.tmp-{pid}-*`` and ``.{name}.old-{pid}`` of processes that are gone
    (and legacy ``.{name}.tmp-*`` ones a day old). Returns the names removed.

    An ``.old`` folder is a complete previous result: when `target` itself is missing (killed
    between the two renames) it is put back as `target` instead of being removed. PIDs are
    those of this machine: several machines writing one target on a shared disk is unsupported.

    Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> (folder / ".out.tmp-999999999-abc").mkdir()   # a PID no process has
    >>> remove_stale(folder / "out")
    ['.out.tmp-999999999-abc']
    """
    target = Path(target)
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.(tmp|old)-(?:(\d+)(?:-.*)?|(.*))$")
    removed, restorable = [], []
    try:
        entries = sorted(target.parent.iterdir()) if target.parent.is_dir() else []
    except OSError:
        return []
    for path in entries:
        match = pattern.match(path.name)
        if not match:
            continue
        kind, pid = match.group(1), match.group(2)
        if pid is not None:
            if _pid_alive(int(pid)):
                continue
        else:
            try:  # a legacy name without a PID: only its age tells it is abandoned
                if kind == "old" or time.time() - path.stat().st_mtime < _LEGACY_STALE_S:
                    continue
            except OSError:
                continue
        if kind == "old":
            restorable.append(path)
            continue
        _remove(path)
        removed.append(path.name)
    for path in restorable:
        if not target.exists() and not target.is_symlink():
            os.replace(path, target)
            print(f"[cleanup] restored {target} from {path.name} (an interrupted replace)",
                  file=sys.stderr, flush=True)
        else:
            _remove(path)
            removed.append(path.name)
    if removed:
        print(f"[cleanup] removed {len(removed)} stale temporary item(s) beside {target}: "
              f"{', '.join(removed)}", file=sys.stderr, flush=True)
    return removed


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


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

    The temporary folder is ``.{name}.tmp-{pid}-{random}`` with the mode of a normal new folder
    (not mkdtemp's 0o700); what a killed process left is removed by the next call for the same
    `target` (see `remove_stale`).

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
    remove_stale(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    try:
        os.chmod(tmp, dir_mode())
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

    The file gets the mode `open()` would give it (`file_mode`), not mkstemp's 0o600; the
    temporary file of a killed writer is removed by the next write of `path` (`remove_stale`).

    Example:
    >>> import tempfile, pathlib
    >>> p = atomic_write_bytes(pathlib.Path(tempfile.mkdtemp()) / "x.bin", b"abc")
    >>> p.read_bytes(), oct(p.stat().st_mode & 0o777) == oct(file_mode())
    (b'abc', True)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-{os.getpid()}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), file_mode())
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path
