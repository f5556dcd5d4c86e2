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
from scalegym.agents.budgets import BudgetRequest, Criterion, budget_request
from scalegym.core.resolve import resolve_env
from scalegym.envs.pomdp import exact


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


@pytest.mark.parametrize(
    "env_id, overrides",
    [
        ("PaninskiLock-v0", {"size": 8, "alpha": 0.7, "epsilon": 0.4}),
        ("PaninskiLock-v0", {"size": 9, "num_actions": 3, "num_elements": 6}),
        ("RevealingBandit-v0", {"size": 8, "alpha": 0.3, "epsilon": 0.9}),
        ("PerRoomSecret-v0", {"size": 4}),
    ],
)
def test_committed_value_is_the_exact_policy_value(env_id, overrides) -> None:
    rng = np.random.default_rng(0)
    for seed in range(3):
        env, params = scalegym.make(env_id, instance_seed=seed, **overrides)
        model = env.tabular(params)
        paninski = env_id.startswith("Paninski")
        half = (params.num_elements or params.size) // 2 if paninski else 1
        candidates = params.size**2 if env_id.startswith("PerRoom") else params.size
        secret = int(params.secret) if hasattr(params, "secret") else None
        for candidate in {0, candidates - 1, secret if secret is not None else 1}:
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
