"""Nearest-name suggestions for a misspelt setting, backbone or choice ("did you mean ...?").

Example:
>>> did_you_mean("resnet-50", ["resnet50", "vgg16"])
" (did you mean 'resnet50'?)"
"""

from __future__ import annotations

import difflib
from typing import Sequence


def close_names(value: str, choices: Sequence[str], n: int = 3) -> list[str]:
    """The choices closest to a misspelt name: the one equal to it ignoring case and
    ``-``/``_``/``.``/spaces, else up to `n` near ones (difflib); empty when none is close.

    Example:
    >>> close_names("Resnet-50", ["resnet50", "resnet101", "vgg16"])
    ['resnet50']
    """
    keys = {normalize_name(choice): choice for choice in choices}
    key = normalize_name(value)
    if key in keys:
        return [keys[key]]
    return [keys[match] for match in difflib.get_close_matches(key, list(keys), n, 0.75)]


def did_you_mean(value: str, choices: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choices (`close_names`), or empty.

    Example:
    >>> did_you_mean("Default", ["default", "long"])
    " (did you mean 'default'?)"
    """
    found = close_names(value, choices)
    return f" (did you mean {' or '.join(repr(name) for name in found)}?)" if found else ""


def normalize_name(name: str) -> str:
    """A name lowercased without ``-``, ``_``, ``.`` or spaces, to compare spellings.

    Example:
    >>> normalize_name("EfficientNet-B0")
    'efficientnetb0'
    """
    return "".join(ch for ch in str(name).lower() if ch not in "-_. ")
