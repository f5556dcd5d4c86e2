"""Belief (fair) and oracle rollout planners on the POMDP families (scalegym.agents.belief).

Known answers come from `exact.py`: V* by the belief-tree DP and the exact value of the fair
planner with fixed keys (`PlannerHistoryPolicy`, every reachable history weighted), so most
comparisons carry no Monte-Carlo error. Instances are tiny (Tiger H = 3, PaninskiLock S = 4) to
keep compiles short.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scalegym.agents.belief import BeliefPlanner, OraclePlanner, PlannerHistoryPolicy
from scalegym.agents.planning import run_episodes
from scalegym.envs.pomdp import env as pomdp
from scalegym.envs.pomdp import exact

FILTER = {"num_particles": 8, "filter_proposals": 16}


@functools.cache
def tiger(horizon: int) -> tuple:
    env = pomdp.Tiger()
    return env, env.make_params(horizon=horizon)


@functools.cache  # the tests below share these exact values (each costs a compile)
def exact_belief_value(env, params, budget: int, seed: int) -> float:
    policy = PlannerHistoryPolicy(
        env, params, BeliefPlanner(budget=budget, **FILTER), jax.random.PRNGKey(seed)
    )
    return exact.policy_value(env.tabular(params), policy)


def test_belief_value_below_v_star_on_tiger() -> None:
    # Tiger H = 3: V* = 2.72 (belief-tree DP = closed form). Exact values of the fair planner with
    # keys fixed (seed 0): budget 28 -> -5.695, budget 256 -> -24.89: one key is not monotone in
    # budget. Monte-Carlo (512 episodes, key 7): budget 32 -49.5 +- 3.1, 64 -23.4 +- 2.4,
    # 256 -14.5 +- 2.0: the mean rises with budget, toward the uniform-rollout policy's
    # improvement, not toward V* (random continuations open doors at -100). So only the bound
    # is asserted here; the rise is a measurement (issue 11 note), not a test.
    env, params = tiger(3)
    v_star = exact.optimal_value(env.tabular(params))
    assert v_star == pytest.approx(env.optimal_value(params), abs=1e-9)
    for budget in (28, 256):
        assert exact_belief_value(env, params, budget, seed=0) <= v_star + 1e-9


def test_oracle_bounds_on_tiger() -> None:
    # The oracle reads the side: its value must reach past V* toward H·treasure = 30 (the
    # full-information bound) and never beyond it; the fair planner stays below the oracle.
    env, params = tiger(3)
    episodes = 256
    out = run_episodes(env, params, OraclePlanner(budget=64), episodes, jax.random.PRNGKey(1))
    returns = np.asarray(out["return"])
    mean, se = returns.mean(), returns.std(ddof=1) / np.sqrt(episodes)
    assert int(np.asarray(out["sim_steps"]).max()) <= 64 * 3
    assert mean <= 3 * float(params.treasure) + 1e-6
    assert mean > env.optimal_value(params) + 3 * se
    for budget in (28, 256):  # the fair planner's exact values of the test above
        assert exact_belief_value(env, params, budget, seed=0) <= mean + 3 * se


def play_paninski(env, params, planner, key):
    """The planner's actions [H] in one episode; env and planner keys derive from `key` only."""
    k_env, k_plan = jax.random.split(key)
    obs, state = env.reset_env(k_env, params)
    memory = planner.init(env, params, obs, state, k_plan)
    actions, steps = [], []
    for t in range(env.fixed_episode_length(params)):
        decision, memory = planner.act(
            env, params, memory, obs, state, jax.random.fold_in(k_plan, t)
        )
        k_step = jax.random.fold_in(k_env, t)
        obs, state, _, _, _ = env.step_env(k_step, state, decision.action, params)
        memory = planner.observe(env, params, memory, decision.action, obs)
        actions.append(decision.action)
        steps.append(decision.sim_steps)
    return jnp.stack(actions), jnp.stack(steps)


def test_fair_planner_never_reads_secret_or_hidden_state() -> None:
    # Two PaninskiLock instances (different secret and θ) and a poisoned one (no candidate is
    # the secret, θ = NaN): the observations before the last action coincide under the same env
    # keys (pairs are uniform under every instance), while the hidden elements differ; the fair
    # planner's actions must then coincide too. One jitted vmap over the three instances and
    # eight keys; the same keys again give the same actions (determinism).
    env = pomdp.PaninskiLock()
    a, b = (env.make_params(size=4, instance_seed=s) for s in (1, 2))
    assert int(a.secret) != int(b.secret)
    poisoned = a.replace(secret=jnp.int32(-1), theta=jnp.full_like(a.theta, jnp.nan))
    batch = jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), a, b, poisoned)
    planner = BeliefPlanner(budget=40, **FILTER)
    play = jax.jit(
        jax.vmap(jax.vmap(lambda p, k: play_paninski(env, p, planner, k), (None, 0)), (0, None))
    )
    keys = jax.random.split(jax.random.PRNGKey(3), 8)
    actions, steps = play(batch, keys)  # [3, 8, H]
    assert np.array_equal(actions[0], actions[1]) and np.array_equal(actions[0], actions[2])
    assert int(steps.max()) <= 40 and int(steps[:, :, 0].max()) <= 40 - 16
    again, _ = play(batch, keys)
    assert np.array_equal(np.asarray(actions), np.asarray(again))
    assert len({tuple(row) for row in np.asarray(actions[0])}) > 1  # the keys do matter


def test_unsupported_env_and_bad_config_raise() -> None:
    class NotAPOMDP:
        name = "ToyChain-v0"

    with pytest.raises(ValueError, match="ToyChain-v0"):
        BeliefPlanner().init(NotAPOMDP(), None, None, None, jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="ToyChain-v0"):
        OraclePlanner().init(NotAPOMDP(), None, None, None, jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="filter_proposals"):
        BeliefPlanner(num_particles=32, filter_proposals=16)
    assert "oracle" in OraclePlanner().name and OraclePlanner().oracle
    assert not BeliefPlanner().oracle and hash(BeliefPlanner()) == hash(BeliefPlanner())
