"""The protocol between a `scaling` cell and an agent: train to geometric budgets, judge each.

A scaling cell asks an agent for one `BudgetRun` per value of the varied env parameter: every
seed trained (all seeds vmapped in one compiled call where possible) and its policy judged at each
budget of a geometric list. What "judged" means is a `Criterion`: exact suboptimality
V* − V(π) ≤ tolerance where the env family has exact tools, else a fresh-env evaluation of
success or return against a threshold.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

CRITERIA = ("exact", "success", "return")
UNITS = ("episodes", "steps")
SCALING_AGENTS = ("ppo", "calibration", "optimal")  # the agents a scaling cell may name


@dataclass(frozen=True)
class Criterion:
    """How a policy at a budget passes: `exact` (V* − V(π) ≤ value) or eval metric ≥ value."""

    on: str  # one of CRITERIA
    value: float

    def describe(self) -> str:
        if self.on == "exact":
            return f"V* - V(pi) <= {self.value:g} (exact policy value)"
        return f"eval {self.on} >= {self.value:g} (fresh envs)"

    def passes(self, metric: np.ndarray) -> np.ndarray:
        """Which metrics pass: suboptimality at most `value` (exact), else at least `value`."""
        metric = np.asarray(metric, np.float64)
        return metric <= self.value if self.on == "exact" else metric >= self.value


@dataclass(frozen=True)
class BudgetRun:
    """One env instance family member, all seeds, judged at every budget."""

    budgets: np.ndarray  # [E] int64, increasing, in `unit`
    unit: str  # "episodes" or "steps"
    metric: np.ndarray  # [seeds, E] float64: V* − V(π) for "exact", else the eval metric
    passes: np.ndarray  # [seeds, E] bool
    criterion: Criterion
    extra: dict[str, Any]  # agent-specific facts for the record (V*, commit times, ...)


def geometric_budgets(start: int, stop: int, per_octave: int) -> np.ndarray:
    """Increasing integer budgets from `start` to at least `stop`, `per_octave` per doubling."""
    if start < 1 or stop < start or per_octave < 1:
        raise ValueError(
            f"budgets need 1 <= start <= stop and per_octave >= 1; got start={start}, "
            f"stop={stop}, per_octave={per_octave}"
        )
    count = int(np.ceil(np.log2(stop / start) * per_octave - 1e-9)) + 1  # stop itself ends it
    budgets = np.round(start * 2.0 ** (np.arange(count) / per_octave)).astype(np.int64)
    return np.unique(budgets)


# (env_id, env_overrides, *, budgets, unit, criterion, num_seeds, seed, agent_params, log)
# -> BudgetRun. `log(label, budget, scalars)` after each budget lets the runner put per-budget
# curves into TensorBoard; the runner files them under the value being run, and `label` (the env
# overrides, say) only names the run in messages.
BudgetAgent = Callable[..., BudgetRun]
BudgetLog = Callable[[str, int, dict[str, float]], None]

# Agent name -> the agent, or "module:function" imported on first use (tests put fakes here).
BUDGET_AGENTS: dict[str, BudgetAgent | str] = {
    "ppo": "scalegym.agents.ppo.budgets:ppo_budget_run",
    "calibration": "scalegym.agents.baselines.calibration:calibration_budget_run",
    "optimal": "scalegym.agents.baselines.calibration:optimal_budget_run",
}


def budget_agent(name: str) -> BudgetAgent:
    """The budget agent called `name` (one of `SCALING_AGENTS`), imported lazily."""
    if name not in BUDGET_AGENTS:
        raise ValueError(f"unknown scaling agent {name!r}; allowed: {', '.join(BUDGET_AGENTS)}")
    agent = BUDGET_AGENTS[name]
    if callable(agent):
        return agent
    module, _, function = agent.partition(":")
    return getattr(importlib.import_module(module), function)


def run_label(env_overrides: dict[str, Any]) -> str:
    """A short name for one run, from its env overrides: `height=8, width=8`."""
    return ", ".join(f"{key}={value}" for key, value in env_overrides.items())
