"""Renamed keyword arguments: the old spelling keeps working for a while, with a warning.

`renamed_keywords` decorates a function whose keywords were renamed (``load_weights=`` →
``weights=``): a call with an old name gets one `DeprecationWarning` per old name, pointing at
the caller's line, and the value (translated where the meaning changed shape) goes to the new
keyword. Passing both spellings is a mistake and raises `BadInputError`.

`MovedModuleFinder` does the same for modules that moved (``keras_transfer.evaluate`` →
``keras_transfer.evaluation.classification``): the old import path still works, with a warning.
"""

from __future__ import annotations

import functools
import importlib
import importlib.abc
import importlib.machinery
import inspect
import sys
import warnings
from typing import Any, Callable, MutableMapping, TypeVar

from keras_transfer.errors import BadInputError

Function = TypeVar("Function", bound=Callable[..., Any])
# An old keyword's new name, or (new name, value translation).
Rename = str | tuple[str, Callable[[Any], Any]]


def renamed_keyword(
    kwargs: MutableMapping[str, Any],
    old: str,
    new: str,
    *,
    function: str,
    convert: Callable[[Any], Any] | None = None,
    new_given: bool = False,
    stacklevel: int = 2,
) -> None:
    """Moves a deprecated keyword `old` in `kwargs` to `new` (in place), warning once.

    `convert` translates the old value (e.g. ``load_weights=False`` → ``weights=None``).
    `new_given` says `new` came another way (positionally). `stacklevel` counts from the
    caller of this function, as in `warnings.warn`.

    Example:
    >>> import warnings
    >>> kwargs = {"load_weights": False}
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     renamed_keyword(kwargs, "load_weights", "weights", function="build",
    ...                     convert=lambda load: "preset" if load else None)
    >>> kwargs, caught[0].category.__name__
    ({'weights': None}, 'DeprecationWarning')
    >>> renamed_keyword({"load_weights": True, "weights": None}, "load_weights", "weights",
    ...                 function="build")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    keras_transfer.errors.BadInputError: build(): got both load_weights= and weights=; ...
    """
    if old not in kwargs:
        return
    if new_given or new in kwargs:
        raise BadInputError(f"{function}(): got both {old}= and {new}=; pass only {new}= "
                            f"({old}= is deprecated).")
    value = kwargs.pop(old)
    warnings.warn(f"{function}({old}=...) is deprecated; use {new}= instead.",
                  DeprecationWarning, stacklevel=stacklevel + 1)
    kwargs[new] = convert(value) if convert is not None else value


def renamed_keywords(**renames: Rename) -> Callable[[Function], Function]:
    """Decorates a function so that each old keyword (``old=new`` or ``old=(new, convert)``)
    still works, with a `DeprecationWarning` at the caller's line.

    The function's signature (and `inspect.signature`) shows only the new names.

    Example:
    >>> @renamed_keywords(trainable_layers="trainable_blocks")
    ... def build(*, trainable_blocks="all"):
    ...     return trainable_blocks
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     build(trainable_layers=2)
    2
    """
    table = {old: (rename, None) if isinstance(rename, str) else rename
             for old, rename in renames.items()}

    def decorate(function: Function) -> Function:
        positional = [name for name, parameter in inspect.signature(function).parameters.items()
                      if parameter.kind in (parameter.POSITIONAL_ONLY,
                                            parameter.POSITIONAL_OR_KEYWORD)]

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            given = set(positional[:len(args)])  # e.g. the new name passed positionally
            for old, (new, convert) in table.items():
                # stacklevel 2 from here: wrapper → the caller of the decorated function.
                renamed_keyword(kwargs, old, new, function=function.__name__, convert=convert,
                                new_given=new in given, stacklevel=2)
            return function(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


# Modules that moved when the layout was regrouped by concern (0.2): old import path → new.
MOVED_MODULES = {
    "keras_transfer.evaluate": "keras_transfer.evaluation.classification",
    "keras_transfer.report_metrics": "keras_transfer.evaluation.metrics",
    "keras_transfer.segmentation_metrics": "keras_transfer.evaluation.segmentation",
    "keras_transfer.plots": "keras_transfer.evaluation.plots",
    "keras_transfer.cli": "keras_transfer.commands.cli",
    "keras_transfer.jobs": "keras_transfer.commands.image_job",
    "keras_transfer.lr_find_job": "keras_transfer.commands.lr_find_job",
    "keras_transfer.text.tiny": "keras_transfer.testing.tiny_text",
}


class _MovedModuleLoader(importlib.abc.Loader):
    """Hands back the module at its new path; the old name becomes an alias of it."""

    def __init__(self, new_name: str):
        self.new_name = new_name

    def create_module(self, spec):
        module = importlib.import_module(self.new_name)
        self.own_spec = module.__spec__
        return module

    def exec_module(self, module) -> None:
        # Already executed; importlib set the alias's spec on it: give it back its own.
        module.__spec__ = self.own_spec


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Resolves an old module path in `MOVED_MODULES` to its new module, with one warning.

    Example:
    >>> import warnings
    >>> with warnings.catch_warnings(record=True):
    ...     warnings.simplefilter("always")
    ...     import keras_transfer.plots as old
    >>> import keras_transfer.evaluation.plots as new
    >>> old is new
    True
    """

    def find_spec(self, fullname: str, path=None, target=None):
        new_name = MOVED_MODULES.get(fullname)
        if new_name is None:
            return None
        warnings.warn(f"{fullname} moved to {new_name}; the old path will be removed in 0.3.",
                      DeprecationWarning, stacklevel=2)
        return importlib.machinery.ModuleSpec(fullname, _MovedModuleLoader(new_name))


def install_moved_module_finder() -> None:
    """Lets old module paths import (idempotent; `import keras_transfer` calls it)."""
    if not any(isinstance(finder, MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())
