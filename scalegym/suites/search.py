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
from pathlib import Path
from typing import Any

import jax
import numpy as np

from scalegym.suites.statistics import iqm_cell

PLANNERS = ("random-shooting", "cem", "beam", "gumbel-muzero", "belief", "oracle")
BOOTSTRAP_DRAWS = 2000


def planner_for(
    name: str,
    budget: int,
    options: dict[str, Any],
    checkpoint: str = "",
    env_overrides: dict[str, Any] | None = None,
) -> Any:
    """The planner `name` at `budget` with its options (ValueError names a bad one).

    `checkpoint` (gumbel-muzero): a `scalegym train` run directory, trained on the env with
    `env_overrides` (the checkpoint does not record them).
    """
    if name in ("random-shooting", "cem", "beam"):
        from scalegym.agents.planners.search import make_planner

        return make_planner(name, budget, **options)
    if name == "gumbel-muzero":
        from scalegym.agents.planners import gumbel

        if checkpoint:
            return gumbel.from_checkpoint(
                checkpoint, budget, env_overrides=env_overrides, **options
            )
        return gumbel.make_gumbel(budget, **options)
    if name in ("belief", "oracle"):
        from scalegym.agents.planners.belief import BeliefPlanner, OraclePlanner

        return (BeliefPlanner if name == "belief" else OraclePlanner)(budget=budget, **options)
    raise ValueError(f"unknown planner {name!r}; allowed: {', '.join(PLANNERS)}")


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


def run_search_cell(cell: Any, context: Any) -> dict[str, Any]:
    """Return (and success) against budget for one planner on one env (see the module)."""
    import scalegym
    from scalegym.agents.planners.planning import run_episodes
    from scalegym.suites.tensorboard import TensorBoardLogger

    env, params = scalegym.make(cell.env, **dict(cell.env_params))
    rows = []
    with TensorBoardLogger(context.tb_dir) as logger:
        for index, budget in enumerate(cell.budgets):
            planner = planner_for(
                cell.planner,
                budget,
                dict(cell.planner_params),
                resolve_checkpoint(cell.checkpoint, context.run_dir),
                cell.env_params,
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
