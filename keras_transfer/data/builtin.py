"""Built-in datasets by name: ``load_builtin("elpv")``."""

from __future__ import annotations

import functools
from typing import Any, Callable

from keras_transfer.data.dataset import ImageDataset
from keras_transfer.data.elpv import load_elpv
from keras_transfer.errors import BadInputError

_BUILTINS: dict[str, Callable[..., ImageDataset]] = {
    "elpv": functools.partial(load_elpv, "4class"),
    "elpv_binary": functools.partial(load_elpv, "binary"),
}


def builtin_names() -> list[str]:
    """Names `load_builtin` accepts.

    Example:
    >>> builtin_names()
    ['elpv', 'elpv_binary']
    """
    return sorted(_BUILTINS)


def register_builtin(
    name: str, loader: Callable[..., ImageDataset], *, overwrite: bool = False
) -> None:
    """Adds a named dataset loader (a function returning an `ImageDataset` / `TextDataset`).

    Example:
    >>> register_builtin("elpv_small", lambda **kw: load_elpv(image_size=(64, 64), **kw))
    >>> "elpv_small" in builtin_names()
    True
    >>> del _BUILTINS["elpv_small"]  # tidy up for the other examples
    """
    if name in _BUILTINS and not overwrite:
        raise BadInputError(f"built-in dataset {name!r} already exists (pass overwrite=True).")
    _BUILTINS[name] = loader


def load_builtin(name: str, **kwargs: Any) -> ImageDataset:
    """Loads a built-in dataset; keyword arguments go to its loader (e.g. `load_elpv`).

    Example:
    >>> data = load_builtin("elpv", image_size=(96, 96), batch_size=64)  # doctest: +SKIP
    >>> data.sizes  # doctest: +SKIP
    {'train': 1968, 'test': 656}
    """
    try:
        loader = _BUILTINS[name]
    except KeyError:
        raise BadInputError(
            f"unknown built-in dataset {name!r}; known: {builtin_names()}. For your own images use "
            "from_folder / from_csv / from_tfds."
        ) from None
    return loader(**kwargs)
