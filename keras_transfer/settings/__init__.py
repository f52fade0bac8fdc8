"""Declarative checks of a settings dataclass: types from its hints, ranges and choices as data.

A job's settings come from Python, command-line flags or a JSON/YAML file. `check_settings`
checks every field of a dataclass instance against its type hint (``int``, ``float``, ``str``,
``bool``, ``X | None``, ``tuple[X, ...]``) and a `Rule` (range, choices, a custom check), plus
`Together` rules across fields, and raises one `BadInputError` listing every bad setting with
the values it accepts: run it before any data is read.

Types are strict. A quoted number in a config file (``"image_size": "64"``) is a string and is
rejected (a JSON/YAML file carries numbers unquoted); ``True`` is not an integer; an integer is
a valid float. Config files may give a list where a tuple is expected, and a single name where
a tuple of names is (`coerce_settings`): ``quantization: int8`` means ``("int8",)``.

Example:
>>> import dataclasses
>>> @dataclasses.dataclass
... class Run:
...     epochs: int = 3
...     rate: float = 0.1
>>> rules = {"epochs": Rule(min=0), "rate": Rule(above=0)}
>>> check_settings(Run(epochs=-1, rate=0), rules)
Traceback (most recent call last):
...
keras_transfer.errors.BadInputError: 2 invalid settings: epochs=-1: expected an integer >= 0; rate=0: expected a number > 0.

The checks live in three modules, all re-exported here: `keras_transfer.settings.checks` (types,
`Rule`, `Together`, config-file coercion), `keras_transfer.settings.names` (nearest-name
suggestions) and `keras_transfer.settings.rules` (rules the job configs share).
"""

from __future__ import annotations

from keras_transfer.settings.checks import (
    Check,
    Rule,
    Together,
    check_settings,
    coerce_settings,
    setting_problems,
    unknown_settings,
)
from keras_transfer.settings.names import close_names, did_you_mean, normalize_name
from keras_transfer.settings.rules import (
    FITS_BACKBONE,
    FRACTION,
    SEED,
    TRAINING_RULES,
    backbone_problem,
    image_fits_backbone,
    symmetries_problem,
)

__all__ = [
    "FITS_BACKBONE", "FRACTION", "SEED", "TRAINING_RULES", "Check", "Rule", "Together", "backbone_problem",
    "check_settings", "close_names", "coerce_settings", "did_you_mean", "image_fits_backbone",
    "normalize_name", "setting_problems", "symmetries_problem", "unknown_settings",
]
