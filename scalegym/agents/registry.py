"""The one registry of agents and planners: names, roles, what builds each, what each needs.

Roles: "train" (a training run, `scalegym train`), "scaling" (a budget agent of a scaling cell,
`scalegym.agents.budgets`) and "plan" (a search planner, `scalegym plan` and search cells). The
CLI's help and `scalegym list`, request validation and the suite files read names from here.
Entry points are "module:function" strings, imported on first use, or the callables themselves
(tests register fakes with `register` or by patching `SPECS`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from scalegym.core.fields import check_fields, dataclass_fields

ROLES = ("train", "scaling", "plan")
_ROLE_NOUNS = {"train": "agent", "scaling": "scaling agent", "plan": "planner"}
EntryPoint = str | Callable[..., Any]


@dataclass(frozen=True)
class AgentSpec:
    """One agent or planner.

    `entry_points` maps each role it plays to what plays it: for "train" a function
    `(TrainRequest, *, log, progress) -> TrainResult`, for "scaling" a `BudgetAgent`
    (`scalegym.agents.budgets`), for "plan" a planner class (a frozen dataclass built as
    `cls(budget=..., **options)`) or a function `(budget, **options) -> planner`.
    `checkpoint_loader`: a planner's `(path, budget, *, env_overrides, **options) -> planner`
    that starts it from a `scalegym train` run.
    """

    name: str
    summary: str  # one line, for help and `scalegym list`
    entry_points: Mapping[str, EntryPoint]
    config: str = ""  # "module:Class" of its settings ("" when it takes none or a plain table)
    needs: str = ""  # what the env (or the command) must give it, e.g. "a POMDP family"
    counts_work: bool = False  # a planner that reports its simulated work (`Decision.sim_work`)
    checkpoint_loader: EntryPoint = ""

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(role for role in ROLES if role in self.entry_points)

    def entry_point(self, role: str) -> Any:
        """What plays `role`, imported now if it is named by "module:function"."""
        return _load(self.entry_points[role])


def _load(target: EntryPoint) -> Any:
    if callable(target):
        return target
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


_POMDP = "a POMDP family: PaninskiLock, RevealingBandit, PerRoomSecret, Tiger, NoisyCombinationLock"
_SEARCH = "scalegym.agents.planners.search"
_BELIEF = "scalegym.agents.planners.belief"
_GUMBEL = "scalegym.agents.planners.gumbel"

SPECS: dict[str, AgentSpec] = {
    spec.name: spec
    for spec in (
        AgentSpec(
            "ppo",
            "PPO, PureJaxRL style, feed-forward or GRU, all seeds in one compiled call",
            {
                "train": "scalegym.agents.train:train_ppo",
                "scaling": "scalegym.agents.ppo.budgets:ppo_budget_run",
            },
            config="scalegym.agents.ppo.config:PPOConfig",
        ),
        AgentSpec(
            "calibration",
            "a learner with a known sample complexity, to check the scaling harness",
            {"scaling": "scalegym.agents.baselines.calibration:calibration_budget_run"},
            needs="a revealing family (PaninskiLock, RevealingBandit, PerRoomSecret); "
            'unit "episodes", criterion "exact"',
        ),
        AgentSpec(
            "optimal",
            "the exact optimal policy (the belief-tree DP): the ceiling of a scaling cell",
            {"scaling": "scalegym.agents.baselines.calibration:optimal_budget_run"},
            needs="a family with exact tools (tabular, optimal_value)",
        ),
        AgentSpec(
            "random-shooting",
            "best first action of budget // horizon random action sequences",
            {"plan": f"{_SEARCH}:RandomShooting"},
            config=f"{_SEARCH}:RandomShooting",
            counts_work=True,
        ),
        AgentSpec(
            "cem",
            "cross-entropy method over per-step action distributions, CEM-MPC",
            {"plan": f"{_SEARCH}:CEM"},
            config=f"{_SEARCH}:CEM",
            counts_work=True,
        ),
        AgentSpec(
            "beam",
            "breadth-first beam search over action sequences",
            {"plan": f"{_SEARCH}:BeamSearch"},
            config=f"{_SEARCH}:BeamSearch",
            counts_work=True,
        ),
        AgentSpec(
            "gumbel-muzero",
            "Gumbel MuZero through mctx on the env's own model",
            {"plan": f"{_GUMBEL}:make_gumbel"},
            config=f"{_GUMBEL}:GumbelMuZero",
            needs="optional: --checkpoint, a `scalegym train` run (its PPO prior and value)",
            checkpoint_loader=f"{_GUMBEL}:from_checkpoint",
        ),
        AgentSpec(
            "belief",
            "the fair POMDP planner on posterior particles, model=known|prior, "
            "search=tree|rollouts",
            {"plan": f"{_BELIEF}:BeliefPlanner"},
            config=f"{_BELIEF}:BeliefPlanner",
            needs=_POMDP,
        ),
        AgentSpec(
            "oracle",
            "rollouts from the true hidden state, labelled oracle in reports",
            {"plan": f"{_BELIEF}:OraclePlanner"},
            config=f"{_BELIEF}:OraclePlanner",
            needs=_POMDP,
        ),
    )
}


def register(spec: AgentSpec, *, replace: bool = False) -> None:
    """Add an agent or planner; an existing name is refused unless `replace`."""
    unknown = set(spec.entry_points) - set(ROLES)
    if unknown or not spec.entry_points:
        raise ValueError(f"agent {spec.name!r}: roles {sorted(unknown)}; allowed: {ROLES}")
    if spec.name in SPECS and not replace:
        raise ValueError(f"agent {spec.name!r} is already registered; pass replace=True")
    SPECS[spec.name] = spec


def names(role: str) -> tuple[str, ...]:
    """The names that play `role` ("train", "scaling" or "plan"), in registry order."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; allowed: {', '.join(ROLES)}")
    return tuple(name for name, spec in SPECS.items() if role in spec.entry_points)


def lookup(name: str, role: str) -> AgentSpec:
    """The spec of `name` in `role`; ValueError naming the names that play it."""
    if name not in names(role):
        allowed = ", ".join(names(role))
        raise ValueError(f"unknown {_ROLE_NOUNS[role]} {name!r}; allowed: {allowed}")
    return SPECS[name]


def trainer(name: str) -> Callable[..., Any]:
    """The training function of agent `name`: `(TrainRequest, *, log, progress) -> TrainResult`."""
    return lookup(name, "train").entry_point("train")


def budget_agent(name: str) -> Callable[..., Any]:
    """The budget agent `name` of a scaling cell: a `scalegym.agents.budgets.BudgetAgent`,
    `(BudgetRequest, BudgetLog) -> BudgetRun`."""
    return lookup(name, "scaling").entry_point("scaling")


def make_planner(
    name: str,
    budget: int,
    options: dict[str, Any],
    *,
    checkpoint: str = "",
    env_overrides: dict[str, Any] | None = None,
) -> Any:
    """The planner `name` at `budget` (simulated env steps per decision) with its options.

    ValueError names an unknown planner, a bad option or value. `checkpoint` (gumbel-muzero
    only): a `scalegym train` run directory, trained on the env with `env_overrides` (the
    checkpoint does not record them).
    """
    spec = lookup(name, "plan")
    if checkpoint:
        if not spec.checkpoint_loader:
            takes = ", ".join(n for n in names("plan") if SPECS[n].checkpoint_loader)
            raise ValueError(f"planner {name!r} takes no checkpoint; only {takes} does")
        load = _load(spec.checkpoint_loader)
        return load(checkpoint, budget, env_overrides=env_overrides, **options)
    build = spec.entry_point("plan")
    if isinstance(build, type):  # a planner dataclass: its fields are the options
        allowed = [f for f in dataclass_fields(build) if f != "budget"]
        check_fields(f"planner {name!r} options", options, allowed)
        return build(budget=budget, **options)
    return build(budget, **options)


def describe() -> list[dict[str, Any]]:
    """Every agent and planner as plain data, for help texts and `scalegym list` (no imports)."""
    return [
        {
            "name": spec.name,
            "roles": list(spec.roles),
            "summary": spec.summary,
            "config": spec.config or None,
            "needs": spec.needs or None,
            "counts_work": spec.counts_work,
            "takes_checkpoint": bool(spec.checkpoint_loader),
        }
        for spec in SPECS.values()
    ]


__all__ = [
    "ROLES",
    "SPECS",
    "AgentSpec",
    "budget_agent",
    "describe",
    "lookup",
    "make_planner",
    "names",
    "register",
    "trainer",
]
