"""The settings checks themselves: a field's type from its hint, then its `Rule`, then the
`Together` rules across fields (re-exported by `keras_transfer.settings`, which explains them).

Example:
>>> import dataclasses
>>> @dataclasses.dataclass
... class Run:
...     size: int | None = None
>>> setting_problems(Run(size="64"), {"size": Rule(min=1)})
["size='64': expected an integer >= 1 or None (got a string: write numbers without quotes)"]
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing
from typing import Any, Callable, Mapping, Sequence

from keras_transfer.errors import BadInputError
from keras_transfer.settings.names import close_names, did_you_mean

# A setting's problem, or None when it is fine.
Check = Callable[[Any], "str | None"]


@dataclasses.dataclass(frozen=True)
class Rule:
    """What one setting accepts beyond its type hint (for a tuple: what each item accepts).

    ``min``/``max`` are inclusive bounds, ``above``/``below`` exclusive ones; ``choices`` lists
    the accepted values; ``check`` returns what is wrong with a value (or None) for rules that
    are not a range or a list, e.g. a symmetry set parsed by its own function.

    Example:
    >>> Rule(min=0, below=1).describe("a number")
    'a number in [0, 1)'
    """

    min: float | None = None
    max: float | None = None
    above: float | None = None
    below: float | None = None
    choices: Sequence[Any] | None = None
    check: Check | None = None
    nonempty: bool = False  # for a tuple: at least one item

    def describe(self, kind: str) -> str:
        """The accepted values of this kind, in words.

        Example:
        >>> Rule(choices=("a", "b")).describe("a string")
        "one of 'a', 'b'"
        """
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        low = (f"[{_number(self.min)}" if self.min is not None else
               f"({_number(self.above)}" if self.above is not None else None)
        high = (f"{_number(self.max)}]" if self.max is not None else
                f"{_number(self.below)})" if self.below is not None else None)
        if low and high:
            return f"{kind} in {low}, {high}"
        if low:
            return f"{kind} {'>=' if low[0] == '[' else '>'} {low[1:]}"
        if high:
            return f"{kind} {'<=' if high[-1] == ']' else '<'} {high[:-1]}"
        return kind

    def problem(self, value: Any) -> str | None:
        """What is wrong with a value of the right type, or None.

        Example:
        >>> Rule(min=1).problem(0), Rule(min=1).problem(2)
        ('out of range', None)
        """
        if self.choices is not None and value not in self.choices:
            return "not a choice"
        if not _in_range(self, value):
            return "out of range"
        return self.check(value) if self.check is not None else None


@dataclasses.dataclass(frozen=True)
class Together:
    """A rule across settings, checked once each of them is fine on its own.

    ``check`` gets the fields' values in order and returns what is wrong, or None.

    Example:
    >>> rule = Together(("low", "high"), lambda a, b: None if a < b else "expected low < high")
    >>> rule.problem({"low": 2, "high": 1})
    'low=2, high=1: expected low < high'
    """

    fields: tuple[str, ...]
    check: Callable[..., "str | None"]

    def problem(self, values: Mapping[str, Any]) -> str | None:
        """The message naming the settings and their values when the check fails, else None.

        Example:
        >>> Together(("a",), lambda a: None).problem({"a": 1}) is None
        True
        """
        found = self.check(*(values[name] for name in self.fields))
        if found is None:
            return None
        named = ", ".join(f"{name}={values[name]!r}" for name in self.fields)
        return f"{named}: {found.rstrip('.')}"


def check_settings(config: Any, rules: Mapping[str, Rule], together: Sequence[Together] = ()
                   ) -> None:
    """Raises one `BadInputError` naming every bad setting of a dataclass instance.

    Each field is checked against its type hint and its rule in ``rules`` (fields without a
    rule: their type only); each `Together` rule runs when its fields passed on their own.

    Example:
    >>> import dataclasses
    >>> @dataclasses.dataclass
    ... class Export:
    ...     quantization: tuple[str, ...] = ("float32",)
    ...     size: int | None = None
    >>> rules = {"quantization": Rule(choices=("float32", "int8")), "size": Rule(min=1)}
    >>> check_settings(Export(quantization=("int4",), size="64"), rules)
    Traceback (most recent call last):
    ...
    keras_transfer.errors.BadInputError: 2 invalid settings: quantization=('int4',): expected a list of any of 'float32', 'int8'; size='64': expected an integer >= 1 or None (got a string: write numbers without quotes).
    """
    problems = setting_problems(config, rules, together)
    if len(problems) == 1:
        raise BadInputError(problems[0] + ".")
    if problems:
        raise BadInputError(f"{len(problems)} invalid settings: " + "; ".join(problems) + ".")


def setting_problems(config: Any, rules: Mapping[str, Rule], together: Sequence[Together] = ()
                     ) -> list[str]:
    """One message per bad setting (empty when every setting is fine).

    Example:
    >>> import dataclasses
    >>> @dataclasses.dataclass
    ... class Run:
    ...     epochs: int = 1
    >>> setting_problems(Run(epochs=True), {})
    ['epochs=True: expected an integer (got a boolean)']
    """
    hints = typing.get_type_hints(type(config))
    values = {field.name: getattr(config, field.name) for field in dataclasses.fields(config)}
    problems, good = [], set()
    for name, value in values.items():
        problem = _field_problem(name, value, hints.get(name, Any), rules.get(name, Rule()))
        if problem:
            problems.append(problem)
        else:
            good.add(name)
    for rule in together:
        if good.issuperset(rule.fields):
            problems.append(rule.problem(values))
    return [problem for problem in problems if problem]


def coerce_settings(cls: type, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Settings read from a file or flags, with lists as tuples and a lone name as a 1-tuple
    where the dataclass `cls` declares ``tuple[...]`` (anything else is left for the checks).

    Example:
    >>> import dataclasses
    >>> @dataclasses.dataclass
    ... class Export:
    ...     quantization: tuple[str, ...] = ("float32",)
    ...     hidden_units: tuple[int, ...] = ()
    >>> coerce_settings(Export, {"quantization": "int8", "hidden_units": [64]})
    {'quantization': ('int8',), 'hidden_units': (64,)}
    """
    hints = typing.get_type_hints(cls)
    coerced = dict(settings)
    for name, value in settings.items():
        if _tuple_item(hints.get(name)) is None:
            continue
        if isinstance(value, list):
            coerced[name] = tuple(value)
        elif isinstance(value, (str, numbers.Number)) and not isinstance(value, bool):
            coerced[name] = (value,)  # `quantization: int8` means the one-element tuple
    return coerced


def unknown_settings(cls: type, names: Sequence[str], source: str) -> str | None:
    """The error text for setting names `cls` does not have (with the nearest names), or None.

    Example:
    >>> import dataclasses
    >>> @dataclasses.dataclass
    ... class Run:
    ...     epochs: int = 1
    >>> unknown_settings(Run, ["epoch"], "run.yaml")
    "run.yaml: unknown setting(s) ['epoch'] (did you mean 'epochs'?); known: ['epochs']."
    """
    known = sorted(field.name for field in dataclasses.fields(cls))
    unknown = sorted(set(names) - set(known))
    if not unknown:
        return None
    near = [match for name in unknown for match in close_names(name, known, 1)]
    hint = f" (did you mean {', '.join(repr(n) for n in near)}?)" if near else ""
    return f"{source}: unknown setting(s) {unknown}{hint}; known: {known}."

# What a value of each type is called in messages.
_KINDS = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
          type(None): "None"}


def _field_problem(name: str, value: Any, hint: Any, rule: Rule) -> str | None:
    members = _members(hint)
    expected = " or ".join(_expected(member, rule) for member in members)
    matched = [member for member in members if _matches(value, member)]
    if not matched:
        return f"{name}={value!r}: expected {expected} ({_got(value)})"
    if value is None:
        return None
    problem = _value_problem(value, matched[0], rule)
    if problem is None:
        return None
    if problem in ("out of range", "not a choice"):
        hint_text = did_you_mean(value, rule.choices) if isinstance(value, str) and rule.choices else ""
        return f"{name}={value!r}: expected {expected}{hint_text}"
    return f"{name}={value!r}: {problem.rstrip('.')}"


def _value_problem(value: Any, member: Any, rule: Rule) -> str | None:
    item = _tuple_item(member)
    if item is None:
        return rule.problem(value)
    if rule.nonempty and not value:
        return "not a choice"
    for each in value:
        problem = rule.problem(each)
        if problem:
            return problem
    return None


def _members(hint: Any) -> list[Any]:
    """The alternatives of a hint, None last (``int | None`` -> [int, NoneType])."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        members = list(typing.get_args(hint))
        return sorted(members, key=lambda member: member is type(None))
    return [hint]


def _tuple_item(hint: Any) -> Any:
    """X for ``tuple[X, ...]`` (also inside ``| None``), else None."""
    for member in _members(hint) if hint is not None else []:
        if typing.get_origin(member) is tuple:
            args = typing.get_args(member)
            return args[0] if args else Any
    return None


def _matches(value: Any, hint: Any) -> bool:
    item = _tuple_item(hint)
    if item is not None:
        return isinstance(value, (tuple, list)) and all(_matches(v, item) for v in value)
    if hint is Any:
        return True
    if hint is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):  # True is not an integer setting
        return False
    if hint is int:
        return isinstance(value, numbers.Integral)
    if hint is float:
        return isinstance(value, numbers.Real) and math.isfinite(value)
    return isinstance(value, hint) if isinstance(hint, type) else True


def _expected(hint: Any, rule: Rule) -> str:
    item = _tuple_item(hint)
    if item is not None:
        kind = _KINDS.get(item, "value").split(" ", 1)[-1] + "s"
        accepted = ("a list of any of " + ", ".join(repr(c) for c in rule.choices)
                    if rule.choices is not None else "a list of " + rule.describe(kind))
        return ("a non-empty " + accepted[2:]) if rule.nonempty else accepted
    kind = _KINDS.get(hint, getattr(hint, "__name__", str(hint)))
    if hint in (bool, type(None)):
        return kind
    if hint is str and rule.choices is None:
        return kind
    return rule.describe(kind)


def _got(value: Any) -> str:
    if isinstance(value, str):
        number = _is_number(value)
        if value.strip().lower() in ("none", "null"):
            return "got a string: write null, unquoted, for None in a config file"
        return "got a string" + (": write numbers without quotes" if number else "")
    if isinstance(value, float) and not math.isfinite(value):
        return "got a non-finite number"
    kinds = {bool: "a boolean", int: "an integer", float: "a decimal number",
             list: "a list", tuple: "a list", dict: "a mapping"}
    return "got " + next((kind for cls, kind in kinds.items() if isinstance(value, cls)),
                         type(value).__name__)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _in_range(rule: Rule, value: Any) -> bool:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return True
    return ((rule.min is None or value >= rule.min) and (rule.max is None or value <= rule.max)
            and (rule.above is None or value > rule.above)
            and (rule.below is None or value < rule.below))


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
