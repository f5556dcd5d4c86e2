"""The protocol between a `scaling` cell and an agent: train to geometric budgets, judge each.

A scaling cell asks an agent for one `BudgetRun` per value of the varied env parameter: every
seed trained (all seeds vmapped in one compiled call where possible) and its policy judged at each
budget of a geometric list. What "judged" means is a `Criterion`: exact suboptimality
V* − V(π) ≤ tolerance where the env family has exact tools, else a fresh-env evaluation of
success or return against a threshold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from scalegym.core.resolve import ResolvedEnv

CRITERIA = ("exact", "success", "return")
UNITS = ("episodes", "steps")


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


@dataclass(frozen=True)
class BudgetRequest:
    """What a budget agent runs: one value of a scaling cell, every seed, every budget."""

    env: ResolvedEnv  # built with this value's overrides (`env.overrides`)
    budgets: np.ndarray  # [E] int64, increasing, in `unit`
    unit: str  # one of UNITS
    criterion: Criterion
    num_seeds: int
    seed: int
    agent_params: dict[str, Any]  # the agent's own settings (PPOConfig fields for ppo)
    label: str  # names the run in messages (`run_label` of the overrides, or the env id)
    # One instance per seed: env.params with every leaf stacked [K, ...] along the seed axis
    # (seed k plays instance k, vmapped with it); None: every seed plays env.params.
    instances: Any = None


# `log(label, budget, scalars)` after each budget lets the runner put per-budget curves into
# TensorBoard; the runner files them under the value being run.
BudgetLog = Callable[[str, int, dict[str, float]], None]
BudgetAgent = Callable[[BudgetRequest, BudgetLog], BudgetRun]


def budget_request(
    env: ResolvedEnv,
    *,
    budgets: np.ndarray,
    unit: str,
    criterion: Criterion,
    num_seeds: int,
    seed: int,
    agent_params: dict[str, Any] | None = None,
    instances: Any = None,
) -> BudgetRequest:
    """A request labelled by the env's overrides (`height=8, width=8`), else by its id;
    `instances`: params [K, ...] stacked along the seed axis (see `BudgetRequest`)."""
    return BudgetRequest(
        env=env,
        budgets=np.asarray(budgets, np.int64),
        unit=unit,
        criterion=criterion,
        num_seeds=num_seeds,
        seed=seed,
        agent_params=dict(agent_params or {}),
        label=run_label(dict(env.overrides)) or env.id,
        instances=instances,
    )


def run_label(env_overrides: dict[str, Any]) -> str:
    """A short name for one run, from its env overrides: `height=8, width=8`."""
    return ", ".join(f"{key}={value}" for key, value in env_overrides.items())
