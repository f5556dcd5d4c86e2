"""Suite files: the TOML schema, its validation, and `load_suite` for shipped names or paths."""

from __future__ import annotations

import hashlib
import itertools
import math
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from scalegym.agents import AGENTS
from scalegym.agents.budgets import CRITERIA, SCALING_AGENTS, UNITS, geometric_budgets
from scalegym.agents.ppo.config import override_problems
from scalegym.core.fields import unknown_field_message
from scalegym.suites.search import CELL_CHECKPOINT, referenced_cell
from scalegym.suites.search import PLANNERS as SEARCH_PLANNERS

# The planners of agents.planners.search: they count their simulated work (Decision.sim_work),
# which a timestep cell charges beside the real Hermite substeps.
WORK_PLANNERS = ("random-shooting", "cem", "beam")

THRESHOLD_METRICS = ("success", "return")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+$")  # cell and suite names become directory names
_INHERIT = object()  # default meaning "the [suite] table's value of the same name"


class SuiteError(ValueError):
    """A suite that cannot run; `errors` holds one message per problem (file, table, field)."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class Rule:
    """How one field of a table is checked: its type, whether required, its default and range."""

    type: str  # "int", "float", "str", "int_list", "num_list", "str_or_str_list", "table"
    required: bool = False
    default: Any = None
    minimum: float | None = None
    allowed: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Cell:
    """Fields every cell has; `index` is its position among the file's [[cell]] tables."""

    index: int
    name: str
    env: str
    env_params: dict[str, Any]

    kind = "cell"  # class attribute, not a field: set by each kind


@dataclass(frozen=True)
class BenchCell(Cell):
    """Env-only steps per second over batch sizes (`scalegym bench` inside a suite)."""

    batch_sizes: tuple[int, ...]
    steps: int
    repeats: int
    seed: int

    kind = "bench"


@dataclass(frozen=True)
class TrainCell(Cell):
    """An agent trained on an env for `steps` env steps per seed over `seeds` seeds."""

    agent: str
    steps: int
    seeds: int
    seed: int
    agent_params: dict[str, Any]
    threshold: float | None
    threshold_on: str

    kind = "train"


@dataclass(frozen=True)
class ScalingCell(Cell):
    """Steps (or episodes) to a threshold per seed, over values of the env field(s) `vary`."""

    agent: str
    vary: tuple[str, ...]  # env fields all set to each value
    values: tuple[float, ...]  # increasing, > 0; integral values are set as ints
    budgets: dict[str, int]  # start, stop, per_octave of `geometric_budgets`
    unit: str
    criterion: str
    threshold: float  # success/return: metric >= threshold; exact: V* - V(pi) <= threshold
    delta: float  # N-hat is the budget by which 1 - delta of the seeds pass
    theory_exponent: float | None
    seeds: int
    seed: int
    agent_params: dict[str, Any]

    kind = "scaling"

    def overrides(self, value: float) -> dict[str, Any]:
        """The env params of one value: `env_params` with every `vary` field set to it."""
        number = int(value) if float(value).is_integer() else float(value)
        return {**self.env_params, **dict.fromkeys(self.vary, number)}


@dataclass(frozen=True)
class TimestepCell(Cell):
    """PPO trained to choose an integrator's step, judged against every fixed action (ThreeBody)."""

    agent: str
    steps: int
    seeds: int
    seed: int
    agent_params: dict[str, Any]
    instances: int  # evaluation instance seeds 0..instances-1
    # Training instance seeds instances..instances+validation_instances-1, disjoint from the
    # evaluation seeds, on which one PPO seed is selected (0: no selection).
    validation_instances: int
    eval_steps: int  # env steps per evaluation episode
    eval_params: dict[str, Any]  # env params at evaluation (training uses env_params)
    baseline_actions: tuple[int, ...]  # fixed actions judged beside PPO; () = all
    aarseth_actions: tuple[int, ...]  # fixed η of ThreeBodyAarseth-v0 also judged (not verdict)
    transfer: tuple[str, ...]  # REBOUND integrators the first seed's policy is run on
    transfer_instances: int
    planner: str  # "" none; else a search planner judged on the same instances (not verdict)
    planner_budgets: tuple[int, ...]  # its budgets (simulated env steps per decision)
    planner_params: dict[str, Any]

    kind = "timestep"


@dataclass(frozen=True)
class SearchCell(Cell):
    """A planner's return against its budget (simulated env steps per decision)."""

    planner: str
    budgets: tuple[int, ...]  # increasing
    planner_params: dict[str, Any]
    checkpoint: str  # a `scalegym train` run directory: gumbel-muzero's prior and value
    episodes: int  # per seed and budget
    max_steps: int | None  # per episode; None: the env's max_steps_in_episode
    seeds: int
    seed: int

    kind = "search"


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
}
# Each kind: its cell class and the rules of its own fields. Later kinds ("scaling", "search")
# add an entry here and a runner in `runner.CELL_RUNNERS`.
CELL_KINDS: dict[str, tuple[type[Cell], dict[str, Rule]]] = {
    "bench": (
        BenchCell,
        {
            "batch_sizes": Rule("int_list", required=True, minimum=1),
            "steps": Rule("int", default=256, minimum=1),
            "repeats": Rule("int", default=5, minimum=1),
            "seed": Rule("int", default=_INHERIT, minimum=0),
        },
    ),
    "train": (
        TrainCell,
        {
            "agent": Rule("str", required=True, allowed=AGENTS),
            "steps": Rule("int", required=True, minimum=1),
            "seeds": Rule("int", default=_INHERIT, minimum=1),
            "seed": Rule("int", default=_INHERIT, minimum=0),
            "agent_params": Rule("table", default={}),
            "threshold": Rule("float", default=None),
            "threshold_on": Rule("str", default="success", allowed=THRESHOLD_METRICS),
        },
    ),
    "scaling": (
        ScalingCell,
        {
            "agent": Rule("str", required=True, allowed=SCALING_AGENTS),
            "vary": Rule("str_or_str_list", required=True),
            "values": Rule("num_list", required=True),
            "budgets": Rule("table", required=True),
            "unit": Rule("str", default="steps", allowed=UNITS),
            "criterion": Rule("str", default="success", allowed=CRITERIA),
            "threshold": Rule("float", required=True),
            "delta": Rule("float", default=0.1),
            "theory_exponent": Rule("float", default=None),
            "seeds": Rule("int", default=_INHERIT, minimum=1),
            "seed": Rule("int", default=_INHERIT, minimum=0),
            "agent_params": Rule("table", default={}),
        },
    ),
}
CELL_KINDS["timestep"] = (
    TimestepCell,
    {
        "agent": Rule("str", required=True, allowed=("ppo",)),
        "steps": Rule("int", required=True, minimum=1),
        "seeds": Rule("int", default=_INHERIT, minimum=1),
        "seed": Rule("int", default=_INHERIT, minimum=0),
        "agent_params": Rule("table", default={}),
        "instances": Rule("int", default=100, minimum=1),
        "validation_instances": Rule("int", default=0, minimum=0),
        "eval_steps": Rule("int", default=300, minimum=1),
        "eval_params": Rule("table", default={}),
        "baseline_actions": Rule("int_list", default=(), minimum=0),
        "aarseth_actions": Rule("int_list", default=(), minimum=0),
        "transfer": Rule("str_or_str_list", default=()),
        "transfer_instances": Rule("int", default=10, minimum=1),
        "planner": Rule("str", default="", allowed=("", *WORK_PLANNERS)),
        "planner_budgets": Rule("int_list", default=(), minimum=1),
        "planner_params": Rule("table", default={}),
    },
)
CELL_KINDS["search"] = (
    SearchCell,
    {
        "planner": Rule("str", required=True, allowed=SEARCH_PLANNERS),
        "budgets": Rule("int_list", required=True, minimum=1),
        "planner_params": Rule("table", default={}),
        "checkpoint": Rule("str", default=""),
        "episodes": Rule("int", default=32, minimum=1),
        "max_steps": Rule("int", default=None, minimum=1),
        "seeds": Rule("int", default=_INHERIT, minimum=1),
        "seed": Rule("int", default=_INHERIT, minimum=0),
    },
)
BUDGET_RULES = {
    "start": Rule("int", required=True, minimum=1),
    "stop": Rule("int", required=True, minimum=1),
    "per_octave": Rule("int", required=True, minimum=1),
}


@dataclass(frozen=True)
class SuiteSpec:
    """A validated suite: its cells in file order and the hash of the file they came from."""

    name: str
    description: str
    path: str
    sha256: str
    seeds: int
    seed: int
    cells: tuple[Cell, ...]
    source: bytes = field(repr=False, compare=False)  # the file's bytes, copied into each run


def shipped_suites() -> list[str]:
    """Names of the suites that ship with scalegym (`scalegym/suites/*.toml`)."""
    folder = resources.files("scalegym.suites")
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_suite(name_or_path: str | Path, *, check_envs: bool = True) -> SuiteSpec:
    """Load and validate a shipped suite by name (`smoke`) or a suite file by path.

    Raises `SuiteError` listing every problem, each naming the file, the table and the field.
    `check_envs` also builds every cell's env with its `env_params` (cheap: no compilation).
    """
    text = str(name_or_path)
    path_like = isinstance(name_or_path, Path) or text.endswith(".toml") or "/" in text
    if path_like or "\\" in text or (text not in shipped_suites() and Path(text).is_file()):
        path = Path(name_or_path)
        if not path.is_file():
            raise SuiteError([f"{path}: no such suite file"])
        return parse_suite(path.read_bytes(), str(path), check_envs=check_envs)
    if text not in shipped_suites():
        shipped = ", ".join(shipped_suites())
        raise SuiteError(
            [f"unknown suite {text!r}; shipped suites: {shipped}; or give a path to a .toml file"]
        )
    resource = resources.files("scalegym.suites") / f"{text}.toml"
    return parse_suite(resource.read_bytes(), str(resource), check_envs=check_envs)


def parse_suite(source: bytes, path: str, *, check_envs: bool = True) -> SuiteSpec:
    """Validate the bytes of a suite file; `path` is only used in messages and the manifest."""
    try:
        data = tomllib.loads(source.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise SuiteError([f"{path}: not valid TOML: {err}"]) from None
    errors: list[str] = []
    for key in sorted(set(data) - {"suite", "cell"}):
        errors.append(f'{path}: top level: unknown table "{key}"; allowed: suite, cell')
    suite_table = data.get("suite")
    if not isinstance(suite_table, dict):
        errors.append(f'{path}: [suite]: missing table; it needs at least name = "..."')
        suite_table = {}
    suite = _check_table(suite_table, SUITE_RULES, f"{path}: [suite]", errors)
    if "name" in suite and not NAME_PATTERN.match(suite["name"]):
        errors.append(
            f'{path}: [suite]: field "name": {suite["name"]!r} must match [A-Za-z0-9_.-]+'
        )
    included, digest = _included_cells(suite, path, errors, check_envs)
    raw_cells = data.get("cell", [])
    if not isinstance(raw_cells, list) or not (raw_cells or included):
        errors.append(f"{path}: no [[cell]] tables; a suite needs at least one cell")
        raw_cells = []
    cells: list[Cell] = list(included)
    first_use: dict[str, int] = {cell.name: -1 for cell in included}
    for index, table in enumerate(raw_cells):
        cell = _check_cell(table, index, suite, path, errors, first_use)
        if cell is not None:
            cells.append(cell)
    errors.extend(_cell_references(cells, path))
    if check_envs:  # also when other cells had problems: one pass reports every error found
        cache: dict[str, str | None] = {}
        for cell in cells:
            errors.extend(_env_problems(cell, f"{path}: {_where(cell.index, cell.name)}", cache))
    if errors:
        raise SuiteError(errors)
    return SuiteSpec(
        name=suite["name"],
        description=suite["description"],
        path=path,
        sha256=hashlib.sha256(source + digest).hexdigest(),  # included suites count too
        seeds=suite["seeds"],
        seed=suite["seed"],
        cells=tuple(cells),
        source=source,
    )


def _included_cells(
    suite: dict[str, Any], path: str, errors: list[str], check_envs: bool
) -> tuple[list[Cell], bytes]:
    """The cells of the shipped suites `include`d, renamed "<suite>.<cell>" (their checkpoint
    references too), and the included files' bytes for the hash."""
    cells: list[Cell] = []
    digest = b""
    for name in suite.get("include", ()):
        if name not in shipped_suites() or name == suite.get("name"):
            allowed = ", ".join(s for s in shipped_suites() if s != suite.get("name"))
            errors.append(
                f'{path}: [suite]: field "include": {name!r} is not a shipped suite it can '
                f"include; allowed: {allowed}"
            )
            continue
        try:
            spec = load_suite(name, check_envs=check_envs)
        except SuiteError as err:
            errors.extend(err.errors)
            continue
        digest += spec.source
        for cell in spec.cells:
            renamed = replace(cell, name=f"{name}.{cell.name}")
            source = referenced_cell(getattr(cell, "checkpoint", ""))
            if source is not None:
                renamed = replace(renamed, checkpoint=f"{CELL_CHECKPOINT}{name}.{source}")
            cells.append(renamed)
    return cells, digest


def _check_cell(
    table: Any,
    index: int,
    suite: dict[str, Any],
    path: str,
    errors: list[str],
    first_use: dict[str, int],
) -> Cell | None:
    """The cell of one [[cell]] table, or None when its fields cannot make one.

    Problems go to `errors`. A cell whose fields all parse is returned even when a value is out
    of range (threshold, agent_params), so that its env is still checked in the same pass.
    """
    name = table.get("name") if isinstance(table, dict) else None
    where = f"{path}: {_where(index, name if isinstance(name, str) else None)}"
    if not isinstance(table, dict):
        errors.append(f"{where}: expected a table, got {type(table).__name__}")
        return None
    before = len(errors)
    if isinstance(name, str):
        if not NAME_PATTERN.match(name):
            errors.append(f'{where}: field "name": {name!r} must match [A-Za-z0-9_.-]+')
        elif name in first_use:
            errors.append(
                f'{where}: field "name": "{name}" is already used by cell[{first_use[name]}]'
            )
        else:
            first_use[name] = index
    kind = table.get("kind")
    if not isinstance(kind, str) or kind not in CELL_KINDS:
        # Without a known kind the other fields cannot be judged, so report the kind alone.
        allowed = ", ".join(CELL_KINDS)
        problem = f'unknown kind "{kind}"' if isinstance(kind, str) else f"got {kind!r}"
        if "kind" not in table:
            errors.append(f'{where}: missing field "kind"; allowed: {allowed}')
        else:
            errors.append(f'{where}: field "kind": {problem}; allowed: {allowed}')
        return None
    cls, rules = CELL_KINDS[kind]
    values = _check_table(table, {**COMMON_RULES, **rules}, where, errors)
    if len(errors) > before:
        return None
    for key in rules:
        if values[key] is _INHERIT:
            values[key] = suite.get(key, SUITE_RULES[key].default)
    if cls is TrainCell:
        errors.extend(_threshold_problems(values["threshold"], "threshold_on", values, where))
    if cls is ScalingCell:
        errors.extend(_scaling_problems(values, where))
    if cls is TimestepCell:
        errors.extend(_timestep_problems(values, where))
    if cls is SearchCell:
        errors.extend(_search_problems(values, where))
    if cls in (TrainCell, ScalingCell, TimestepCell):
        problems = agent_param_problems(values["agent"], values["agent_params"])
        errors.extend(f'{where}: field "agent_params": {p}' for p in problems)
    values.pop("kind")
    return cls(index=index, **values)


def _scaling_problems(values: dict[str, Any], where: str) -> list[str]:
    """Range problems of a scaling cell's fields; `values["budgets"]` becomes the checked table."""
    errors: list[str] = []
    sizes = values["values"]
    finite = all(math.isfinite(v) and v > 0 for v in sizes)
    if not finite or any(b <= a for a, b in itertools.pairwise(sizes)):
        shown = ", ".join(f"{v:g}" for v in sizes)
        errors.append(
            f'{where}: field "values": [{shown}]; allowed: finite numbers > 0, strictly increasing'
        )
    table_errors: list[str] = []
    at = f'{where}: field "budgets"'
    budgets = _check_table(values["budgets"], BUDGET_RULES, at, table_errors)
    if not table_errors:
        try:
            geometric_budgets(**budgets)
        except ValueError as err:
            table_errors.append(f'{where}: field "budgets": {err}')
    errors += table_errors
    values["budgets"] = budgets
    errors += _threshold_problems(values["threshold"], "criterion", values, where)
    if not 0.0 <= values["delta"] < 1.0:
        errors.append(f'{where}: field "delta": {values["delta"]:g}; allowed: 0 <= delta < 1')
    return errors


def _timestep_problems(values: dict[str, Any], where: str) -> list[str]:
    """Fixed actions ThreeBody has, and REBOUND integrators a timestep cell can transfer to."""
    from scalegym.envs.threebody.initial_conditions import TRAIN_SEEDS
    from scalegym.envs.threebody.rebound_env import INTEGRATORS
    from scalegym.envs.threebody.rules import ETA_ACTIONS, MU_ACTIONS

    errors = []
    last = values["instances"] + values["validation_instances"]
    if values["validation_instances"] and last > TRAIN_SEEDS:
        errors.append(
            f'{where}: field "validation_instances": instance seeds {values["instances"]}..'
            f"{last - 1} run past the training seeds 0..{TRAIN_SEEDS - 1}; allowed: 0.."
            f"{TRAIN_SEEDS - values['instances']}"
        )
    for name, table in (("baseline_actions", MU_ACTIONS), ("aarseth_actions", ETA_ACTIONS)):
        actions = [a for a in values[name] if a >= len(table)]
        if actions:
            errors.append(f'{where}: field "{name}": {actions}; allowed: 0..{len(table) - 1}')
    unknown = [t for t in values["transfer"] if t not in INTEGRATORS]
    if unknown:
        errors.append(
            f'{where}: field "transfer": {", ".join(unknown)} unknown; '
            f"allowed: {', '.join(INTEGRATORS)}"
        )
    if bool(values["planner"]) != bool(values["planner_budgets"]):
        errors.append(f'{where}: fields "planner" and "planner_budgets" go together; give both')
    elif values["planner"]:
        from scalegym.agents.planners.search import make_planner

        for budget in values["planner_budgets"]:
            try:
                make_planner(values["planner"], budget, **dict(values["planner_params"]))
            except (ValueError, TypeError) as err:
                errors.append(f'{where}: field "planner_params" at budget {budget}: {err}')
                break
    return errors


def _search_problems(values: dict[str, Any], where: str) -> list[str]:
    """Budgets that do not increase, planner options the planner refuses, a missing checkpoint."""
    from scalegym.suites.search import planner_for

    budgets = list(values["budgets"])
    if budgets != sorted(set(budgets)):
        return [f'{where}: field "budgets": {budgets}; must increase']
    if referenced_cell(values["checkpoint"]) is not None:
        return []  # an earlier train cell of the suite: checked with the suite (_cell_references)
    if values["checkpoint"]:
        if not Path(values["checkpoint"]).exists():
            return [f'{where}: field "checkpoint": {values["checkpoint"]}: no such run directory']
        return []
    try:
        planner_for(values["planner"], budgets[0], dict(values["planner_params"]))
    except (ValueError, TypeError) as err:
        return [f'{where}: field "planner_params": {err}']
    return []


def _cell_references(cells: list[Cell], path: str) -> list[str]:
    """A search cell's `checkpoint = "cell:NAME"` must name an earlier train cell of the suite,
    trained on the same env and env_params (a planner's prior must fit its env)."""
    errors = []
    for index, cell in enumerate(cells):
        checkpoint = getattr(cell, "checkpoint", "")
        name = referenced_cell(checkpoint)
        if not isinstance(cell, SearchCell) or name is None:
            continue
        where = f'{path}: {_where(cell.index, cell.name)}: field "checkpoint"'
        earlier = [c for c in cells[:index] if isinstance(c, TrainCell)]
        source = next((c for c in earlier if c.name == name), None)
        if source is None:
            allowed = ", ".join(f"cell:{c.name}" for c in earlier) or "none (no train cell before)"
            errors.append(
                f"{where}: {checkpoint!r} names no earlier train cell; allowed: {allowed}"
            )
        elif (source.env, dict(source.env_params)) != (cell.env, dict(cell.env_params)):
            errors.append(
                f"{where}: {checkpoint!r} trained on {source.env} {dict(source.env_params)}, "
                f"this cell plans on {cell.env} {dict(cell.env_params)}; they must match"
            )
    return errors


def _threshold_problems(
    threshold: float | None, on_field: str, values: dict[str, Any], where: str
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
    return [f'{where}: field "threshold": {threshold:g} {reason}; {allowed}']


def _check_table(
    table: dict[str, Any], rules: dict[str, Rule], where: str, errors: list[str]
) -> dict[str, Any]:
    """Checked values of `table` with defaults filled in; problems go to `errors`."""
    for key in table:
        if key not in rules:
            errors.append(unknown_field_message(where, [key], rules))
    values: dict[str, Any] = {}
    for key, rule in rules.items():
        if key not in table:
            if rule.required:
                errors.append(f'{where}: missing field "{key}" ({_describe(rule)})')
            else:
                values[key] = _copy(rule.default)
            continue
        value, problem = _check_value(table[key], rule)
        if problem:
            errors.append(f'{where}: field "{key}": {problem}')
        else:
            values[key] = value
    return values


def _check_value(value: Any, rule: Rule) -> tuple[Any, str | None]:
    """(the value as the cell stores it, None) or (None, what is wrong with it)."""
    got = f"got {type(value).__name__} {value!r}"
    expected = f"expected {_describe(rule)}, {got}"
    if rule.type == "int":
        # bool is an int subclass in Python; TOML's true is not a count.
        if not isinstance(value, int) or isinstance(value, bool):
            return None, expected
        if rule.minimum is not None and value < rule.minimum:
            return None, expected
        return value, None
    if rule.type == "float":
        if not isinstance(value, int | float) or isinstance(value, bool):
            return None, expected
        return float(value), None
    if rule.type == "str":
        if not isinstance(value, str):
            return None, expected
        if rule.allowed is not None and value not in rule.allowed:
            return None, f'"{value}" is not allowed; allowed: {", ".join(rule.allowed)}'
        return value, None
    if rule.type == "int_list":
        ok = isinstance(value, list) and value and all(_is_int(v, rule.minimum) for v in value)
        return (tuple(value), None) if ok else (None, expected)
    if rule.type == "num_list":
        ok = isinstance(value, list) and value and all(_is_number(v) for v in value)
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


def _describe(rule: Rule) -> str:
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


def _is_int(value: Any, minimum: float | None) -> bool:
    ok = isinstance(value, int) and not isinstance(value, bool)
    return ok and (minimum is None or value >= minimum)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _copy(default: Any) -> Any:
    return dict(default) if isinstance(default, dict) else default


def _where(index: int, name: str | None) -> str:
    return f'cell[{index}] "{name}"' if name is not None else f"cell[{index}]"


def agent_param_problems(agent: str, params: dict[str, Any]) -> list[str]:
    """What is wrong with a train cell's `agent_params`, checked by the agent's own config."""
    return override_problems(params) if agent == "ppo" else []


def _env_problems(cell: Cell, where: str, cache: dict[str, str | None]) -> list[str]:
    """Build the cell's env with its params (as the runner will) and report why it fails."""
    failure = lambda env_params: _env_failure(cell.env, env_params, cache)
    if isinstance(cell, ScalingCell):
        return _scaling_env_problems(cell, where, failure)
    return _base_env_problems(cell, where, failure)


def _env_failure(env: str, env_params: dict[str, Any], cache: dict[str, str | None]) -> str | None:
    """Why `env` cannot be built with `env_params` (None: it can); remembered in `cache`."""
    from scalegym.core.resolve import env_precision, resolve_env

    key = repr((env, sorted(env_params.items())))
    if key not in cache:
        try:
            with env_precision(env):
                resolve_env(env, **env_params)
            cache[key] = None
        except (ValueError, TypeError, ImportError) as err:
            cache[key] = str(err)
    return cache[key]


EnvFailure = Callable[[dict[str, Any]], "str | None"]


def _base_env_problems(cell: Cell, where: str, failure: EnvFailure) -> list[str]:
    problem = failure(cell.env_params)
    if problem is None:
        return []
    # Tell an unknown id apart from a bad param: only the latter builds without the params.
    if cell.env_params and failure({}) is None:
        return [f'{where}: field "env_params": {problem}']
    return [f'{where}: field "env": {problem}']


def _scaling_env_problems(cell: ScalingCell, where: str, failure: EnvFailure) -> list[str]:
    """The env built at every value; failures grouped by message, naming the values."""
    failed: dict[str, list[float]] = {}
    for value in cell.values:
        problem = failure(cell.overrides(value))
        if problem is not None:
            failed.setdefault(problem, []).append(value)
    if not failed:
        return _tool_problems(cell, where)
    every_value = sum(map(len, failed.values())) == len(cell.values)
    base = _base_env_problems(cell, where, failure) if every_value else []
    if base:
        return base
    field = "vary" if every_value and len(failed) == 1 else "values"
    names = ", ".join(cell.vary)
    return [
        f'{where}: field "{field}": with {names} = {", ".join(f"{v:g}" for v in values)}: {problem}'
        for problem, values in failed.items()
    ]


def _tool_problems(cell: ScalingCell, where: str) -> list[str]:
    """What the env lacks for the cell's criterion (exact tools) or unit (fixed episodes)."""
    needs_exact = cell.criterion == "exact"
    needs_length = cell.unit == "episodes" and cell.agent == "ppo"
    if not (needs_exact or needs_length):
        return []
    from scalegym.core.resolve import env_precision, resolve_env

    with env_precision(cell.env):
        env = resolve_env(cell.env, **cell.overrides(cell.values[0])).env
    problems = []
    if needs_exact and not (hasattr(env, "tabular") and hasattr(env, "optimal_value")):
        problems.append(
            f'{where}: field "criterion": "exact" needs an env family with exact tools '
            f"(tabular, optimal_value); {cell.env} has none; allowed: success, return"
        )
    if needs_length and not hasattr(env, "fixed_episode_length"):
        problems.append(
            f'{where}: field "unit": unit = "episodes" needs an env whose episodes all last the '
            f'same number of steps (fixed_episode_length); {cell.env} has none; use "steps"'
        )
    return problems
