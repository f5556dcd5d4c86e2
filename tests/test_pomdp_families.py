"""Known answers for the POMDP families: closed forms against the belief DP, stated revealing
constants, bad params refused, instances as params, episodes of exactly H actions.

`test_pomdp_exact.py` checks the exact tools on hand-made models; here they are the reference that
each family's JAX env and closed form must agree with. Exact policy values against Monte Carlo are
in `test_pomdp_policy_values.py`, the hidden-state check in `test_pomdp_hidden_state.py`.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from pomdp_rollouts import (
    ROLLOUT_SHAPES,
    candidate_digits,
    family,
    make,
    uniform_rollout,
    unit,
)

import scalegym
from scalegym.envs.pomdp import exact
from scalegym.envs.pomdp.finite_pomdp import instance_batch
from scalegym.envs.pomdp.revealing_bandit import RevealingBanditParams, draw_secret
from scalegym.envs.pomdp.tabular import MAX_TABULAR_STATES

# -- 1. closed forms agree with the belief-tree DP ------------------------------------------------


def assert_closed_form_is_exact(env: Any, params: Any) -> None:
    model = env.tabular(params)
    closed_form = env.optimal_value(params)
    assert exact.optimal_value(model) == pytest.approx(closed_form, abs=1e-9)
    value, policy = exact.optimal_policy(model)
    assert value == pytest.approx(closed_form, abs=1e-9)
    assert exact.policy_value(model, policy) == pytest.approx(closed_form, abs=1e-9)


def test_paninski_closed_form_matches_dp():
    rng = np.random.default_rng(11)
    env, _ = make("PaninskiLock-v0", size=4)
    # (size, A, num_elements); with A = 3 an odd size needs an even num_elements.
    configs = [(2, 2, 0), (4, 2, 0), (8, 2, 0), (8, 2, 4), (3, 3, 4), (9, 3, 6), (9, 3, 10)]
    for size, num_actions, num_elements in configs:
        for seed in range(10):
            alpha, epsilon = (1.0, 1.0) if seed == 0 else (unit(rng), unit(rng))
            params = env.make_params(
                size=size,
                num_actions=num_actions,
                num_elements=num_elements,
                alpha=alpha,
                epsilon=epsilon,
                instance_seed=seed,
            )
            assert env.optimal_value(params) == pytest.approx(0.5 + alpha * epsilon / 2)
            assert_closed_form_is_exact(env, params)


@pytest.mark.parametrize(
    ("env_id", "configs"),  # configs: (size, num_actions)
    [
        ("RevealingBandit-v0", [(2, 2), (4, 2), (8, 2), (16, 2), (9, 3)]),
        ("PerRoomSecret-v1", [(2, 2), (4, 2), (8, 2), (16, 2), (3, 3), (9, 3)]),
    ],
)
def test_bandit_closed_forms_match_dp(env_id, configs):
    rng = np.random.default_rng(12)
    env = family(env_id)
    for size, num_actions in configs:
        for seed in range(10):
            alpha, epsilon = (1.0, 1.0) if seed == 0 else (unit(rng), unit(rng))
            params = env.make_params(
                size=size, num_actions=num_actions, alpha=alpha, epsilon=epsilon, instance_seed=seed
            )
            assert_closed_form_is_exact(env, params)


def test_tiger_closed_form_matches_dp():
    rng = np.random.default_rng(13)
    env, _ = make("Tiger-v0")
    for horizon in range(1, 6):
        accuracies = [0.5, 0.85, 1.0, *(0.5 + 0.5 * rng.random(4))]
        for accuracy in accuracies:
            params = env.make_params(
                horizon=horizon,
                listen_accuracy=float(accuracy),
                listen_cost=float(rng.uniform(0.0, 5.0)),
                tiger_penalty=float(rng.uniform(0.0, 200.0)),
                treasure=float(rng.uniform(0.0, 50.0)),
            )
            assert_closed_form_is_exact(env, params)


def test_tiger_closed_form_published_values():
    """The classic instance: the by-hand values of `test_pomdp_exact.py` from the family itself."""
    env, _ = make("Tiger-v0")
    for horizon, expected in [(1, -1.0), (2, -2.0), (3, 2.72), (4, 2.42125)]:
        assert env.optimal_value(env.make_params(horizon=horizon)) == pytest.approx(expected)


def test_noisy_combination_lock_closed_form_matches_dp():
    rng = np.random.default_rng(14)
    env, _ = make("NoisyCombinationLock-v0")
    for horizon, num_actions in itertools.product(range(2, 5), range(2, 4)):
        for seed in range(4):
            params = env.make_params(
                horizon=horizon, num_actions=num_actions, alpha=unit(rng), instance_seed=seed
            )
            assert_closed_form_is_exact(env, params)


# -- 2. revealing constants are the stated ones -------------------------------------------------


FAMILY_CASES = [
    ("PaninskiLock-v0", {"size": 8}),
    ("PaninskiLock-v0", {"size": 9, "num_actions": 3, "num_elements": 6}),
    ("RevealingBandit-v0", {"size": 8}),
    ("PerRoomSecret-v1", {"size": 4}),
    ("PerRoomSecret-v1", {"size": 9, "num_actions": 3}),
    ("NoisyCombinationLock-v0", {"horizon": 3, "num_actions": 3}),
]


@pytest.mark.parametrize(("env_id", "overrides"), FAMILY_CASES)
@pytest.mark.parametrize("alpha", [0.1, 0.5, 0.93, 1.0])
def test_revealing_constant_is_stated_alpha(env_id, overrides, alpha):
    env, params = make(env_id, alpha=alpha, instance_seed=3, **overrides)
    model = env.tabular(params)
    blocks = env.emission_blocks(params)
    assert blocks
    for block in blocks:
        # PerRoomSecret's rooms are shown exactly (σ = 1); every other block is the stated α.
        assert block.alpha == (1.0 if block.label == "rooms" else alpha), block.label
        measured = exact.revealing_constant(model, block.states, block.actions)
        assert measured == pytest.approx(block.alpha, abs=1e-9), block.label


@pytest.mark.parametrize("accuracy", [0.5, 0.6, 0.85, 1.0])
def test_tiger_revealing_constants(accuracy):
    env, params = make("Tiger-v0", listen_accuracy=accuracy, horizon=2)
    model = env.tabular(params)
    alpha = 2 * accuracy - 1
    blocks = env.emission_blocks(params)
    assert [b.alpha for b in blocks] == pytest.approx([alpha, alpha / math.sqrt(2)])
    for block in blocks:
        measured = exact.revealing_constant(model, block.states, block.actions)
        assert measured == pytest.approx(block.alpha, abs=1e-9), block.label


def test_paninski_pairs_need_two_steps():
    """A pair's two elements emit the same symbol: 1-step revealing constant 0, 2-step α."""
    env, params = make("PaninskiLock-v0", size=8, alpha=0.4)
    model = env.tabular(params)
    pairs = [b for b in env.emission_blocks(params) if b.label.startswith("pair")]
    assert len(pairs) == 4
    for block in pairs:
        assert exact.revealing_constant(model, block.states) == pytest.approx(0.0, abs=1e-12)
        assert exact.revealing_constant(model, block.states, block.actions) == pytest.approx(0.4)


# -- 3. bad input is refused, naming the field and the limit --------------------------------------


@pytest.mark.parametrize(
    ("env_id", "overrides", "patterns"),
    [
        ("PaninskiLock-v0", {"alpha": 0}, ["alpha", r"\(0, 1\]"]),
        ("PaninskiLock-v0", {"alpha": 1.5}, ["alpha", r"\(0, 1\]"]),
        ("PaninskiLock-v0", {"epsilon": 0}, ["epsilon", r"\(0, 1\]"]),
        ("PaninskiLock-v0", {"num_elements": 7}, ["num_elements", "even"]),
        ("PaninskiLock-v0", {"size": 12, "num_actions": 2}, ["size", "power"]),
        ("PaninskiLock-v0", {"sizee": 8}, ["sizee", "did you mean", '"size"']),
        ("RevealingBandit-v0", {"epsilon": -0.1}, ["epsilon", r"\(0, 1\]"]),
        ("RevealingBandit-v0", {"size": 10, "num_actions": 3}, ["size", "power"]),
        ("PerRoomSecret-v1", {"alpha": 2.0}, ["alpha", r"\(0, 1\]"]),
        ("PerRoomSecret-v1", {"size": 6}, ["size", "power"]),
        ("PerRoomSecret-v1", {"keys": [0, 1]}, ['unknown field "keys"']),
        ("Tiger-v0", {"listen_accuracy": 0.3}, ["listen_accuracy", r"\[0\.5, 1\]"]),
        ("Tiger-v0", {"tiger_penalty": -1.0}, ["tiger_penalty", ">= 0"]),
        ("NoisyCombinationLock-v0", {"horizon": 0}, ["horizon", r"1\.\.64"]),
        ("NoisyCombinationLock-v0", {"alpha": 0.0}, ["alpha", r"\(0, 1\]"]),
        ("NoisyCombinationLock-v0", {"num_actions": 1}, ["num_actions", ">= 2"]),
    ],
)
def test_bad_params_are_refused_at_make(env_id, overrides, patterns):
    with pytest.raises(ValueError) as caught:
        scalegym.make(env_id, **overrides)
    for pattern in patterns:
        assert caught.match(pattern)


def test_derived_fields_cannot_be_set():
    with pytest.raises(ValueError, match='unknown field "secret"'):
        scalegym.make("PaninskiLock-v0", secret=3)


def test_exact_tools_refuse_oversized_instances():
    env, params = make("PerRoomSecret-v1", size=8)  # H = 3: 8 rooms x 2^2 histories at step 2
    model = env.tabular(params)
    with pytest.raises(ValueError, match=r"32 histories at step 2 \(max_nodes=31\)"):
        exact.optimal_value(model, max_nodes=31)
    assert exact.optimal_value(model, max_nodes=32) == pytest.approx(env.optimal_value(params))
    # 128 trees of 127 nodes + W, L past the limit; make() is fine, only the tabular form is not.
    env, params = make("PerRoomSecret-v1", size=128)
    assert MAX_TABULAR_STATES < 128 * 127 + 2
    with pytest.raises(ValueError, match=r"16,258 states .*smaller size"):
        env.tabular(params)


# -- 4. an instance is its params ----------------------------------------------------------------


def test_instance_batch_steps_each_instance_with_its_own_secret():
    size, k, alpha, epsilon = 8, 3, 0.8, 0.8
    env, _ = make("RevealingBandit-v0", size=size)
    secrets = [draw_secret(RevealingBanditParams(size=size, instance_seed=s)) for s in range(20)]
    seeds = [secrets.index(c) for c in sorted(set(secrets))[:4]]  # four distinct secrets
    batch = instance_batch(env, seeds, size=size, alpha=alpha, epsilon=epsilon)
    assert batch.size == size  # static fields stay host ints
    made = [env.make_params(size=size, instance_seed=s) for s in seeds]
    assert np.array_equal(batch.secret, [int(p.secret) for p in made])
    num_instances, episodes = len(seeds), 1500

    reset_instances = jax.vmap(env.reset, in_axes=(0, 0))
    step_instances = jax.vmap(env.step, in_axes=(0, 0, None, 0))

    def episode(key: jax.Array, digits: jax.Array) -> jax.Array:
        """[N] the return of spelling one candidate (its k digits) once in every instance."""
        keys = jax.random.split(key, k + 1)
        _, state = reset_instances(jax.random.split(keys[0], num_instances), batch)
        total = jnp.zeros(num_instances)
        for t in range(k):
            keys_t = jax.random.split(keys[t + 1], num_instances)
            _, state, reward, *_ = step_instances(keys_t, state, digits[t], batch)
            total += reward
        return total

    @jax.jit
    def win_rates(key: jax.Array) -> jax.Array:
        """[C, N] mean reward of each candidate in each instance."""
        digits = np.array([candidate_digits(c, 2, k) for c in range(size)])  # [C, k]
        # One flat batch of C·episodes (a vmap of a vmap compiles twice as slowly here).
        digits = jnp.asarray(np.repeat(digits, episodes, axis=0))
        returns = jax.vmap(episode)(jax.random.split(key, size * episodes), digits)
        return returns.reshape(size, episodes, num_instances).mean(axis=1)

    rates = np.asarray(win_rates(jax.random.key(6)))  # [C, N]
    winners = rates > 0.5 + alpha * epsilon / 4  # halfway to V* = 0.82; s.e. ~0.013
    expected = np.arange(size)[:, None] == np.asarray(batch.secret)[None, :]
    assert np.array_equal(winners, expected), rates


# -- 5. every episode lasts exactly H ------------------------------------------------------------


@pytest.mark.parametrize(("env_id", "shape"), [*ROLLOUT_SHAPES, ("Tiger-v0", {"horizon": 4})])
def test_every_episode_lasts_exactly_horizon(env_id, shape):
    env, params = make(env_id, **shape)
    horizon = env.fixed_episode_length(params)
    assert horizon == params.max_steps_in_episode == env.tabular(params).horizon
    trajectory, _ = uniform_rollout(env, params, jax.random.key(9))
    num_steps = trajectory["action"].shape[0]
    ends = (np.arange(num_steps) + 1) % horizon == 0  # [T]
    terminated = trajectory["terminated"]  # [T, E]
    assert np.array_equal(terminated, np.broadcast_to(ends[:, None], terminated.shape))
    assert not trajectory["truncated"].any()
    time = trajectory["time"]  # of the state continued from: 0 right after a reset
    want = (np.arange(num_steps) + 1) % horizon
    assert np.array_equal(time, np.broadcast_to(want[:, None], time.shape))
