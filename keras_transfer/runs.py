"""Where a run keeps its state, and who may use it: run folders keyed by the full output path,
the settings they were made with, and a lock so two processes never share one.

A training job writes its exported model to an output folder and its working state (backups,
TensorBoard logs, the decisions a resumed run must repeat) to a run folder,
``runs/<output name>-<hash of the output's absolute path>``. Two outputs with the same name in
different places never share a run folder; a rerun with other settings never restores the
weights of the run it replaces; a second process writing the same output is refused with the
PID of the first.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Iterator

from keras_transfer.errors import BadInputError

RUNS_ROOT = Path("runs")
SETTINGS_FILE = "run.json"
DECISIONS_FILE = "decisions.json"


class RunInUseError(BadInputError):
    """Another live process holds the lock of this output folder."""


def run_dir_for(output_dir: str | os.PathLike, root: str | os.PathLike = RUNS_ROOT) -> Path:
    """The run folder of an output folder: its name plus a hash of its absolute path.

    Example:
    >>> a = run_dir_for("/data/one/exp"); b = run_dir_for("/data/two/exp")
    >>> a.name.startswith("exp-"), a != b, a == run_dir_for("/data/one/../one/exp")
    (True, True, True)
    """
    absolute = Path(os.path.abspath(output_dir))
    digest = hashlib.sha1(str(absolute).encode()).hexdigest()[:8]
    return Path(root) / f"{absolute.name}-{digest}"


def _lock_path(output_dir: Path) -> Path:
    # Beside the output, not in runs/: the lock holds whatever the working directory is.
    absolute = Path(os.path.abspath(output_dir))
    return absolute.parent / f".{absolute.name}.lock"


@contextlib.contextmanager
def output_lock(output_dir: str | os.PathLike, what: str = "training") -> Iterator[Path]:
    """Holds an exclusive lock on `output_dir` for as long as the block runs.

    The lock is an ``flock`` on a small file beside the output, which the kernel releases when
    the process ends however it ends (SIGKILL included): a killed run never leaves a stale
    lock. A second process gets `RunInUseError` naming the PID that holds it.

    Example:
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "model"
    >>> with output_lock(out):
    ...     pass
    """
    path = _lock_path(Path(output_dir))
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise RunInUseError(
                f"{output_dir} is in use by {holder}; wait for it to finish, or write to "
                "another output folder (--output-dir).") from None
        handle.seek(0)
        handle.truncate()
        started = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
        handle.write(f"PID {os.getpid()} ({what} since {started}: "
                     f"{' '.join(Path(sys.argv[0]).name.split()) or 'python'})")
        handle.flush()
        yield path
    finally:
        handle.close()  # releases the flock


def _settings_text(settings: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(settings, default=str, sort_keys=True))


def settings_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The settings that differ between two runs, as ``name: old → new`` lines.

    Example:
    >>> settings_changes({"epochs": 3, "seed": 1}, {"epochs": 5, "seed": 1})
    ['epochs: 3 → 5']
    """
    old, new = _settings_text(old), _settings_text(new)
    return [f"{key}: {old.get(key)!r} → {new.get(key)!r}".replace("'", "")
            for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]


def remember(run_dir: str | os.PathLike, key: str, value: Any) -> None:
    """Records, in ``decisions.json`` of a run folder, a decision a resumed run must repeat
    (the image size, the augmentation, the fine-tuning plan). Written atomically, by the chief
    only (in a multi-worker run every worker decides the same; one writes).

    Example:
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> remember(folder, "image_size", {"size": 288})
    >>> recall(folder, "image_size") is None  # no backup: nothing is being resumed
    True
    """
    from keras_transfer.distribute.workers import worker_info
    from keras_transfer.utils.files import atomic_write_bytes

    if not worker_info().chief:
        return
    path = Path(run_dir) / DECISIONS_FILE
    decisions = _read_json(path) or {}
    decisions[key] = value
    atomic_write_bytes(path, json.dumps(decisions, indent=2, sort_keys=True).encode())


def recall(run_dir: str | os.PathLike, key: str) -> Any:
    """A decision recorded by `remember`, while the run folder holds a resumable backup (the
    backup being restored was trained under it); else None.

    Example:
    >>> recall("/nonexistent/run", "image_size") is None
    True
    """
    from keras_transfer.recipes.backup import has_backup

    if not has_backup(Path(run_dir) / "backup"):
        return None
    return (_read_json(Path(run_dir) / DECISIONS_FILE) or {}).get(key)


def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # missing or unreadable: nothing to resume from
    return value if isinstance(value, dict) else None


class RunState:
    """A run folder's record: the settings it belongs to and the decisions to repeat on resume.

    `open` compares the settings with those recorded by an earlier, interrupted run: the same
    settings keep its state (a resume), other settings clear it and say which changed.

    Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp()) / "run"
    >>> state = RunState.open(folder, {"epochs": 3}, verbose=False)
    >>> state.remember("image_size", 288)
    >>> state.resumed, state.recall("image_size")  # no backup yet: nothing to resume
    (False, None)
    >>> settings_changes(state.settings, {"epochs": 5})  # what `open` would report and clear
    ['epochs: 3 → 5']
    """

    def __init__(self, path: Path, settings: dict[str, Any]):
        self.path = Path(path)
        self.settings = _settings_text(settings)
        self.resumed = False
        self.read_only = False

    @classmethod
    def open(cls, path: str | os.PathLike, settings: dict[str, Any], *,
             verbose: bool = True, read_only: bool = False) -> "RunState":
        """`read_only`: a multi-worker run's non-chief, which reads the chief's state."""
        state = cls(Path(path), settings)
        state.read_only = read_only
        say = print if verbose else (lambda *args, **kwargs: None)
        recorded = state._read(SETTINGS_FILE)
        if read_only:
            state.resumed = recorded == state.settings and state.has_backup()
            return state
        if recorded is not None and recorded != state.settings:
            changes = settings_changes(recorded, state.settings)
            say(f"      {state.path}: an earlier run with other settings "
                f"({'; '.join(changes[:4])}{' …' if len(changes) > 4 else ''}): not resumed, "
                "its state is cleared.", flush=True)
            state.clear()
        elif recorded is not None and state.has_backup():
            state.resumed = True
            say(f"      {state.path}: resuming an interrupted run with the same settings.",
                flush=True)
        state._write(SETTINGS_FILE, state.settings)
        return state

    def has_backup(self) -> bool:
        from keras_transfer.recipes.backup import has_backup

        return has_backup(self.path / "backup")

    def remember(self, key: str, value: Any) -> None:
        """Records a decision a resumed run must repeat (`remember`)."""
        if not self.read_only:
            remember(self.path, key, value)

    def recall(self, key: str) -> Any:
        """A decision recorded by the interrupted run this one resumes (None when not resuming)."""
        return recall(self.path, key) if self.resumed else None

    def finish(self) -> None:
        """The run completed: nothing of it is to be resumed."""
        with contextlib.suppress(FileNotFoundError):
            (self.path / DECISIONS_FILE).unlink()
        shutil.rmtree(self.path / "backup", ignore_errors=True)

    def clear(self) -> None:
        self.finish()
        with contextlib.suppress(FileNotFoundError):
            (self.path / SETTINGS_FILE).unlink()

    def _read(self, name: str) -> dict | None:
        return _read_json(self.path / name)

    def _write(self, name: str, value: dict) -> None:
        from keras_transfer.utils.files import atomic_write_bytes

        atomic_write_bytes(self.path / name, json.dumps(value, indent=2, sort_keys=True).encode())
