"""Renamed keyword arguments: the old spelling keeps working for a while, with a warning.

`renamed_keywords` decorates a function whose keywords were renamed (``load_weights=`` →
``weights=``): a call with an old name gets one `DeprecationWarning` per old name, pointing at
the caller's line, and the value (translated where the meaning changed shape) goes to the new
keyword. Passing both spellings is a mistake and raises `BadInputError`.
"""

from __future__ import annotations

import functools
import inspect
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
