"""The calibration learner: its closed-form policy values are exact, and it finds the secret."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import scalegym
from scalegym.agents.baselines.calibration import (
    calibration_budget_run,
    candidate_actions,
    committed_value,
    optimal_budget_run,
    visit_episodes,
)
from scalegym.agents.budgets import BudgetRequest, Criterion, budget_request, geometric_budgets
from scalegym.agents.registry import budget_agent
from scalegym.core.resolve import resolve_env
from scalegym.envs.pomdp import exact
from scalegym.envs.pomdp.finite_pomdp import instance_batch
from scalegym.suites.scaling import first_passing_budgets, fit_power_law


class SpellThenParity:
    """HistoryPolicy: spell `candidate`'s actions, then play parity[i] on pair symbol i."""

    def __init__(self, actions: np.ndarray, parity: np.ndarray, k: int, num_actions: int):
        self.actions, self.parity, self.k, self.num_actions = actions, parity, k, num_actions

    def initial(self, n: int) -> np.ndarray:
        return np.zeros(n, np.int64)  # actions taken so far

    def __call__(self, carry, symbols, inputs):
        probs = np.zeros((len(symbols), self.num_actions))
        for row, (t, symbol) in enumerate(zip(carry, symbols, strict=True)):
            if t < len(self.actions) - (1 if self.parity is not None else 0):
                probs[row, self.actions[t]] = 1.0
            else:
                probs[row, int(self.parity[symbol - self.k])] = 1.0
        return carry + 1, probs


class SpellPerRoom:
    """HistoryPolicy on PerRoomSecret: in room r (the first symbol) spell actions[r] [K, H]."""

    def __init__(self, actions: np.ndarray, num_actions: int):
        self.actions, self.num_actions = actions, num_actions

    def initial(self, n: int) -> np.ndarray:
        return np.zeros((n, 2), np.int64)  # (room, actions taken)

    def __call__(self, carry, symbols, inputs):
        room = np.where(carry[:, 1] == 0, symbols, carry[:, 0])
        probs = np.zeros((len(symbols), self.num_actions))
        probs[np.arange(len(symbols)), self.actions[room, carry[:, 1]]] = 1.0
        return np.stack([room, carry[:, 1] + 1], axis=1), probs


@pytest.mark.parametrize(
    "env_id, overrides",
    [
        ("PaninskiLock-v0", {"size": 8, "alpha": 0.7, "epsilon": 0.4}),
        ("PaninskiLock-v0", {"size": 9, "num_actions": 3, "num_elements": 6}),
        ("RevealingBandit-v0", {"size": 8, "alpha": 0.3, "epsilon": 0.9}),
    ],
)
def test_committed_value_is_the_exact_policy_value(env_id, overrides) -> None:
    rng = np.random.default_rng(0)
    for seed in range(3):
        env, params = scalegym.make(env_id, instance_seed=seed, **overrides)
        model = env.tabular(params)
        paninski = env_id.startswith("Paninski")
        half = (params.num_elements or params.size) // 2 if paninski else 1
        secret = int(params.secret)
        for candidate in {0, params.size - 1, secret}:
            parity = rng.integers(2, size=half)
            actions = np.asarray(candidate_actions(env, params, jnp.int32(candidate)))
            k = env.horizon(params) - 1
            policy = SpellThenParity(actions, parity if paninski else None, k, params.num_actions)
            want = exact.policy_value(model, policy)
            got = float(committed_value(env, params, jnp.int32(candidate), jnp.asarray(parity)))
            assert got == pytest.approx(want, abs=1e-6)


def test_learner_commits_to_the_secret_and_then_passes() -> None:
    budgets = np.array([64, 256, 1024, 4096, 16384, 65536, 262144])
    g = 0.7 * 0.7 / 2
    request = budget_request(
        resolve_env("RevealingBandit-v0", size=4, alpha=0.7, epsilon=0.7),
        budgets=budgets,
        unit="episodes",
        criterion=Criterion("exact", g / 2),
        num_seeds=6,
        seed=0,
    )
    run = calibration_budget_run(request, lambda *a: None)
    assert run.extra["committed_to_secret"] == 6
    # Suboptimality is g while exploring (minus the uniform policy's share) and 0 once committed.
    assert np.all(np.isclose(run.metric, 0.0, atol=1e-6) | (run.metric > g / 2))
    assert run.passes[:, -1].all() and not run.passes[:, 0].any()
    first = [c for c in run.extra["commit_episodes"]]
    m = visit_episodes(
        "count", scalegym.make("RevealingBandit-v0", size=4, alpha=0.7, epsilon=0.7)[1], 6.0, 2.0
    )
    assert all(c % m == 0 and c <= 4 * m * 2 for c in first)  # within two passes of 4 candidates


def one_budget(env_id: str, unit: str, **agent_params: object) -> BudgetRequest:
    return budget_request(
        resolve_env(env_id),
        budgets=np.array([10]),
        unit=unit,
        criterion=Criterion("exact", 0.1),
        num_seeds=1,
        seed=0,
        agent_params=agent_params,
    )


def test_bad_settings_are_refused() -> None:
    log = lambda *a: None
    with pytest.raises(ValueError, match="unit"):
        calibration_budget_run(one_budget("RevealingBandit-v0", "steps"), log)
    with pytest.raises(ValueError, match="allowed: PaninskiLock"):
        calibration_budget_run(one_budget("Tiger-v0", "episodes"), log)
    with pytest.raises(ValueError, match="threshhold"):
        calibration_budget_run(one_budget("RevealingBandit-v0", "episodes", threshhold=3), log)


def test_optimal_agent_has_zero_gap() -> None:
    tiger = budget_request(
        resolve_env("Tiger-v0", horizon=3),
        budgets=np.array([1, 2]),
        unit="episodes",
        criterion=Criterion("exact", 1e-9),
        num_seeds=2,
        seed=0,
    )
    run = optimal_budget_run(tiger, lambda *a: None)
    assert run.passes.all() and abs(run.extra["gap"]) < 1e-9


@pytest.mark.parametrize("size, num_actions", [(4, 2), (8, 2), (9, 3)])
def test_room_committed_value_is_the_exact_policy_value(size, num_actions) -> None:
    rng = np.random.default_rng(1)
    for seed in range(3):
        env, params = scalegym.make(
            "PerRoomSecret-v1", size=size, num_actions=num_actions, alpha=0.7, epsilon=0.6,
            instance_seed=seed,
        )  # fmt: skip
        model = env.tabular(params)
        keys = np.asarray(params.keys)
        for choice in (keys, np.zeros(size, int), rng.integers(size, size=size)):
            actions = np.stack(
                [np.asarray(candidate_actions(env, params, jnp.int32(c))) for c in choice]
            )  # [K, H]
            want = exact.policy_value(model, SpellPerRoom(actions, num_actions))
            got = float(committed_value(env, params, jnp.asarray(choice), jnp.zeros(1)))
            assert got == pytest.approx(want, abs=1e-6)


def test_room_learner_commits_to_every_room_key_and_then_passes() -> None:
    size, alpha, epsilon, seeds = 4, 0.8, 0.8, 6
    g = alpha * epsilon / 2
    request = budget_request(
        resolve_env("PerRoomSecret-v1", size=size, alpha=alpha, epsilon=epsilon),
        budgets=geometric_budgets(16, 2**20, 2),
        unit="episodes",
        criterion=Criterion("exact", g / (4 * size)),  # passing needs every room's key
        num_seeds=seeds,
        seed=0,
    )
    run = calibration_budget_run(request, lambda *a: None)
    assert run.extra["committed_to_secret"] == seeds
    assert run.passes[:, -1].all() and not run.passes[:, 0].any()
    # Each room's committed key is worth g/K, each uncommitted room g/(K·C): the judged
    # suboptimality is g·(rooms not yet on their key)/K less the uniform share of the others.
    share = g / size * np.arange(size + 1)  # [0, g/K, ..., g]
    left = run.metric[..., None] - share * (1 - 1 / size)
    assert np.all(np.isclose(left, 0.0, atol=1e-6).any(axis=-1)), run.metric
    m = visit_episodes("rooms", request.env.params, 6.0, 2.0)
    # Every room commits after m episodes of its own at least.
    assert all(c is not None and c >= size * m for c in run.extra["commit_episodes"])


def test_room_learner_exponent_in_k_is_two() -> None:
    # K = 2..32 rooms (C = K keys a room), α = ε = 1 (g = 1/2, m = 64 episodes a visit), 6
    # seeds; passing at g/128 needs every room's key at every K here (one room off costs
    # g(1 − 1/C)/K ≥ g/64). Budgets 16 a doubling, so N̂ is not stuck on a coarse grid. About
    # 7 s on 2 cores (13 s with them busy), mostly compiling the learner once per K.
    sizes, seeds, g = [2, 4, 8, 16, 32], 6, 0.5
    agent = budget_agent("calibration")
    first = []
    for size in sizes:
        request = budget_request(
            resolve_env("PerRoomSecret-v1", size=size, alpha=1.0, epsilon=1.0),
            budgets=geometric_budgets(16, 2**22, 16),
            unit="episodes",
            criterion=Criterion("exact", g / 128),
            num_seeds=seeds,
            seed=size,
        )
        run = agent(request, lambda *a: None)
        assert run.extra["committed_to_secret"] == seeds
        first.append(first_passing_budgets(run.budgets, run.passes))
    fit = fit_power_law(np.array(sizes), np.array(first))
    assert fit.excluded == () and fit.ci_low <= 2.0 <= fit.ci_high, fit
    assert abs(fit.exponent - 2.0) < 0.15, fit


@pytest.mark.parametrize(
    "env_id, overrides",
    [
        ("RevealingBandit-v0", {"size": 8, "alpha": 0.8, "epsilon": 0.8}),
        ("PerRoomSecret-v1", {"size": 4, "alpha": 0.8, "epsilon": 0.8}),
    ],
)
def test_instances_give_each_seed_its_own_secret(env_id, overrides) -> None:
    resolved = resolve_env(env_id, **overrides)
    env = resolved.env
    secret = lambda p: tuple(np.atleast_1d(np.asarray(p.keys if hasattr(p, "keys") else p.secret)))
    seeds, seen = [], set()
    for s in range(64):  # four instance seeds with distinct secrets
        if (found := secret(env.make_params(**overrides, instance_seed=s))) not in seen:
            seen.add(found)
            seeds.append(s)
    seeds = seeds[:4]
    instances = instance_batch(env, seeds, **overrides)
    g = 0.8 * 0.8 / 2
    request = budget_request(
        resolved,
        budgets=geometric_budgets(16, 2**20, 2),
        unit="episodes",
        criterion=Criterion("exact", g / 32),
        num_seeds=len(seeds),
        seed=0,
        instances=instances,
    )
    run = calibration_budget_run(request, lambda *a: None)
    # Committing to any other seed's secret would leave a gap of at least g/K: every seed
    # passes only on its own instance's secret.
    assert run.extra["committed_to_secret"] == len(seeds)
    assert run.passes[:, -1].all()
    optimal = optimal_budget_run(request, lambda *a: None)
    assert optimal.passes.all() and np.allclose(optimal.extra["gaps"], 0.0, atol=1e-9)
    shared = budget_request(
        resolved,
        budgets=np.array([16]),
        unit="episodes",
        criterion=Criterion("exact", 0.1),
        num_seeds=len(seeds) + 1,
        seed=0,
        instances=instances,
    )
    with pytest.raises(ValueError, match="one instance per seed"):
        calibration_budget_run(shared, lambda *a: None)
