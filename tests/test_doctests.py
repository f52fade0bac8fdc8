"""Every docstring example in keras_transfer runs and prints what it shows (one test per module).

An example that needs an optional extra (keras-cv, torch, the offline assets) is skipped only
when that extra's package is not installed; with the extra installed, as the dev extra does,
a failure to import it fails the test. Under CI (``CI`` set), which installs the dev extra, a
missing package fails too: there it means a broken install, not a user's choice.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import io
import os
from pathlib import Path

import keras
import pytest

from keras_transfer.errors import MissingDependencyError

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "keras_transfer"
# pytest's own --doctest-modules default, so both ways of running the examples agree.
OPTIONFLAGS = doctest.ELLIPSIS


def _module_names() -> list[str]:
    """Modules with examples, from the source tree (collecting them imports nothing)."""
    names = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        if ">>>" in path.read_text(encoding="utf-8"):
            parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


MODULES = _module_names()


def _missing_package(error: BaseException) -> str | None:
    """The top-level package an ImportError is about, when it is not installed at all."""
    while error is not None:
        name = getattr(error, "name", None)
        if isinstance(error, ImportError) and name:
            top = name.split(".")[0]
            return top if importlib.util.find_spec(top) is None else None
        error = error.__cause__
    return None


class _Runner(doctest.DocTestRunner):
    """Remembers each docstring's first failure, to tell a missing extra from a broken example."""

    def __init__(self):
        super().__init__(optionflags=OPTIONFLAGS, verbose=False)
        self.first_failure: dict[str, BaseException | None] = {}

    def report_failure(self, out, test, example, got):
        self.first_failure.setdefault(test.name, None)
        super().report_failure(out, test, example, got)

    def report_unexpected_exception(self, out, test, example, exc_info):
        self.first_failure.setdefault(test.name, exc_info[1])
        super().report_unexpected_exception(out, test, example, exc_info)


def _skip_for_missing_extra(reason: str) -> None:
    """Skip on a user's machine without the extra; fail under CI, where the dev extra is installed."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI installs the dev extra, so the install is broken)")
    pytest.skip(reason=reason)


def _needs_missing_extra(error: BaseException | None) -> str | None:
    if isinstance(error, MissingDependencyError):
        return _missing_package(error)
    return None


@pytest.fixture(autouse=True)
def _seed():
    """Overrides conftest's: the same seed and reset, but without a full ``gc.collect()``
    after each of these ~90 tests (half a second each, more than most modules' examples)."""
    keras.utils.set_random_seed(1234)
    yield
    keras.backend.clear_session(free_memory=False)


def test_every_module_is_collected():
    assert "keras_transfer" in MODULES and "keras_transfer.detection.ssd" in MODULES
    assert len(MODULES) == len(set(MODULES)) > 50


def test_a_missing_extra_skips_for_users_and_fails_under_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="needs torch"):
        _skip_for_missing_extra("needs torch")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="needs torch.*install is broken"):
        _skip_for_missing_extra("needs torch")


@pytest.mark.slow
@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, offline, monkeypatch):
    # No example may download anything (`offline` refuses sockets); none may litter the
    # working directory.
    monkeypatch.chdir(offline)
    try:
        module = importlib.import_module(name)
    except ImportError as error:
        missing = _missing_package(error)
        if missing is None:
            raise
        _skip_for_missing_extra(f"{name} needs the optional package {missing!r}, not installed")
    runner = _Runner()
    report = io.StringIO()
    for test in doctest.DocTestFinder().find(module, name):
        if test.examples:
            # Each docstring on its own: same seed, fresh layer names, whatever ran before.
            keras.utils.set_random_seed(1234)
            keras.backend.clear_session(free_memory=False)
            runner.run(test, out=report.write)
    # A docstring whose first failure is an extra that is not installed is skipped as a whole
    # (its later examples fail only for want of that one's result).
    missing = {test: _needs_missing_extra(error) for test, error in runner.first_failure.items()}
    broken = sorted(test for test, package in missing.items() if package is None)
    assert not broken, f"failing examples in {broken}:\n{report.getvalue()}"
    if missing:
        _skip_for_missing_extra(f"examples of {sorted(missing)} need optional packages that are "
                                f"not installed: {sorted(set(missing.values()))}")
