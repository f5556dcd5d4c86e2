"""The one "unknown field X; allowed: ..." check, for params, overrides, configs and suite files."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


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
