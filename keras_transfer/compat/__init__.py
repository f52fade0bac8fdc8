"""The one place keras-transfer uses private parts of the libraries it builds on.

Each shim module wraps one library's internals behind a small API and has a ``check()`` that
verifies, against the installed versions, that what it relies on is still there:

- `keras_transfer.compat.keras_internals`: the Keras functional graph (which layer produced a
  tensor, a layer's call nodes), nested layers, where `fit` resumes and `BackupAndRestore`'s
  save hook, an optimizer's variables, their keys and its per-step update.
- `keras_transfer.compat.keras_trainer`: two fixes to Keras' TensorFlow trainer under
  multi-replica `tf.distribute` strategies, applied only while a block of code runs.
- `keras_transfer.compat.keras_hub`: keras-hub's timm EfficientNet variant table, and what
  `Backbone.enable_lora` records.
- `keras_transfer.compat.tensorflow_internals`: a `tf.data` pipeline's graph.
- `keras_transfer.compat.tflite_internals`: TF Lite's flatbuffer schema, calibrate-only conversion
  and `mlir_quantize` (exact-range int8), and a signature runner's subgraph.

Everything else uses public APIs, so a library upgrade that moves one of these has one file to
fix; a shim that no longer fits raises `CompatError` naming itself and the installed versions.

Example:
>>> sorted(check_all())
['keras_hub', 'keras_internals', 'keras_trainer', 'tensorflow_internals', 'tflite_internals']
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import re
from typing import Any, Callable, Sequence, TypeVar

from keras_transfer.errors import KerasTransferError

SHIMS = ("keras_internals", "keras_trainer", "keras_hub", "tensorflow_internals",
         "tflite_internals")

# Distribution names of the libraries the shims reach into.
LIBRARIES = {"keras": "keras", "keras_hub": "keras-hub", "tensorflow": "tensorflow",
             "ai_edge_litert": "ai-edge-litert"}

Function = TypeVar("Function", bound=Callable[..., Any])


class CompatError(KerasTransferError, RuntimeError):
    """A compat shim no longer fits the installed library: the message names both."""


def installed_version(module: str) -> str:
    """The installed version of `module` (``"keras"``, ``"keras_hub"``, ``"tensorflow"``).

    Example:
    >>> installed_version("keras").startswith("3.")
    True
    """
    try:
        return importlib.metadata.version(LIBRARIES.get(module, module))
    except importlib.metadata.PackageNotFoundError:  # e.g. tensorflow-cpu, tf-nightly
        try:
            return str(getattr(importlib.import_module(module), "__version__", "unknown"))
        except ImportError:
            return "not installed"


def declared_requirement(module: str) -> str:
    """What keras-transfer's metadata requires of `module` (e.g. ``"keras<3.16,>=3.8"``).

    Example:
    >>> declared_requirement("keras").startswith("keras")
    True
    """
    name = LIBRARIES.get(module, module)
    try:
        requirements = importlib.metadata.requires("keras-transfer") or []
    except importlib.metadata.PackageNotFoundError:  # running from a source tree
        return f"{name} (keras-transfer is not installed: no declared range)"
    for requirement in requirements:
        project = re.match(r"[A-Za-z0-9._-]+", requirement)
        if (project and _normalized(project.group()) == _normalized(name)
                and "extra ==" not in requirement):
            return requirement.split(";")[0].strip()
    return f"{name} (no declared range)"


def _normalized(project: str) -> str:
    return re.sub(r"[-_.]+", "-", project).lower()


def incompatible(shim: str, problem: str, libraries: Sequence[str] = ("keras",)) -> CompatError:
    """The error a shim raises when the installed libraries no longer have what it uses.

    Example:
    >>> str(incompatible("keras_internals.producer", "no KerasTensor._keras_history"))[:56]
    'keras_transfer.compat.keras_internals.producer no longer'
    """
    installed = ", ".join(f"{LIBRARIES.get(m, m)} {installed_version(m)}" for m in libraries)
    declared = "; ".join(declared_requirement(m) for m in libraries)
    module = shim.split(".")[0]
    return CompatError(
        f"keras_transfer.compat.{shim} no longer fits the installed {installed}: {problem}. "
        f"keras-transfer declares {declared}; install a version in that range, or update "
        f"keras_transfer/compat/{module}.py for this one.")


def checked_by(check: Callable[[], Any]) -> Callable[[Function], Function]:
    """Decorates a shim function: when it fails with AttributeError or ImportError, `check`
    runs, and its `CompatError` (the library changed) replaces the error; if the check passes,
    the original error stands (the caller passed something the shim does not handle).

    Example:
    >>> @checked_by(lambda: None)
    ... def history(tensor):
    ...     return tensor._keras_history
    >>> history(3)
    Traceback (most recent call last):
    ...
    AttributeError: 'int' object has no attribute '_keras_history'
    """
    def decorate(function: Function) -> Function:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return function(*args, **kwargs)
            except (AttributeError, ImportError):
                check()  # raises CompatError when the library moved what `function` uses
                raise

        return wrapper  # type: ignore[return-value]

    return decorate


def check_all() -> dict[str, str | None]:
    """Runs every shim's ``check()`` on the installed versions: ``{shim: None}`` when it
    applies, or the reason it is a no-op here (e.g. another Keras backend); raises
    `CompatError` for the first shim that no longer fits.

    Example:
    >>> check_all()["keras_internals"] is None
    True
    """
    return {name: importlib.import_module(f"{__name__}.{name}").check() for name in SHIMS}
