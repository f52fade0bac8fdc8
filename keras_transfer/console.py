"""A quiet console for the `keras-transfer` command: TensorFlow's start-up log lines are dropped.

Importing TensorFlow writes several lines to stderr before anything useful: absl's "WARNING:
All log messages before absl::InitializeLog() is called are written to STDERR", "Could not
find cuda drivers", CPU-instruction and oneDNN notes, and on first use a "failed call to
cuInit" error on machines without a GPU. Most obey ``TF_CPP_MIN_LOG_LEVEL``, which must be set
before TensorFlow loads; those logged before absl is initialised do not, so the import runs with
the process's stderr captured and only lines of that kind are dropped: anything else captured
(Python warnings, errors) is written back once the import is done.

`main` does both, then runs `keras_transfer.commands.cli.main`. It imports only the standard library,
because ``import keras_transfer`` already loads TensorFlow: the command starts in the top-level
module `keras_transfer_launcher`, which loads this file without the package. ``--verbose``
(anywhere on the command line) or ``KERAS_TRANSFER_VERBOSE=1`` leaves TensorFlow's logging as
it is; so does a ``TF_CPP_MIN_LOG_LEVEL`` (or other setting below) the user set.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import re
import sys
import tempfile
from typing import IO, Iterator, MutableMapping, Sequence

VERBOSE_FLAG = "--verbose"
VERBOSE_ENV = "KERAS_TRANSFER_VERBOSE"

# Set before TensorFlow loads, unless already set: the user's own choice wins.
QUIET_ENVIRONMENT = {
    "TF_CPP_MIN_LOG_LEVEL": "3",  # TensorFlow's C++ INFO/WARNING/ERROR lines (cuInit, oneDNN…)
    "GRPC_VERBOSITY": "ERROR",  # gRPC's own lines (multi-worker training)
    "GLOG_minloglevel": "2",  # libraries logging through glog
}

# Start-up lines that ignore TF_CPP_MIN_LOG_LEVEL (logged before absl is initialised), or are
# known noise at ERROR level; matched at the start of a line.
NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    # absl's format: I0000 00:00:1796600794.712254    3256 cudart_stub.cc:31] ...
    r"|[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] "
    # TensorFlow's older format: 2024-01-01 12:00:00.000000: I tensorflow/...cc:113] ...
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IW] \S+:\d+\] "
    r"|(E\d{4} \d\d:\d\d:\d+\.\d+ +\d+|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: E) \S+:\d+\] "
    r"(failed call to cuInit|Unable to register cu\w+ factory|computation placer already)"
    r"|To enable the following instructions: .*rebuild TensorFlow"
    r"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU\."
)


def is_noise(line: str) -> bool:
    """True for a TensorFlow start-up log line the quiet console drops.

    Example:
    >>> is_noise("I0000 00:00:1796600794.712254    3256 cudart_stub.cc:31] Could not find cuda "
    ...          "drivers on your machine, GPU will not be used.")
    True
    >>> is_noise("keras-transfer describe: error: 'vgg17' is not a registered backbone")
    False
    """
    return NOISE.match(line) is not None


def wants_verbose(argv: Sequence[str], environ: MutableMapping[str, str] = os.environ) -> bool:
    """True when TensorFlow's logging is wanted: ``--verbose`` in `argv` (before any ``--``) or
    ``KERAS_TRANSFER_VERBOSE`` set to 1/true/yes/on.

    Example:
    >>> wants_verbose(["list-backbones", "--verbose"], environ={})
    True
    >>> wants_verbose(["list-backbones"], environ={"KERAS_TRANSFER_VERBOSE": "0"})
    False
    """
    flagged = VERBOSE_FLAG in _options(argv)
    return flagged or environ.get(VERBOSE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def strip_verbose(argv: Sequence[str]) -> list[str]:
    """`argv` without ``--verbose`` (before any ``--``): the flag may go anywhere on the line.

    Example:
    >>> strip_verbose(["describe", "--verbose", "vgg16", "--", "--verbose"])
    ['describe', 'vgg16', '--', '--verbose']
    """
    options = len(_options(argv))
    return [arg for arg in argv[:options] if arg != VERBOSE_FLAG] + list(argv[options:])


def _options(argv: Sequence[str]) -> list[str]:
    argv = list(argv)
    return argv[:argv.index("--")] if "--" in argv else argv


def quiet_environment(environ: MutableMapping[str, str] = os.environ) -> dict[str, str]:
    """Sets `QUIET_ENVIRONMENT` where not set already; returns what it set. Only takes effect
    when TensorFlow has not been imported yet.

    Example:
    >>> environment = {"TF_CPP_MIN_LOG_LEVEL": "0"}
    >>> sorted(quiet_environment(environment)), environment["TF_CPP_MIN_LOG_LEVEL"]
    (['GLOG_minloglevel', 'GRPC_VERBOSITY'], '0')
    """
    chosen = {name: value for name, value in QUIET_ENVIRONMENT.items() if name not in environ}
    environ.update(chosen)
    return chosen


@contextlib.contextmanager
def filtered_stderr() -> Iterator[None]:
    """Captures what the process writes to stderr (file descriptor 2, so C++ libraries too)
    while the block runs, then writes it back without the lines `is_noise` matches.

    A crash inside the block still reports on the real stderr (`faulthandler`'s traceback).

    Example:
    >>> with filtered_stderr():
    ...     _ = os.write(2, b"W0000 00:00:1.0  1 port.cc:1] start-up noise\\n")
    """
    try:
        _flush(sys.stderr)
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable file descriptor 2: nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            with _crash_report_to(saved):
                yield
        finally:
            _flush(sys.stderr)
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            _write_back(capture.read().decode("utf-8", "replace"))


def _flush(stream: IO | None) -> None:
    if stream is not None:
        stream.flush()


def _write_back(text: str) -> None:
    kept = "".join(line for line in text.splitlines(keepends=True) if not is_noise(line))
    if kept and sys.stderr is not None:
        sys.stderr.write(kept)
        sys.stderr.flush()


@contextlib.contextmanager
def _crash_report_to(fd: int) -> Iterator[None]:
    if faulthandler.is_enabled():  # already reporting somewhere (e.g. under pytest)
        yield
        return
    faulthandler.enable(file=fd)
    try:
        yield
    finally:
        faulthandler.disable()


def main(argv: Sequence[str] | None = None) -> int:
    """Runs `keras-transfer` with `argv` (default: this process's arguments), TensorFlow's
    start-up lines silenced unless `wants_verbose`; returns the exit status.

    Example:
    >>> main(["list-backbones"])  # one line per backbone, then the exit status
    vgg16 ... keras.applications.VGG16
    ...
    0
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if wants_verbose(argv) or "tensorflow" in sys.modules:  # wanted, or too late to quiet
        from keras_transfer.commands import cli
    else:
        quiet_environment()
        with filtered_stderr():  # importing keras_transfer imports TensorFlow
            from keras_transfer.commands import cli
        quiet_python_logs()
    return cli.main(argv)


# Python-level messages a CLI user cannot act on (--verbose keeps them): Keras warns on every
# fit of a tf.data pipeline that its default shuffle=True is ignored; TensorFlow warns when a
# predict function retraces for the last, smaller batch.
_QUIET_WARNINGS = (r"`shuffle=True` was passed, but will be ignored",)
_QUIET_LOGGERS = ("tensorflow", "absl")


def quiet_python_logs() -> None:
    """Drops the Python warnings and TensorFlow log lines a CLI run cannot act on.

    Example:
    >>> import logging
    >>> logger = logging.getLogger("tensorflow"); before = logger.level
    >>> quiet_python_logs(); logger.level == logging.ERROR
    True
    >>> logger.setLevel(before)  # (a doctest: leave the test process as it was)
    """
    import logging
    import warnings

    for message in _QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
