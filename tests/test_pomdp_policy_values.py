"""Exact policy values of the POMDP families against Monte Carlo on their JAX envs: hand-written,
DP-optimal and GRU policies, and the table-free value of the candidate families."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from pomdp_rollouts import (
    EPISODES_PER_ENV,
    ROLLOUT_ENVS,
    assert_matches_monte_carlo,
    candidate_digits,
    episode_returns,
    fast_rollout,
    history_log_probs,
    make,
    table_rollout,
)

from scalegym.agents.ppo.networks import RecurrentActorCritic
from scalegym.envs.pomdp import exact
from scalegym.envs.pomdp.tiger import HEAR_LEFT, LISTEN, OPEN_LEFT, OPEN_RIGHT

# -- a history policy both sides can run ------------------------------------------------------


class FunctionPolicy:
    """The exact tools' `HistoryPolicy` of a plain function (o_0, ..., o_t) -> probs [A]."""

    def __init__(self, probs_of: Callable[[tuple[int, ...]], np.ndarray], num_actions: int):
        self.probs_of, self.num_actions = probs_of, num_actions

    def initial(self, n: int) -> np.ndarray:
        return exact.TablePolicy({}, self.num_actions).initial(n)

    def __call__(
        self, carry: np.ndarray, symbols: np.ndarray, inputs: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        histories = np.empty(len(symbols), dtype=object)  # [n]
        for i, (history, symbol) in enumerate(zip(carry, symbols, strict=True)):
            histories[i] = (*history, int(symbol))
        return histories, np.stack([self.probs_of(h) for h in histories])


# -- exact policy values against Monte Carlo on the JAX env ---------------------------------------


def paninski_spell_five(history: tuple[int, ...]) -> np.ndarray:
    """PaninskiLock size 8: spell candidate 5 (actions 1, 0, 1) with probability 0.9 each, then
    play parity = pair index mod 2 with probability 0.8 (symbols 3..6 are pairs 0..3)."""
    t, k = len(history) - 1, 3
    if t < k:
        digit = candidate_digits(5, 2, k)[t]
        return np.where(np.arange(2) == digit, 0.9, 0.1)
    pair = history[-1] - k
    if not 0 <= pair < 4:
        return np.full(2, 0.5)  # no such history on the env
    return np.where(np.arange(2) == pair % 2, 0.8, 0.2)


def tiger_listen_twice(history: tuple[int, ...]) -> np.ndarray:
    """Tiger H=4: listen twice, open the door away from the two hears (a coin on a split), then
    listen. o_0 is noise, o_1 and o_2 are the hears."""
    t = len(history) - 1
    if t != 2:
        return np.eye(3)[LISTEN]
    hears_left = history[1:3].count(HEAR_LEFT)
    if hears_left == 1:
        return np.array([0.0, 0.5, 0.5])
    return np.eye(3)[OPEN_RIGHT if hears_left == 2 else OPEN_LEFT]


@pytest.mark.parametrize(
    ("env_id", "overrides", "probs_of", "tolerance"),
    [
        # seed 15: the secret is candidate 5, so the policy's value depends on θ, α and ε.
        ("PaninskiLock-v0", {"size": 8, "alpha": 0.9, "epsilon": 0.9, "instance_seed": 15},
         paninski_spell_five, 0.05),
        ("Tiger-v0", {"horizon": 4}, tiger_listen_twice, 2.0),
    ],
)  # fmt: skip
def test_hand_written_policy_value_matches_monte_carlo(env_id, overrides, probs_of, tolerance):
    env, params = make(env_id, **overrides)
    model = env.tabular(params)
    num_actions, horizon = model.num_actions, env.fixed_episode_length(params)
    expected = exact.policy_value(model, FunctionPolicy(probs_of, num_actions))
    uniform = exact.policy_value(model, exact.UniformPolicy(num_actions))
    assert abs(expected - uniform) > tolerance  # the estimate below must tell these apart
    log_probs = history_log_probs(probs_of, model.num_obs, num_actions, horizon)
    trajectory, _ = table_rollout(env, params, jax.random.key(1), log_probs)
    returns = episode_returns(env, params, trajectory)
    assert len(returns) == ROLLOUT_ENVS * EPISODES_PER_ENV
    assert_matches_monte_carlo(expected, returns, tolerance=tolerance)


@pytest.mark.parametrize(
    ("env_id", "overrides"),
    [
        ("PaninskiLock-v0", {"size": 8, "alpha": 0.8, "epsilon": 0.7, "instance_seed": 2}),
        ("RevealingBandit-v0", {"size": 8, "alpha": 0.8, "epsilon": 0.7, "instance_seed": 2}),
        ("PerRoomSecret-v1", {"size": 4, "alpha": 0.8, "epsilon": 0.7, "instance_seed": 2}),
        ("NoisyCombinationLock-v0", {"horizon": 3, "num_actions": 2, "alpha": 0.3}),
        ("Tiger-v0", {"horizon": 4, "listen_accuracy": 0.8}),
    ],
)
def test_optimal_policy_earns_closed_form_on_the_env(env_id, overrides):
    """The DP's optimal policy, played on the JAX env, earns the closed-form V*: the env and its
    tabular model are one POMDP on every family."""
    env, params = make(env_id, **overrides)
    model = env.tabular(params)
    _, optimal = exact.optimal_policy(model)
    uniform = np.full(model.num_actions, 1.0 / model.num_actions)

    def probs_of(history: tuple[int, ...]) -> np.ndarray:
        if history not in optimal.table:
            return uniform  # a history the optimal policy never reaches
        return np.eye(model.num_actions)[optimal.table[history]]

    horizon = env.fixed_episode_length(params)
    log_probs = history_log_probs(probs_of, model.num_obs, model.num_actions, horizon)
    trajectory, _ = table_rollout(env, params, jax.random.key(3), log_probs)
    v_star = env.optimal_value(params)
    gap = v_star - exact.policy_value(model, exact.UniformPolicy(model.num_actions))
    assert_matches_monte_carlo(v_star, episode_returns(env, params, trajectory), tolerance=gap)


GRU_MEMORY, GRU_LOGIT_SCALE = 32, 5.0
EXACT_ROWS = 128  # the exact side steps the GRU on rows padded to this many: one compile


def gru_actor(num_actions: int, num_obs: int, seed: int) -> Callable[..., tuple[Any, Any]]:
    """PPO's GRU policy with random weights, logits scaled up so it is far from uniform:
    (carry [n, M], obs [n, O], starts [n]) -> (carry, logits [n, A]). Both sides step this one.

    The weights are N(0, 1/fan_in) kernels and small biases drawn with NumPy (PPO's orthogonal
    init compiles a scan per layer, seconds of test time for nothing this test needs).
    """
    network = RecurrentActorCritic(num_actions, hidden=(64,), memory=GRU_MEMORY)
    shapes = jax.eval_shape(
        network.init,
        jax.random.key(0),
        network.initial_carry(1),
        jnp.zeros((1, 1, num_obs)),
        jnp.zeros((1, 1), bool),
    )
    rng = np.random.default_rng(seed)

    def draw(leaf: jax.ShapeDtypeStruct) -> jax.Array:
        scale = 1 / math.sqrt(leaf.shape[0]) if len(leaf.shape) == 2 else 0.1
        return jnp.asarray(scale * rng.normal(size=leaf.shape), jnp.float32)

    params = jax.tree.map(draw, shapes)

    def actor(carry: jax.Array, obs: jax.Array, starts: jax.Array) -> tuple[jax.Array, jax.Array]:
        carry, logits, _ = network.apply(params, carry, obs[None], starts[None])
        return carry, GRU_LOGIT_SCALE * logits[0]

    return actor


def exact_step_fn(actor: Callable[..., tuple[Any, Any]]) -> Callable[..., tuple[Any, Any]]:
    """The actor as `exact.network_policy` steps it, on rows zero-padded to EXACT_ROWS."""
    fixed = jax.jit(lambda carry, obs: actor(carry, obs, jnp.zeros(obs.shape[0], bool)))

    def step_fn(carry: np.ndarray, inputs: np.ndarray) -> tuple[jax.Array, jax.Array]:
        rows = inputs.shape[0]
        pad = ((0, EXACT_ROWS - rows), (0, 0))
        carry, logits = fixed(np.pad(carry, pad), np.pad(inputs, pad))
        return carry[:rows], logits[:rows]

    return step_fn


@pytest.mark.parametrize(
    ("env_id", "overrides", "instance_seeds", "tolerance"),
    [
        ("PaninskiLock-v0", {"size": 8, "alpha": 1.0, "epsilon": 1.0}, range(32), 0.04),
        ("Tiger-v0", {"horizon": 3}, [None], 2.0),
    ],
)
def test_gru_policy_value_matches_monte_carlo(env_id, overrides, instance_seeds, tolerance):
    env, params = make(env_id, **overrides)
    model = env.tabular(params)
    actor = gru_actor(model.num_actions, model.num_obs, seed=1)
    policy = exact.network_policy(
        exact_step_fn(actor), np.zeros(GRU_MEMORY, np.float32), chunk_rows=EXACT_ROWS
    )
    # A policy that knows no secret is worth about 1/2 on most PaninskiLock instances: test it
    # on the instance it happens to suit best, where Monte Carlo must resolve the difference.
    candidates = []
    for seed in instance_seeds:
        params = env.make_params(**overrides, **({} if seed is None else {"instance_seed": seed}))
        model = env.tabular(params)
        expected = exact.policy_value(model, policy)
        uniform = exact.policy_value(model, exact.UniformPolicy(model.num_actions))
        candidates.append((abs(expected - uniform), expected, params))
    gap, expected, params = max(candidates, key=lambda c: c[0])
    assert gap > tolerance

    def sample(key: jax.Array, carry: jax.Array, obs: jax.Array, starts: jax.Array):
        carry, logits = actor(carry, obs, starts)  # the GRU zeroes the carry at starts
        return carry, jax.random.categorical(key, logits)

    horizon = env.fixed_episode_length(params)
    trajectory, _ = fast_rollout(
        env,
        params,
        jax.random.key(2),
        sample,
        jnp.full((ROLLOUT_ENVS, GRU_MEMORY), 7.0),  # any carry: every first obs is a start
        num_envs=ROLLOUT_ENVS,
        num_steps=EPISODES_PER_ENV * horizon,
    )
    returns = episode_returns(env, params, trajectory)
    assert_matches_monte_carlo(expected, returns, tolerance=tolerance)


@pytest.mark.parametrize(
    ("env_id", "overrides"),
    [
        ("RevealingBandit-v0", {"size": 8, "alpha": 0.7, "epsilon": 0.9}),
        ("RevealingBandit-v0", {"size": 9, "num_actions": 3, "alpha": 1.0, "epsilon": 0.5}),
        ("PerRoomSecret-v1", {"size": 4, "alpha": 0.7, "epsilon": 0.9}),
        ("PerRoomSecret-v1", {"size": 8, "alpha": 0.5, "epsilon": 1.0, "instance_seed": 3}),
        ("PerRoomSecret-v1", {"size": 9, "num_actions": 3, "alpha": 0.6, "epsilon": 0.8}),
    ],
)
def test_candidate_policy_value_matches_the_tabular_one(env_id, overrides):
    # The table-free exact value (what the PPO judge uses on these families) against the generic
    # one on the dense model: the GRU network, the uniform policy and the exact-optimal policy.
    env, params = make(env_id, **overrides)
    model, candidates = env.tabular(params), env.candidates(params)
    actor = gru_actor(model.num_actions, model.num_obs, seed=2)
    gru = exact.network_policy(
        exact_step_fn(actor), np.zeros(GRU_MEMORY, np.float32), chunk_rows=EXACT_ROWS
    )
    _, optimal = exact.optimal_policy(model)
    for policy in (gru, exact.UniformPolicy(model.num_actions), optimal):
        expected = exact.policy_value(model, policy)
        assert exact.candidate_policy_value(candidates, policy) == pytest.approx(expected, abs=1e-9)
    assert exact.candidate_policy_value(candidates, optimal) == pytest.approx(
        env.optimal_value(params), abs=1e-12
    )


def test_candidate_policy_value_past_the_tabular_limit():
    # PerRoomSecret K = 256: 256 rooms of 256 keys (65,538 latent states), no dense model. A
    # history is (room, depths seen); spelling each room's key earns V*, knowing only the even
    # rooms' keys earns the average of V* and the uniform value, the uniform policy
    # 1/2 + α(mean q − 1/2).
    rooms, k, alpha, epsilon = 256, 8, 0.6, 0.8
    env, params = make("PerRoomSecret-v1", size=rooms, alpha=alpha, epsilon=epsilon)
    candidates = env.candidates(params)
    keys = np.asarray(params.keys)
    depths = [tuple(rooms + j for j in range(d)) for d in range(k)]  # symbols after the room

    def spell(known: range) -> exact.TablePolicy:
        table = {}
        for room in range(rooms):
            digits = candidate_digits(int(keys[room]), 2, k)
            for d in range(k):  # an unknown room: always action 0 (key 0)
                table[(room, *depths[d])] = digits[d] if room in known else 0
        return exact.TablePolicy(table, 2)

    v_star, g = env.optimal_value(params), alpha * epsilon / 2
    assert exact.candidate_policy_value(candidates, spell(range(rooms))) == pytest.approx(v_star)
    zero_is_key = np.mean(keys[1::2] == 0)  # odd rooms whose key happens to be 0
    half = exact.candidate_policy_value(candidates, spell(range(0, rooms, 2)))
    assert half == pytest.approx(0.5 + g * (0.5 + 0.5 * zero_is_key))
    uniform = exact.candidate_policy_value(candidates, exact.UniformPolicy(2))
    assert uniform == pytest.approx(0.5 + g / rooms)
