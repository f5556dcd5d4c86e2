"""Shared harness of the POMDP family tests: one env object per id, jitted rollouts of table
policies (one compile per env, shared by every test file), returns and Monte-Carlo checks."""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import scalegym

# A policy of the JAX rollouts: (key, carry, obs [E, O], starts [E] bool) -> (carry, actions [E]).
# `starts` marks the envs whose obs opens a new episode.
RolloutPolicy = Callable[[jax.Array, Any, jax.Array, jax.Array], tuple[Any, jax.Array]]

# (env id, static fields): with Tiger H=4 these are the shapes the table rollouts compile for.
ROLLOUT_SHAPES = [
    ("PaninskiLock-v0", {"size": 8}),
    ("RevealingBandit-v0", {"size": 8}),
    ("PerRoomSecret-v1", {"size": 4}),
    ("NoisyCombinationLock-v0", {"horizon": 3, "num_actions": 2}),
]


@functools.cache
def family(env_id: str) -> Any:
    """One env object per id: the jitted rollouts take the env as a static argument, so tests
    that share it share their compiles (which dominate these tests' runtime)."""
    return scalegym.make(env_id)[0]


def make(env_id: str, **overrides: Any) -> tuple[Any, Any]:
    """`scalegym.make`, with the shared env object."""
    env = family(env_id)
    return env, env.make_params(**overrides)


def unit(rng: np.random.Generator) -> float:
    """A number in (0, 1]."""
    return float(1.0 - rng.random())


def candidate_digits(candidate: int, num_actions: int, k: int) -> list[int]:
    """The k actions that spell `candidate` in the selection tree (most significant first)."""
    return [candidate // num_actions ** (k - 1 - j) % num_actions for j in range(k)]


# -- JAX rollouts ------------------------------------------------------------------------------


def rollout(
    env: Any,
    params: Any,
    key: jax.Array,
    policy: RolloutPolicy,
    carry: Any,
    *,
    num_envs: int,
    num_steps: int,
) -> tuple[dict[str, Any], jax.Array]:
    """num_envs envs stepped num_steps times with auto-reset (`env.step`).

    Returns the trajectory (obs [T, E, O] the actions were taken on, action, reward, terminated,
    truncated [T, E], time [T, E] of the state continued from, info) and the last obs [E, O].
    """
    key_reset, key_run = jax.random.split(key)
    reset = jax.vmap(env.reset, in_axes=(0, None))
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    obs, state = reset(jax.random.split(key_reset, num_envs), params)

    def body(loop: tuple, key: jax.Array) -> tuple[tuple, dict[str, Any]]:
        obs, state, carry, starts = loop
        key_act, key_env = jax.random.split(key)
        carry, action = policy(key_act, carry, obs, starts)
        next_obs, state, reward, terminated, truncated, info = step(
            jax.random.split(key_env, num_envs), state, action, params
        )
        out = {
            "obs": obs,
            "action": action,
            "reward": reward,
            "terminated": terminated,
            "truncated": truncated,
            "time": state.time,
            "info": info,
        }
        return (next_obs, state, carry, terminated | truncated), out

    starts = jnp.ones(num_envs, bool)
    (last_obs, *_), trajectory = jax.lax.scan(
        body, (obs, state, carry, starts), jax.random.split(key_run, num_steps)
    )
    return trajectory, last_obs


fast_rollout = jax.jit(rollout, static_argnames=("env", "policy", "num_envs", "num_steps"))


def episode_returns(env: Any, params: Any, trajectory: dict[str, Any]) -> np.ndarray:
    """[N] returns of the N whole episodes in a rollout that ran a multiple of H steps."""
    horizon = env.fixed_episode_length(params)
    reward = np.asarray(trajectory["reward"], np.float64)  # [T, E]
    steps, num_envs = reward.shape
    assert steps % horizon == 0
    ends = np.zeros(steps, bool)
    ends[horizon - 1 :: horizon] = True
    terminated = np.asarray(trajectory["terminated"])
    assert np.array_equal(terminated, np.broadcast_to(ends[:, None], terminated.shape))
    return reward.reshape(steps // horizon, horizon, num_envs).sum(axis=1).ravel()


def assert_matches_monte_carlo(expected: float, returns: np.ndarray, *, tolerance: float) -> None:
    """|mean − expected| < 4 standard errors; `tolerance` is the gap the estimate must resolve.
    Returns without spread (a deterministic policy on a deterministic payoff) must all be it."""
    mean = float(returns.mean())
    standard_error = float(returns.std(ddof=1)) / math.sqrt(len(returns))
    if standard_error == 0.0:
        assert np.all(returns == expected), (mean, expected)
        return
    assert standard_error < tolerance / 4, (standard_error, tolerance)
    assert abs(mean - expected) < 4 * standard_error, (mean, expected, standard_error)


def history_code(history: tuple[int, ...], num_obs: int) -> int:
    """A distinct integer per history of any length: a leading 1, then the symbols, base O."""
    code = 1
    for symbol in history:
        code = code * num_obs + symbol
    return code


def history_log_probs(
    probs_of: Callable[[tuple[int, ...]], np.ndarray], num_obs: int, num_actions: int, horizon: int
) -> np.ndarray:
    """[2·O^H, A] float32 log-probs of every history up to length H, rows by `history_code`."""
    table = np.zeros((2 * num_obs**horizon, num_actions))
    for length in range(1, horizon + 1):
        for history in itertools.product(range(num_obs), repeat=length):
            table[history_code(history, num_obs)] = probs_of(history)
    with np.errstate(divide="ignore"):  # log 0 = -inf: never sampled
        return np.log(table).astype(np.float32)


def uniform_log_probs(num_obs: int, num_actions: int, horizon: int) -> np.ndarray:
    """The uniform policy's table: its actions depend on the key alone, not on what it sees."""
    return np.full((2 * num_obs**horizon, num_actions), -math.log(num_actions), np.float32)


def table_policy(key: jax.Array, carry: tuple, obs: jax.Array, starts: jax.Array):
    """A history policy as a table: carry = (history codes [E] int32, log-probs [R, A]); the
    code takes in each symbol (`history_code`, restarted at episode starts)."""
    codes, log_probs = carry
    symbol = jnp.argmax(obs, axis=-1).astype(jnp.int32)
    codes = jnp.where(starts, 1, codes) * obs.shape[-1] + symbol
    return (codes, log_probs), jax.random.categorical(key, log_probs[codes])


# Every table-policy rollout has this shape, so one compile per env serves the policy-value,
# hidden-state and episode-length tests.
ROLLOUT_ENVS, EPISODES_PER_ENV = 4000, 5  # 20,000 episodes


def table_rollout(
    env: Any, params: Any, key: jax.Array, log_probs: np.ndarray
) -> tuple[dict[str, Any], np.ndarray]:
    """ROLLOUT_ENVS envs, EPISODES_PER_ENV · H steps of a table policy; as NumPy."""
    trajectory, last_obs = fast_rollout(
        env,
        params,
        key,
        table_policy,
        (jnp.ones(ROLLOUT_ENVS, jnp.int32), jnp.asarray(log_probs)),
        num_envs=ROLLOUT_ENVS,
        num_steps=EPISODES_PER_ENV * env.fixed_episode_length(params),
    )
    return jax.tree.map(np.asarray, (trajectory, last_obs))


def uniform_rollout(env: Any, params: Any, key: jax.Array) -> tuple[dict[str, Any], np.ndarray]:
    model = env.tabular(params)
    horizon = env.fixed_episode_length(params)
    return table_rollout(
        env, params, key, uniform_log_probs(model.num_obs, model.num_actions, horizon)
    )
