"""The one "unknown field X; allowed: ..." check, for params, overrides, configs and suite files."""

from __future__ import annotations

import difflib
import numbers
from collections.abc import Iterable, Mapping
from typing import Any


def unknown_fields(given: Iterable[str], allowed: Iterable[str]) -> list[str]:
    """Names in `given` that are not in `allowed`, sorted."""
    return sorted(set(given) - set(allowed))


def unknown_field_message(where: str, unknown: Iterable[str], allowed: Iterable[str]) -> str:
    """`where: unknown field(s) "a", "b" (did you mean "x"?); allowed: p, q` (quotes as TOML)."""
    unknown, allowed = sorted(unknown), sorted(allowed)
    plural = "s" if len(unknown) > 1 else ""
    quoted = lambda items: ", ".join(f'"{item}"' for item in items)
    names = quoted(unknown)
    close = [
        match
        for name in unknown
        for match in difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
    ]
    hint = f" (did you mean {quoted(close)}?)" if close else ""
    return f"{where}: unknown field{plural} {names}{hint}; allowed: {', '.join(allowed) or 'none'}"


def check_fields(where: str, given: Iterable[str], allowed: Iterable[str]) -> None:
    """Raise ValueError naming every field of `given` that `allowed` lacks, and the allowed ones."""
    allowed = list(allowed)
    unknown = unknown_fields(given, allowed)
    if unknown:
        raise ValueError(unknown_field_message(where, unknown, allowed))


def dataclass_fields(obj: object) -> list[str]:
    """The field names of a (flax or standard) dataclass instance or class."""
    return list(getattr(obj, "__dataclass_fields__", {}))


def same_kind(default: Any, value: Any) -> bool:
    """Whether `value` can stand where `default` does: bools only for bools, any real number for
    a float, a list for a tuple, else the default's own type (an int for an int)."""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, numbers.Real)
    if isinstance(default, int):
        return isinstance(value, numbers.Integral)
    if isinstance(default, tuple):
        return isinstance(value, tuple | list)
    return isinstance(value, type(default))


def kind_problems(where: str, values: Mapping[str, Any], defaults: object) -> list[str]:
    """One line per value whose kind differs from the default's (field, expected, got)."""
    problems = []
    for name, value in values.items():
        default = getattr(defaults, name, None)
        if _is_plain(default) and not same_kind(default, value):
            kind = type(default).__name__
            problems.append(
                f'{where}: field "{name}" expects {kind} like {default!r}, got {value!r}'
            )
    return problems


def check_kinds(where: str, values: Mapping[str, Any], defaults: object) -> None:
    """Raise ValueError listing every value of the wrong kind (see `kind_problems`)."""
    problems = kind_problems(where, values, defaults)
    if problems:
        raise ValueError("; ".join(problems))


def _is_plain(value: Any) -> bool:
    return isinstance(value, bool | int | float | str | tuple)


class ParamError(ValueError):
    """A value of a params, config or planner field outside what it allows."""


def is_int(value: Any, minimum: float | None = None) -> bool:
    """An integer (numpy's too, never a bool: TOML's and Python's `True` is no count) >= minimum."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    return ok and (minimum is None or value >= minimum)


def is_number(value: Any) -> bool:
    """A real number that is not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def require(ok: bool, owner: str, field: str, value: Any, allowed: str) -> None:
    """Raise ParamError `owner: param field=value is invalid; allowed: ...` unless `ok`."""
    if not ok:
        raise ParamError(f"{owner}: param {field}={value!r} is invalid; allowed: {allowed}")
