"""The cell kinds, one module each; a suite's `kind = "..."` names one of `KINDS`.

Adding a kind is one module with a `Cell` subclass (`scalegym.suites.schema`) and one line here;
`spec`, `runner`, `report`, `plots` and `readme_tables` read this registry and never branch on a
kind.
"""

from __future__ import annotations

from scalegym.suites.cells.bench import BenchCell
from scalegym.suites.cells.scaling import ScalingCell
from scalegym.suites.cells.search import SearchCell
from scalegym.suites.cells.timestep import TimestepCell
from scalegym.suites.cells.train import TrainCell
from scalegym.suites.schema import Cell

KINDS: dict[str, type[Cell]] = {
    cls.kind: cls for cls in (BenchCell, TrainCell, ScalingCell, TimestepCell, SearchCell)
}


def register_kind(cls: type[Cell]) -> type[Cell]:
    """Add a cell kind (a `Cell` subclass with its own `kind`); returns it, so it can decorate."""
    if cls.kind in KINDS and KINDS[cls.kind] is not cls:
        raise ValueError(f"cell kind {cls.kind!r} is already registered")
    KINDS[cls.kind] = cls
    return cls


__all__ = ["KINDS", "BenchCell", "ScalingCell", "SearchCell", "TimestepCell", "TrainCell"]
