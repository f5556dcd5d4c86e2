"""The `scaling` cell: samples to a threshold against problem size, and the power law fitted.

Per value of the varied env field(s) a budget agent (`scalegym.agents.budgets`) trains every run
(seed, each on its own instance) and judges it at each budget of a geometric grid, extended until
the runs settle or the cap; the fit, its interval and the censored bounds are
`scalegym.suites.scaling`'s, the report section and figures `cells/scaling_report.py`'s.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from scalegym.agents.budgets import (
    CRITERIA,
    UNITS,
    BudgetAgent,
    Criterion,
    budget_request,
    geometric_budgets,
)
from scalegym.agents.registry import budget_agent, names
from scalegym.suites.cells.scaling_report import (
    family_figure,
    fit_line,
    refitted,
    scaling_figure,
    scaling_rows,
    scaling_section,
    scaling_summary,
    scaling_table,
)
from scalegym.suites.cells.train import agent_param_problems, clear
from scalegym.suites.scaling import fit_values, value_record
from scalegym.suites.schema import (
    INHERIT,
    Cell,
    CellContext,
    EnvCache,
    PartialCellError,
    Record,
    Rule,
    base_env_problems,
    check_table,
    threshold_problems,
)
from scalegym.suites.tensorboard import TensorBoardLogger

if TYPE_CHECKING:
    from scalegym.core.resolve import ResolvedEnv

BUDGET_RULES = {
    "start": Rule("int", required=True, minimum=1),
    "stop": Rule("int", required=True, minimum=1),
    "per_octave": Rule("int", required=True, minimum=1),
    # The grid of a size whose runs have not settled extends an octave at a time up to `cap`.
    "cap": Rule("int", default=None, minimum=1),
}


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
    delta: float  # N-hat is the budget by which 1 - delta of the runs pass
    lower_bound: float | None  # the family's lower-bound exponent in the varied size
    lower_bound_source: str  # where it comes from: a paper's theorem, the MDP bound, ...
    instance: int | None  # None: each (seed, size) its own instance; k: instance k for all
    seeds: int
    seed: int
    agent_params: dict[str, Any]

    kind: ClassVar[str] = "scaling"
    title: ClassVar[str] = "Sample-complexity scaling"
    rules: ClassVar[dict[str, Rule]] = {
        "agent": Rule("str", required=True, allowed=names("scaling")),
        "vary": Rule("str_or_str_list", required=True),
        "values": Rule("num_list", required=True),
        "budgets": Rule("table", required=True),
        "unit": Rule("str", default="steps", allowed=UNITS),
        "criterion": Rule("str", default="success", allowed=CRITERIA),
        "threshold": Rule("float", required=True),
        "delta": Rule("float", default=0.1),
        "lower_bound": Rule("float", default=None),
        "lower_bound_source": Rule("str", default=""),
        "instance": Rule("int", default=None, minimum=0),
        "seeds": Rule("int", default=INHERIT, minimum=1),
        "seed": Rule("int", default=INHERIT, minimum=0),
        "agent_params": Rule("table", default={}),
    }

    def instance_seeds(self, value: float, resolved: ResolvedEnv) -> list[int] | None:
        """Per run (seed k), its instance seed at this size: derived from the cell seed, k and
        the size, so runs and sizes never share an instance by construction; `instance` fixes
        one for all. None: the env has no instance field (every run plays its params)."""
        if getattr(resolved.env, "instance_field", None) is None:
            return None
        if self.instance is not None:
            return [self.instance] * self.seeds
        size = round(float(value) * 1_000_000)
        return [
            int(np.random.SeedSequence([self.seed, k, size]).generate_state(1)[0] >> 1)
            for k in range(self.seeds)
        ]

    def overrides(self, value: float) -> dict[str, Any]:
        """The env params of one value: `env_params` with every `vary` field set to it."""
        number = int(value) if float(value).is_integer() else float(value)
        return {**self.env_params, **dict.fromkeys(self.vary, number)}

    @classmethod
    def problems(cls, values: dict[str, Any], where: str) -> list[str]:
        """Range problems of the fields; `values["budgets"]` becomes the checked table."""
        errors: list[str] = []
        sizes = values["values"]
        finite = all(math.isfinite(v) and v > 0 for v in sizes)
        if not finite or any(b <= a for a, b in itertools.pairwise(sizes)):
            errors.append(
                f'{where}: field "values": [{_values(sizes)}]; allowed: finite numbers > 0, '
                "strictly increasing"
            )
        table_errors: list[str] = []
        at = f'{where}: field "budgets"'
        budgets = check_table(values["budgets"], BUDGET_RULES, at, table_errors)
        if not table_errors:
            try:
                geometric_budgets(budgets["start"], budgets["stop"], budgets["per_octave"])
            except ValueError as err:
                table_errors.append(f'{where}: field "budgets": {err}')
        errors += table_errors
        if not table_errors and budgets["cap"] is not None and budgets["cap"] < budgets["stop"]:
            errors.append(f'{where}: field "budgets": cap {budgets["cap"]} is below stop')
        values["budgets"] = budgets
        if values["lower_bound"] is not None and not values["lower_bound_source"]:
            errors.append(
                f'{where}: field "lower_bound_source": say where lower_bound comes from (a '
                "paper's theorem, the MDP bound, this suite's construction)"
            )
        errors += threshold_problems(values["threshold"], "criterion", values, where)
        if not 0.0 <= values["delta"] < 1.0:
            errors.append(f'{where}: field "delta": {values["delta"]:g}; allowed: 0 <= delta < 1')
        errors += agent_param_problems(values["agent"], values["agent_params"], where)
        if values["agent"] == "ppo" and values["agent_params"].get("anneal_lr") is True:
            errors.append(
                f'{where}: field "agent_params": anneal_lr = true would make a budget\'s run '
                "depend on the grid's end; the ppo budget agent trains at a constant rate"
            )
        return errors

    def env_problems(self, where: str, envs: EnvCache) -> list[str]:
        """The env built at every value; failures grouped by message, naming the values."""
        failed: dict[str, list[float]] = {}
        for value in self.values:
            problem = envs.failure(self.env, self.overrides(value))
            if problem is not None:
                failed.setdefault(problem, []).append(value)
        if not failed:
            return self.tool_problems(where, envs)
        every_value = sum(map(len, failed.values())) == len(self.values)
        base = base_env_problems(self, where, envs) if every_value else []
        if base:
            return base
        field = "vary" if every_value and len(failed) == 1 else "values"
        names = ", ".join(self.vary)
        return [
            f'{where}: field "{field}": with {names} = {_values(values)}: {problem}'
            for problem, values in failed.items()
        ]

    def tool_problems(self, where: str, envs: EnvCache) -> list[str]:
        """What the env lacks for the cell's criterion (exact tools) or unit (fixed episodes)."""
        needs_exact = self.criterion == "exact"
        needs_length = self.unit == "episodes" and self.agent == "ppo"
        if not (needs_exact or needs_length):
            return []
        env = envs.get(self.env, self.overrides(self.values[0])).env
        problems = []
        if needs_exact and not (hasattr(env, "tabular") and hasattr(env, "optimal_value")):
            problems.append(
                f'{where}: field "criterion": "exact" needs an env family with exact tools '
                f"(tabular, optimal_value); {self.env} has none; allowed: success, return"
            )
        if needs_length and not hasattr(env, "fixed_episode_length"):
            problems.append(
                f'{where}: field "unit": unit = "episodes" needs an env whose episodes all last '
                f'the same number of steps (fixed_episode_length); {self.env} has none; use "steps"'
            )
        return problems

    def run(self, context: CellContext) -> dict[str, Any]:
        return run_scaling(self, context)

    @staticmethod
    def summary_row(result: dict[str, Any]) -> dict[str, Any]:
        return scaling_summary(result)

    @staticmethod
    def line(result: dict[str, Any]) -> str:
        return fit_line(refitted(result))

    @staticmethod
    def report_section(records: list[Record], manifest: dict[str, Any]) -> list[str]:
        scaling = [r for r in records if scaling_rows(r)]
        if not scaling:
            return []
        lines = [
            "",
            "N̂: the budget by which 1 - δ of the runs pass for good (a run's first passing "
            "budget is the first after which every later evaluation passes). Censored: runs "
            "that never settled. An exponent is fitted over the sizes whose N̂ is finite, when "
            "there are at least four; a size whose N̂ is censored is left out of the fit and "
            "bounds the local exponent from the last settled size below it.",
        ]
        for record in scaling:
            lines += ["", *scaling_section(record)]
        return lines

    @staticmethod
    def readme_table(records: list[Record], **_: Any) -> list[str]:
        return scaling_table(records) if records else []

    @staticmethod
    def figure(plt: Any, record: Record) -> Any:
        result = record["result"]
        if not result.get("values"):
            return None
        return scaling_figure(plt, record["cell"], record["env"], refitted(result))

    @staticmethod
    def joint_figures(plt: Any, records: list[Record]) -> list[tuple[str, Any]]:
        """One log-log figure per family (env and varied field) run by two or more cells: each
        cell's N̂ and fit (the calibration learner's beside PPO's) and the lower bound."""
        families: dict[tuple[str, str], list[Record]] = {}
        for record in records:
            if record["result"].get("values"):
                vary = "+".join(record["result"].get("vary", []))
                families.setdefault((record["env"], vary), []).append(record)
        return [
            (f"family-{env}-{vary}", family_figure(plt, env, vary, group))
            for (env, vary), group in families.items()
            if len(group) >= 2
        ]


def run_scaling(cell: ScalingCell, context: CellContext) -> dict[str, Any]:
    """Per value of `cell.vary`: the agent's runs judged at every budget, each run's first
    passing budget and N̂; then the power law fitted over the values. A value that raises ends
    the cell, keeping the values done in a `PartialCellError`."""
    agent = budget_agent(cell.agent)
    grid = cell.budgets
    budgets = geometric_budgets(grid["start"], grid["stop"], grid["per_octave"])  # [E]
    criterion = Criterion(cell.criterion, cell.threshold)
    clear(context.tb_dir)
    rows: list[dict[str, Any]] = []
    for index, value in enumerate(cell.values):
        try:
            rows.append(scaling_value(cell, value, agent, budgets, criterion, context, index))
        except Exception as err:
            result = scaling_result(cell, budgets, criterion, rows)
            raise PartialCellError(
                f"{value_label(cell, value)}: {type(err).__name__}: {err}", result
            ) from err
        context.advance((index + 1) / len(cell.values))
    result = scaling_result(cell, budgets, criterion, rows)
    # TensorBoard steps are integers: whole values are the step, fractional ones (ε) in 1/1000s.
    whole = all(float(row["value"]).is_integer() for row in rows)
    tag, scale = ("scaling/n_hat", 1) if whole else ("scaling/n_hat_vs_value_x1000", 1000)
    with TensorBoardLogger(context.tb_dir) as logger:
        for row in rows:
            logger.log_scalars(round(row["value"] * scale), {tag: row["n_hat"]})
    return result


def scaling_value(
    cell: ScalingCell,
    value: float,
    agent: BudgetAgent,
    budgets: np.ndarray,
    criterion: Criterion,
    context: CellContext,
    index: int,
) -> dict[str, Any]:
    """One value's runs: the agent over all seeds, each on its own instance, curves to
    `tb/<cell>/<vary>=<value>/`. A grid whose runs have not settled (fewer than 1 − δ pass for
    good) is extended an octave at a time up to `budgets.cap` and run again: a run does not
    depend on the grid it is judged on, so the longer run repeats the shorter one's budgets."""
    start = time.perf_counter()
    overrides = cell.overrides(value)
    resolved = context.resolved(cell.env, overrides)
    seeds = cell.instance_seeds(value, resolved)
    cap = cell.budgets.get("cap") or int(budgets[-1])
    with TensorBoardLogger(context.tb_dir / value_label(cell, value)) as logger:

        def log(label: str, budget: int, scalars: dict[str, float]) -> None:
            logger.log_scalars(budget, scalars)
            done = min(1.0, budget / float(cap))
            context.advance((index + done) / len(cell.values))

        request = budget_request(
            resolved,
            budgets=budgets,
            unit=cell.unit,
            criterion=criterion,
            num_seeds=cell.seeds,
            seed=cell.seed,
            agent_params=dict(cell.agent_params),
            instances=stacked_instances(resolved, seeds),
        )
        while True:
            with resolved.precision():
                run = agent(request, log)
            record = value_record(run.budgets, run.passes, run.metric, cell.delta)
            longer = extended(request.budgets, cell.budgets["per_octave"], cap)
            if record["n_hat"] is not None or longer is None:
                break
            request = replace(request, budgets=longer)
    return {
        "value": value,
        "env_params": overrides,
        "instance_seeds": seeds,
        "budgets": np.asarray(run.budgets).tolist(),
        **record,
        "extra": run.extra,
        "wall_s": time.perf_counter() - start,
    }


def extended(budgets: np.ndarray, per_octave: int, cap: int) -> np.ndarray | None:
    """The grid one octave longer (at most `cap`), or None when it already reaches the cap."""
    last = int(budgets[-1])
    if last >= cap:
        return None
    return geometric_budgets(int(budgets[0]), min(cap, 2 * last), per_octave)


def stacked_instances(resolved: ResolvedEnv, seeds: list[int] | None) -> Any:
    """The env's params at each instance seed, every leaf stacked [K, ...]; None without."""
    if seeds is None:
        return None
    field = resolved.env.instance_field
    made = [resolved.with_overrides(**{field: s}).params for s in seeds]
    return jax.tree.map(lambda *leaves: jnp.stack([jnp.asarray(x) for x in leaves]), *made)


def scaling_result(
    cell: ScalingCell, budgets: np.ndarray, criterion: Criterion, rows: list[dict[str, Any]]
) -> dict[str, Any]:
    """The cell's record: its setting, a row per value done, the fit when at least four N̂ are
    finite, and the local lower bounds the censored sizes give."""
    result: dict[str, Any] = {
        "agent": cell.agent,
        "vary": list(cell.vary),
        "unit": cell.unit,
        "criterion": criterion.describe(),
        "criterion_on": cell.criterion,
        "threshold": cell.threshold,
        "delta": cell.delta,
        "seeds": cell.seeds,
        "seed": cell.seed,
        "budgets": budgets.tolist(),
        "lower_bound": cell.lower_bound,
        "lower_bound_source": cell.lower_bound_source,
        "instance": cell.instance,
        "values": rows,
        "fit": None,
    }
    if rows:  # a cell cut short is fitted over the values it finished
        first = [row["first_budgets"] for row in rows]
        largest = [max(row.get("budgets") or budgets.tolist()) for row in rows]
        sizes = [row["value"] for row in rows]
        result.update(fit_values(sizes, first, cell.delta, cell.seed, largest))
    return result


def value_label(cell: ScalingCell, value: float) -> str:
    """`height+width=8`: one value's name, and its TensorBoard folder under `tb/<cell>/`."""
    number = int(value) if float(value).is_integer() else float(value)
    return f"{'+'.join(cell.vary)}={number}"


def _values(values: Any) -> str:
    return ", ".join(f"{v:g}" for v in values)
