"""The `search` cell: return against search budget, the inference-time scaling curve.

For each budget (simulated env steps per decision) a planner plays `episodes` episodes per seed,
all of a budget's episodes vmapped in one jitted call (`agents.planning.run_episodes`). Recorded
per budget: mean return and success with standard errors over seeds, simulated steps per
decision, and wall time per decision amortised over the vmapped episodes (compile timed
apart). Fitted: the slope of return against log10(budget) by least squares, with a 95%
bootstrap interval over seeds. TensorBoard gets `search/return` and
`search/success` against the budget.

Planners by name: `random-shooting`, `cem`, `beam` (`agents/search.py`), `gumbel-muzero`
(`agents/gumbel.py`; with `checkpoint` = a `scalegym train` run directory, its PPO prior and
value), `belief` and `oracle` (`agents/belief.py`, POMDP families: the belief planner's tree
search is `agents/pomcp.py`; the oracle reads the hidden state and is labelled so).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import jax
import numpy as np

from scalegym.suites.markdown import num
from scalegym.suites.schema import INHERIT, Cell, CellContext, Record, Rule
from scalegym.suites.schema import where as where_
from scalegym.suites.statistics import iqm_cell


def planners() -> tuple[str, ...]:
    from scalegym.agents.registry import names

    return names("plan")


BOOTSTRAP_DRAWS = 2000


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

    kind: ClassVar[str] = "search"
    title: ClassVar[str] = "Return against search budget"
    rules: ClassVar[dict[str, Rule]] = {
        "planner": Rule("str", required=True, allowed=planners()),
        "budgets": Rule("int_list", required=True, minimum=1),
        "planner_params": Rule("table", default={}),
        "checkpoint": Rule("str", default=""),
        "episodes": Rule("int", default=32, minimum=1),
        "max_steps": Rule("int", default=None, minimum=1),
        "seeds": Rule("int", default=INHERIT, minimum=1),
        "seed": Rule("int", default=INHERIT, minimum=0),
    }

    @classmethod
    def problems(cls, values: dict[str, Any], where: str) -> list[str]:
        """Budgets that do not increase, options the planner refuses, a missing checkpoint."""
        budgets = list(values["budgets"])
        if budgets != sorted(set(budgets)):
            return [f'{where}: field "budgets": {budgets}; must increase']
        if referenced_cell(values["checkpoint"]) is not None:
            return []  # an earlier train cell of the suite: checked by suite_problems
        if values["checkpoint"]:
            if not Path(values["checkpoint"]).exists():
                return [
                    f'{where}: field "checkpoint": {values["checkpoint"]}: no such run directory'
                ]
            return []
        from scalegym.agents.registry import make_planner

        try:
            make_planner(values["planner"], budgets[0], dict(values["planner_params"]))
        except (ValueError, TypeError) as err:
            return [f'{where}: field "planner_params": {err}']
        return []

    @classmethod
    def suite_problems(cls, cells: list[Cell], path: str) -> list[str]:
        """A search cell's `checkpoint = "cell:NAME"` must name an earlier train cell of the suite,
        trained on the same env and env_params (a planner's prior must fit its env)."""
        errors = []
        for index, cell in enumerate(cells):
            checkpoint = getattr(cell, "checkpoint", "")
            name = referenced_cell(checkpoint)
            if not isinstance(cell, cls) or name is None:
                continue
            where = f'{path}: {where_(cell.index, cell.name)}: field "checkpoint"'
            earlier = [c for c in cells[:index] if c.kind == "train"]
            source = next((c for c in earlier if c.name == name), None)
            if source is None:
                allowed = (
                    ", ".join(f"cell:{c.name}" for c in earlier) or "none (no train cell before)"
                )
                errors.append(
                    f"{where}: {checkpoint!r} names no earlier train cell; allowed: {allowed}"
                )
            elif (source.env, dict(source.env_params)) != (cell.env, dict(cell.env_params)):
                errors.append(
                    f"{where}: {checkpoint!r} trained on {source.env} {dict(source.env_params)}, "
                    f"this cell plans on {cell.env} {dict(cell.env_params)}; they must match"
                )
        return errors

    def included_from(self, suite: str) -> Cell:
        """Renamed "<suite>.<cell>", with a checkpoint "cell:NAME" renamed the same way."""
        renamed = replace(self, name=f"{suite}.{self.name}")
        source = referenced_cell(self.checkpoint)
        if source is None:
            return renamed
        return replace(renamed, checkpoint=f"{CELL_CHECKPOINT}{suite}.{source}")

    def reads(self) -> list[str]:
        name = referenced_cell(self.checkpoint)
        return [] if name is None else [name]

    def run(self, context: CellContext) -> dict[str, Any]:
        return run_search(self, context)

    @staticmethod
    def line(result: dict[str, Any]) -> str:
        if not result.get("rows"):
            return ""
        last = result["rows"][-1]
        return (
            f"{result['planner']} return {num(last['return'], 3)}, success "
            f"{num(last['success'], 2)} at budget {last['budget']:,}"
        )

    @staticmethod
    def report_section(records: list[Record], manifest: dict[str, Any]) -> list[str]:
        lines: list[str] = []
        for record in records:
            if record["status"] == "ok":
                lines += ["", *report_lines(record["cell"], record["env"], record["result"])]
        return lines

    @staticmethod
    def figure(plt: Any, record: Record) -> Any:
        if not record["result"].get("rows"):
            return None
        return search_figure(plt, record["cell"], record["env"], record["result"])

    @staticmethod
    def readme_table(records: list[Record], env_prefix: str = "", **_: Any) -> list[str]:
        """Success against budget, and the return slope per decade, of each search cell on an
        env whose id starts with `env_prefix`."""
        cells = [r for r in records if r["env"].startswith(env_prefix)]
        budgets = sorted({row["budget"] for r in cells for row in r["result"]["rows"]})
        lines = [
            "Success at each budget (simulated env steps per decision), and the slope of return "
            "per decade of budget:",
            "",
            "| cell (planner) | " + " | ".join(f"{b:,}" for b in budgets) + " | slope [95% CI] |",
            "|---|" + "---|" * (len(budgets) + 1),
        ]
        for r in cells:
            result = r["result"]
            success = {row["budget"]: row["success"] for row in result["rows"]}
            slope = result.get("slope")
            fit = (
                f"{slope['slope']:.2f} [{slope['low']:.2f}, {slope['high']:.2f}]" if slope else "—"
            )
            row = [f"{success[b]:.2f}" if b in success else "—" for b in budgets]
            lines.append(
                f"| {r['cell']} ({result['planner']}) | " + " | ".join(row) + f" | {fit} |"
            )
        return lines


CELL_CHECKPOINT = "cell:"  # checkpoint = "cell:NAME": an earlier train cell of the same run


def referenced_cell(checkpoint: str) -> str | None:
    """The train cell NAME a `checkpoint = "cell:NAME"` names; None for a path (or none)."""
    if checkpoint.startswith(CELL_CHECKPOINT):
        return checkpoint[len(CELL_CHECKPOINT) :]
    return None


def resolve_checkpoint(checkpoint: str, run_dir: Path) -> str:
    """A search cell's `checkpoint` as a path: "cell:NAME" is the run's checkpoints/NAME/."""
    name = referenced_cell(checkpoint)
    return checkpoint if name is None else str(run_dir / "checkpoints" / name)


def run_search(cell: SearchCell, context: CellContext) -> dict[str, Any]:
    """Return (and success) against budget for one planner on one env (see the module)."""
    from scalegym.agents.planners.planning import run_episodes
    from scalegym.agents.registry import make_planner
    from scalegym.suites.tensorboard import TensorBoardLogger

    resolved = context.resolved(cell.env, cell.env_params)
    if resolved.kind != "jax":
        raise ValueError(f"{cell.env}: a planner needs a functional JAX env as its model")
    env, params = resolved.env, resolved.params
    rows = []
    with resolved.precision(), TensorBoardLogger(context.tb_dir) as logger:
        for index, budget in enumerate(cell.budgets):
            planner = make_planner(
                cell.planner,
                budget,
                dict(cell.planner_params),
                checkpoint=resolve_checkpoint(cell.checkpoint, context.run_dir),
                env_overrides=dict(cell.env_params),
            )
            key = jax.random.key(cell.seed)
            count = cell.seeds * cell.episodes
            start = time.perf_counter()
            jax.block_until_ready(run_episodes(env, params, planner, count, key, cell.max_steps))
            first = time.perf_counter() - start  # compile and one run
            start = time.perf_counter()
            out = jax.block_until_ready(
                run_episodes(env, params, planner, count, key, cell.max_steps)
            )
            wall = time.perf_counter() - start
            out = {k: np.asarray(v) for k, v in out.items()}
            row = budget_row(budget, out, cell.seeds, wall, first - wall)
            row["oracle"] = bool(getattr(planner, "oracle", False))
            rows.append(row)
            logger.log_scalars(
                budget, {"search/return": row["return"], "search/success": row["success"]}
            )
            context.advance((index + 1) / len(cell.budgets))
    slope = return_slope(
        [r["budget"] for r in rows], [r["per_seed_return"] for r in rows], cell.seed
    )
    return {
        "planner": cell.planner,
        "seeds": cell.seeds,
        "episodes": cell.episodes,
        "rows": rows,
        "slope": slope,
        "optimal_value": optimal_value(env, params),
    }


def optimal_value(env: Any, params: Any) -> float | None:
    """The env's exact optimal episode value where it has one (the POMDP families), else None."""
    exact = getattr(env, "optimal_value", None)
    return float(exact(params)) if callable(exact) else None


def budget_row(
    budget: int, out: dict[str, np.ndarray], seeds: int, wall_s: float, compile_s: float
) -> dict[str, Any]:
    """One budget's numbers from `run_episodes`' per-episode arrays [seeds · episodes]."""
    per_seed = out["return"].reshape(seeds, -1).mean(axis=1)  # [seeds]
    success = out["success"].reshape(seeds, -1).mean(axis=1)
    decisions = max(1, int(out["length"].sum()))
    sem = float(per_seed.std(ddof=1) / np.sqrt(seeds)) if seeds > 1 else float("nan")
    return {
        "budget": int(budget),
        "return": float(per_seed.mean()),
        "return_sem": sem,
        "success": float(success.mean()),
        "per_seed_return": per_seed.tolist(),
        "sim_steps_per_decision": float(out["sim_steps"].sum() / decisions),
        "wall_ms_per_decision": 1000.0 * wall_s / decisions,
        "compile_s": max(0.0, compile_s),
    }


def return_slope(
    budgets: list[int], per_seed: list[list[float]], seed: int = 0
) -> dict[str, float] | None:
    """Least-squares slope of return on log10(budget), 95% bootstrap interval over seeds.

    `per_seed[i][s]` is seed s's mean return at budgets[i]; a draw resamples seeds (the same
    seeds at every budget: a seed's runs share its keys).
    """
    if len(budgets) < 2:
        return None
    x = np.log10(np.asarray(budgets, float))
    y = np.asarray(per_seed, float)  # [budgets, seeds]

    def fit(columns: np.ndarray) -> float:
        return float(np.polyfit(x, y[:, columns].mean(axis=1), 1)[0])

    seeds = y.shape[1]
    rng = np.random.default_rng(seed)
    draws = [fit(rng.integers(0, seeds, seeds)) for _ in range(BOOTSTRAP_DRAWS)]
    low, high = np.percentile(draws, [2.5, 97.5])
    return {"slope": fit(np.arange(seeds)), "low": float(low), "high": float(high)}


def report_lines(cell_name: str, env: str, result: dict[str, Any]) -> list[str]:
    """report.md's table for one search cell."""
    label = result["planner"] + (" (oracle)" if any(r["oracle"] for r in result["rows"]) else "")
    lines = [
        f"### {cell_name}: {label} on {env}, {result['seeds']} seeds × {result['episodes']} "
        "episodes",
        "",
        "| budget | return ± s.e. | return IQM [95% CI] | success | sim steps / decision "
        "| ms / decision |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['budget']:,} | {r['return']:.3f} ± {r['return_sem']:.3f} | "
            f"{iqm_cell(r.get('per_seed_return'))} | {r['success']:.2f} | "
            f"{r['sim_steps_per_decision']:.0f} | {r['wall_ms_per_decision']:.3f} |"
        )
    s = result.get("slope")
    if s:
        lines.append(
            f"\nReturn per decade of budget: {s['slope']:.3f} "
            f"(95% bootstrap over seeds [{s['low']:.3f}, {s['high']:.3f}])"
        )
    if result.get("optimal_value") is not None:
        lines.append(f"\nV* of this instance (exact): {result['optimal_value']:.4f}")
    return lines


def search_figure(plt: Any, name: str, env: str, result: dict[str, Any]) -> Any:
    """Mean return against budget (log x), standard errors as bars, the fitted line."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    rows = result["rows"]
    budgets = np.asarray([r["budget"] for r in rows], float)
    ax.errorbar(
        budgets,
        [r["return"] for r in rows],
        yerr=[0.0 if np.isnan(r["return_sem"]) else r["return_sem"] for r in rows],
        marker="o",
        capsize=3,
        label=result["planner"],
    )
    s = result.get("slope")
    if s:
        x = np.log10(budgets)
        mean = np.mean([r["return"] for r in rows])
        line = mean + s["slope"] * (x - x.mean())
        ax.plot(budgets, line, "--", label=f"slope {s['slope']:.2f} / decade")
    if result.get("optimal_value") is not None:
        ax.axhline(result["optimal_value"], color="black", lw=0.8, ls=":", label="V* (exact)")
    ax.set(xscale="log", xlabel="budget (simulated steps / decision)", ylabel="return")
    ax.set_title(f"{name}: {env}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    return fig
