"""What every cell kind builds on: field rules, the `Cell` base, and the context a cell runs in.

A cell kind is one module of `scalegym.suites.cells`: a frozen dataclass subclassing `Cell` that
declares its `kind`, its field `rules` and its report `title`, and overrides the hooks it needs:
checks on the parsed values (`problems`), checks that build its envs (`env_problems`), the work
(`run`), and what its record shows (`summary_row`, `line`, `report_section`, `figure`,
`readme_table`). The hooks that read records are static: a report is rebuilt from results.jsonl
without the suite file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from scalegym.core.fields import is_int, is_number, unknown_field_message

if TYPE_CHECKING:
    from scalegym.core.resolve import ResolvedEnv

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+$")  # cell and suite names become directory names
INHERIT = object()  # a default meaning "the [suite] table's value of the same name"
Record = dict[str, Any]  # one line of results.jsonl


class SuiteError(ValueError):
    """A suite that cannot run; `errors` holds one message per problem (file, table, field)."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


class PartialCellError(RuntimeError):
    """A cell that failed after finishing part of its work; `result` holds that part."""

    def __init__(self, message: str, result: dict[str, Any]) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class Rule:
    """How one field of a table is checked: its type, whether required, its default and range."""

    type: str  # "int", "float", "str", "int_list", "num_list", "str_or_str_list", "table"
    required: bool = False
    default: Any = None
    minimum: float | None = None
    allowed: tuple[str, ...] | None = None


COMMON_RULES = {
    "name": Rule("str", required=True),
    "kind": Rule("str", required=True),
    "env": Rule("str", required=True),
    "env_params": Rule("table", default={}),
}
SUITE_RULES = {
    "name": Rule("str", required=True),
    "description": Rule("str", default=""),
    "seeds": Rule("int", default=1, minimum=1),
    "seed": Rule("int", default=0, minimum=0),
    # Shipped suites whose cells this suite runs first, named "<suite>.<cell>" (the `full` suite)
    "include": Rule("str_or_str_list", default=()),
    # Modules that register the suite's own envs, imported before any env id is looked up.
    "imports": Rule("str_or_str_list", default=()),
}


class EnvCache:
    """Each env id looked up once and each (id, params) built once: a suite's validation builds
    every env its cells will run, and a cell run in the same process takes the same object
    (`CellContext.resolved`); another params set of an id already seen is built from that
    lookup (`LocatedEnv.resolve`), not looked up again."""

    def __init__(self) -> None:
        self._built: dict[str, Any] = {}  # key -> ResolvedEnv, or the error it raised
        self._located: dict[str, Any] = {}  # env id -> the LocatedEnv of its first build

    def get(self, env_id: str, params: dict[str, Any]) -> ResolvedEnv:
        """The `ResolvedEnv` of `env_id` with `params`; raises what resolving raised."""
        key = repr((env_id, sorted(params.items())))
        if key not in self._built:
            from scalegym.core.resolve import resolve_env

            try:
                located = self._located.get(env_id)
                built = located.resolve(params) if located else resolve_env(env_id, **params)
                self._located.setdefault(env_id, built.located)
                self._built[key] = built
            except (ValueError, TypeError, ImportError) as err:
                self._built[key] = err
        built = self._built[key]
        if isinstance(built, Exception):
            raise built
        return built

    def failure(self, env_id: str, params: dict[str, Any]) -> str | None:
        """Why `env_id` cannot be built with `params`; None when it can."""
        try:
            self.get(env_id, params)
        except (ValueError, TypeError, ImportError) as err:
            return str(err)
        return None


@dataclass(frozen=True)
class CellContext:
    """Where one cell writes, and how it reports the fraction of its work done."""

    run_dir: Path
    tb_dir: Path  # tb/<cell>/
    checkpoint_dir: Path  # checkpoints/<cell>/
    resuming: bool  # the run is being resumed: a checkpoint of this cell may be continued
    advance: Callable[[float], None]  # fraction of the cell done, 0..1
    devices: int | None = None  # local devices a training's env batch is split over (None: all)
    envs: EnvCache = field(default_factory=EnvCache)  # the suite's resolved envs

    @classmethod
    def checks(cls) -> CellContext:
        """The context validation builds requests in: no run directory, and one device (the
        split over `--devices` is checked by the command that knows it)."""
        return cls(Path(), Path(), Path(), resuming=False, advance=lambda done: None, devices=1)

    def resolved(self, env_id: str, params: dict[str, Any]) -> ResolvedEnv:
        """The `ResolvedEnv` the suite's validation built (resolved here when it did not)."""
        return self.envs.get(env_id, params)


@dataclass(frozen=True)
class Cell:
    """Fields every cell has; `index` is its position among the file's [[cell]] tables."""

    index: int
    name: str
    env: str
    env_params: dict[str, Any]

    kind: ClassVar[str] = "cell"
    rules: ClassVar[dict[str, Rule]] = {}  # the kind's own fields (COMMON_RULES come first)
    title: ClassVar[str] = ""  # the report.md heading of the kind's section

    # ---- the suite file: checks before any work
    @classmethod
    def problems(cls, values: dict[str, Any], where: str) -> list[str]:
        """Cross-field problems of the checked `values` (may normalise a value in place)."""
        return []

    def env_problems(self, where: str, envs: EnvCache) -> list[str]:
        """Why the cell's envs cannot be built as the run will build them."""
        return base_env_problems(self, where, envs)

    @classmethod
    def suite_problems(cls, cells: list[Cell], path: str) -> list[str]:
        """Problems between this kind's cells and the others of the suite (references)."""
        return []

    def included_from(self, suite: str) -> Cell:
        """This cell as included by another suite: renamed "<suite>.<cell>"."""
        from dataclasses import replace

        return replace(self, name=f"{suite}.{self.name}")

    def reads(self) -> list[str]:
        """Names of earlier cells whose files this cell reads (Ray ships them with the task)."""
        return []

    # ---- the work
    def run(self, context: CellContext) -> dict[str, Any]:
        raise NotImplementedError(f"cell kind {self.kind!r} has no run")

    # ---- its record, read back from results.jsonl
    @staticmethod
    def summary_row(result: dict[str, Any]) -> dict[str, Any]:
        """summary.csv columns this kind fills from an ok record's result."""
        return {}

    @staticmethod
    def line(result: dict[str, Any]) -> str:
        """The key numbers of a finished cell, for the progress line ("" for none)."""
        return ""

    @staticmethod
    def report_section(records: list[Record], manifest: dict[str, Any]) -> list[str]:
        """report.md lines for this kind's records (ok ones, or with a partial result)."""
        return []

    @staticmethod
    def figure(plt: Any, record: Record) -> Any:
        """The cell's figure (plots/<cell>.png), or None."""
        return None

    @staticmethod
    def joint_figures(plt: Any, records: list[Record]) -> list[tuple[str, Any]]:
        """(name, figure) of figures that set several of this kind's cells side by side."""
        return []

    @staticmethod
    def readme_table(records: list[Record], **options: Any) -> list[str]:
        """README.md table lines for this kind's records of a reference run."""
        return []


def where(index: int, name: str | None) -> str:
    return f'cell[{index}] "{name}"' if name is not None else f"cell[{index}]"


def check_table(
    table: dict[str, Any], rules: dict[str, Rule], at: str, errors: list[str]
) -> dict[str, Any]:
    """Checked values of `table` with defaults filled in; problems go to `errors`."""
    for key in table:
        if key not in rules:
            errors.append(unknown_field_message(at, [key], rules))
    values: dict[str, Any] = {}
    for key, rule in rules.items():
        if key not in table:
            if rule.required:
                errors.append(f'{at}: missing field "{key}" ({describe(rule)})')
            else:
                default = rule.default
                values[key] = dict(default) if isinstance(default, dict) else default
            continue
        value, problem = check_value(table[key], rule)
        if problem:
            errors.append(f'{at}: field "{key}": {problem}')
        else:
            values[key] = value
    return values


def check_value(value: Any, rule: Rule) -> tuple[Any, str | None]:
    """(the value as the cell stores it, None) or (None, what is wrong with it)."""
    expected = f"expected {describe(rule)}, got {type(value).__name__} {value!r}"
    if rule.type == "int":  # TOML's true is not a count
        return (value, None) if is_int(value, rule.minimum) else (None, expected)
    if rule.type == "float":
        return (float(value), None) if is_number(value) else (None, expected)
    if rule.type == "str":
        if not isinstance(value, str):
            return None, expected
        if rule.allowed is not None and value not in rule.allowed:
            return None, f'"{value}" is not allowed; allowed: {", ".join(rule.allowed)}'
        return value, None
    if rule.type in ("int_list", "num_list"):
        fits = (lambda v: is_int(v, rule.minimum)) if rule.type == "int_list" else is_number
        ok = isinstance(value, list) and value and all(map(fits, value))
        return (tuple(value), None) if ok else (None, expected)
    if rule.type == "str_or_str_list":
        names = [value] if isinstance(value, str) else value
        ok = isinstance(names, list) and names and all(isinstance(v, str) for v in names)
        return (tuple(names), None) if ok else (None, expected)
    if rule.type == "table":
        if not isinstance(value, dict):
            return None, expected
        # TOML has arrays but no tuples; configs hold tuples (hashable, static under jit).
        return {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()}, None
    raise AssertionError(f"unknown rule type {rule.type}")


def describe(rule: Rule) -> str:
    if rule.allowed is not None:
        return f"one of {', '.join(rule.allowed)}"
    bound = "" if rule.minimum is None else f" >= {rule.minimum:g}"
    return {
        "int": f"an integer{bound}",
        "float": "a number",
        "str": "a string",
        "int_list": f"a non-empty list of integers{bound}",
        "num_list": "a non-empty list of numbers",
        "str_or_str_list": "a string or a non-empty list of strings",
        "table": "a table of field = value",
    }[rule.type]


def threshold_problems(
    threshold: float | None, on_field: str, values: dict[str, Any], at: str
) -> list[str]:
    """A threshold a success rate can never reach or miss, or an exact tolerance <= 0."""
    on = values[on_field]
    if threshold is None or (on == "success" and 0.0 <= threshold <= 1.0):
        return []
    if on == "success":
        reason = "can never be reached or missed by a success rate"
        allowed = f'allowed with {on_field} = "success": 0.0..1.0'
    elif on == "exact" and not threshold > 0.0:
        reason = "is the tolerance on V* - V(pi)"
        allowed = f'allowed with {on_field} = "exact": > 0'
    else:
        return []
    return [f'{at}: field "threshold": {threshold:g} {reason}; {allowed}']


def base_env_problems(cell: Cell, at: str, envs: EnvCache) -> list[str]:
    """The cell's env built with its `env_params`; an unknown id told apart from a bad param."""
    problem = envs.failure(cell.env, cell.env_params)
    if problem is None:
        return []
    # Only a bad param builds without the params.
    if cell.env_params and envs.failure(cell.env, {}) is None:
        return [f'{at}: field "env_params": {problem}']
    return [f'{at}: field "env": {problem}']
