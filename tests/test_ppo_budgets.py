"""PPO as a budget agent: a run that does not depend on its grid, budgets recorded as trained,
and one instance per seed (trained, evaluated and judged on its own)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scalegym.agents.budgets import BudgetRequest, Criterion, budget_request, geometric_budgets
from scalegym.agents.ppo import budgets as ppo_budgets
from scalegym.agents.ppo.config import PPOConfig
from scalegym.agents.ppo.loss import learning_rate
from scalegym.core.resolve import resolve_env
from scalegym.envs.pomdp.finite_pomdp import instance_batch

SIZE = 8  # RevealingBandit: 8 candidates spelled by 3 binary actions, H = 3
SMALL = {"num_envs": 4, "num_steps": 8, "num_minibatches": 2, "update_epochs": 1}
SMALL |= {"memory": 8, "hidden": [8]}  # one update: 32 env steps, 10.67 episodes


def bandit_request(budgets: np.ndarray, num_seeds: int = 2, **kwargs: Any) -> BudgetRequest:
    return budget_request(
        resolve_env("RevealingBandit-v0", size=SIZE),
        budgets=budgets,
        unit="episodes",
        criterion=kwargs.pop("criterion", Criterion("exact", 0.05)),
        num_seeds=num_seeds,
        seed=3,
        agent_params=SMALL,
        **kwargs,
    )


class FirstBudget(Exception):
    """Raised by `runner_at_first_budget`'s judge: the run stops at its first judgement."""


def runner_at_first_budget(monkeypatch: pytest.MonkeyPatch, request: BudgetRequest) -> Any:
    """The runner [K] the run judges at its first budget (the run is stopped there)."""
    seen: list[Any] = []

    def capture(*args: Any) -> Any:
        def judge(runner: Any) -> np.ndarray:
            seen.append(runner)
            raise FirstBudget

        return judge, {}

    monkeypatch.setattr(ppo_budgets, "make_judge", capture)
    with pytest.raises(FirstBudget):
        ppo_budgets.ppo_budget_run(request, lambda *a: None)
    return seen[0]


def same_bits(a: Any, b: Any) -> bool:
    leaves = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in leaves)


def test_first_budget_is_the_same_whether_the_grid_ends_at_2_12_or_2_16(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configs, runners = [], []
    for stop in (2**12, 2**16):
        request = bandit_request(geometric_budgets(32, stop, 2))
        config = ppo_budgets.budget_config(request.env, request.agent_params)
        configs.append(config)
        runners.append(runner_at_first_budget(monkeypatch, request))
    short, long = runners
    assert int(short.update[0]) == int(long.update[0]) == 3  # 32 episodes: 3 updates
    # bitwise: network parameters and Adam's moments after the first budget
    assert same_bits(short.train_state.params, long.train_state.params)
    assert same_bits(short.train_state.opt_state, long.train_state.opt_state)
    # the learning rate is a function of the step only: constant, whatever the grid's end
    assert all(not c.anneal_lr and learning_rate(c) == c.learning_rate == 1e-3 for c in configs)


def test_plain_training_still_anneals_over_its_own_length() -> None:
    config = PPOConfig(num_envs=4, num_steps=8, num_minibatches=2, update_epochs=1)
    for updates in (4, 64):
        schedule = learning_rate(config.replace(total_timesteps=32 * updates))
        assert float(schedule(0)) == pytest.approx(2.5e-4)
        assert float(schedule(2 * updates)) == pytest.approx(0.0)  # 2 optimiser steps per update


def test_the_budget_agent_refuses_an_annealed_rate() -> None:
    request = replace(bandit_request(np.array([16, 32])), agent_params={**SMALL, "anneal_lr": True})
    with pytest.raises(ValueError, match="anneal_lr = true: the ppo scaling agent trains at a"):
        ppo_budgets.ppo_budget_run(request, lambda *a: None)


def test_budgets_at_s_8_merge_into_whole_updates() -> None:
    # RevealingBandit at S = 8 with the family's settings: 64 envs x 32 steps = 2048 env steps
    # per update, 3 steps per episode: one update trains 682 whole episodes.
    asked = geometric_budgets(256, 4096, 2)  # 256, 362, 512, 724, 1024, 1448, 2048, 2896, 4096
    plan = ppo_budgets.budget_plan(asked, batch_size=2048, steps_per_unit=3)
    assert plan.updates.tolist() == [1, 2, 3, 4, 6]
    assert plan.trained.tolist() == [682, 1365, 2048, 2730, 4096]
    assert plan.asked == ((256, 362, 512, 724, 1024), (1448,), (2048,), (2896,), (4096,))
    steps = ppo_budgets.budget_plan(
        np.array([100, 128, 300, 1000]), batch_size=128, steps_per_unit=1
    )
    assert steps.trained.tolist() == [128, 256, 896] and steps.asked[0] == (100, 128)
    with pytest.raises(ValueError, match="shorter than one episode"):
        ppo_budgets.budget_plan(asked, batch_size=2, steps_per_unit=3)


@dataclass(frozen=True)
class Spell:
    """A history policy that spells one candidate of a binary RevealingBandit, digit by depth."""

    candidate: int
    depth: int

    def initial(self, n: int) -> None:
        return None

    def __call__(self, carry: None, symbols: np.ndarray, inputs: np.ndarray) -> tuple[None, Any]:
        digits = (self.candidate >> (self.depth - 1 - np.asarray(symbols))) % 2  # [n]
        return None, np.eye(2)[digits]


def stacked(params: list[Any]) -> Any:
    return jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *params)


def test_exact_values_judge_each_seed_on_its_own_instance() -> None:
    resolved = resolve_env("RevealingBandit-v0", size=SIZE)
    env = resolved.env
    # V* = 1/2 + αε/2 differs with ε; one instance per ε
    made = [
        env.make_params(size=SIZE, epsilon=e, instance_seed=s) for e, s in ((0.5, 1), (0.25, 2))
    ]
    values = ppo_budgets.exact_values(resolved, stacked(made))
    assert values.v_star.tolist() == [env.optimal_value(p) for p in made] == [0.625, 0.5625]
    # distinct secrets, one ε: spelling instance 0's secret is optimal on seed 0 only
    instances = instance_batch(env, [1, 2, 3], size=SIZE)
    secrets = np.asarray(instances.secret)
    assert secrets[0] != secrets[1] and secrets[0] != secrets[2]
    values = ppo_budgets.exact_values(resolved, instances)
    spell = Spell(int(secrets[0]), depth=3)
    gap = values.suboptimality([spell] * 3)  # [K]
    assert gap[0] == pytest.approx(0.0, abs=1e-12)
    assert gap[1:] == pytest.approx([0.125, 0.125])  # V* - 1/2 = αε/2 on a wrong candidate
    # one shared instance: every seed judged on it
    shared = ppo_budgets.exact_values(resolve_env("RevealingBandit-v0", size=SIZE, instance_seed=1))
    assert shared.suboptimality([spell] * 2) == pytest.approx([0.0, 0.0], abs=1e-12)


def test_seeds_train_on_their_own_instances(monkeypatch: pytest.MonkeyPatch) -> None:
    env = resolve_env("RevealingBandit-v0", size=SIZE).env
    budgets = np.array([16])
    apart = instance_batch(env, [1, 2], size=SIZE)  # seed 1 on another secret
    alike = instance_batch(env, [1, 1], size=SIZE)
    assert int(apart.secret[0]) != int(apart.secret[1])
    runs = [
        runner_at_first_budget(monkeypatch, bandit_request(budgets, instances=i))
        for i in (apart, alike)
    ]
    params = [r.train_state.params for r in runs]
    assert same_bits(ppo_budgets.seed_slice(params[0], 0), ppo_budgets.seed_slice(params[1], 0))
    assert not same_bits(ppo_budgets.seed_slice(params[0], 1), ppo_budgets.seed_slice(params[1], 1))


def test_a_run_records_what_it_trained_on_each_seeds_instance() -> None:
    env = resolve_env("RevealingBandit-v0", size=SIZE).env
    made = [
        env.make_params(size=SIZE, epsilon=e, instance_seed=s) for e, s in ((0.5, 1), (0.25, 2))
    ]
    logged: list[int] = []
    request = bandit_request(geometric_budgets(4, 64, 2), instances=stacked(made))
    run = ppo_budgets.ppo_budget_run(request, lambda label, budget, s: logged.append(budget))
    # asked 4, 6, 8, 11, 16 | 23 | 32 | 45 | 64 episodes; an update trains 32 / 3 episodes
    assert run.budgets.tolist() == logged == run.extra["budgets_trained"] == [10, 21, 32, 42, 64]
    assert run.extra["updates"] == [1, 2, 3, 4, 6]
    assert run.extra["budgets_asked"] == [[4, 6, 8, 11, 16], [23], [32], [45], [64]]
    assert run.extra["env_steps"] == [32 * u for u in run.extra["updates"]]
    assert run.extra["config"]["anneal_lr"] is False
    assert run.extra["config"]["prev_action_reward"] is True  # the family's GRU, judged exactly
    assert run.extra["config"]["total_timesteps"] == 192
    assert run.extra["v_star"] == [0.625, 0.5625]  # each seed's own instance
    assert run.metric.shape == run.passes.shape == (2, 5)
