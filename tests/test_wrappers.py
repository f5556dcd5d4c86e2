"""Tests of the functional wrappers: EpisodeStatistics against hand-computed episodes."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import toy_envs
from gymnasium.utils.env_checker import check_env

import scalegym
from scalegym.core import Environment, registry
from scalegym.core.gym_adapters import FunctionalGymEnv
from scalegym.core.gym_vector import FunctionalVectorEnv
from scalegym.core.wrappers import EpisodeStatistics, EpisodeStatisticsState


def make_stats_env(**overrides) -> tuple[EpisodeStatistics, toy_envs.ToyChainParams]:
    env, params = scalegym.make("ToyChain-v0", **overrides)
    return EpisodeStatistics(env), params


def run_scripted(env, params, actions: list[int], seed: int = 0) -> list[tuple]:
    """One lane stepped by the auto-resetting `env.step`: (reward, term, trunc, info, state)."""
    key = jax.random.PRNGKey(seed)
    key, key_reset = jax.random.split(key)
    _, state = env.reset(key_reset, params)
    out = []
    for a in actions:
        key, key_step = jax.random.split(key)
        _, state, reward, terminated, truncated, info = env.step(key_step, state, a, params)
        out.append((float(reward), bool(terminated), bool(truncated), info, state))
    return out


def test_hand_computed_successful_episode() -> None:
    # Deterministic chain of 4 cells from cell 0: right x3 reaches the goal on step 3.
    env, params = make_stats_env(length=4, slip_prob=0.0, start_max=0)
    steps = run_scripted(env, params, [1, 1, 1, 1, 0])
    rewards = [s[0] for s in steps]
    np.testing.assert_allclose(rewards[:3], [-0.1, -0.1, 0.9], rtol=1e-6)
    for _, terminated, truncated, info, _ in steps[:2]:
        assert not terminated and not truncated and not bool(info["returned_episode"])
        assert not bool(info["returned_episode_valid"])
        assert float(info["returned_episode_returns"]) == 0.0
        assert int(info["returned_episode_lengths"]) == 0
    _, terminated, truncated, info, state = steps[2]
    assert terminated and not truncated and bool(info["returned_episode"])
    assert float(info["returned_episode_returns"]) == pytest.approx(0.7, abs=1e-6)
    assert int(info["returned_episode_lengths"]) == 3
    assert float(info["returned_episode_success"]) == 1.0
    assert bool(info["returned_episode_valid"])
    # The auto-reset zeroed the running episode but kept the finished one.
    assert isinstance(state, EpisodeStatisticsState)
    assert float(state.episode_returns) == 0.0 and int(state.episode_lengths) == 0
    assert float(state.returned_episode_returns) == pytest.approx(0.7, abs=1e-6)
    assert bool(state.returned_episode_valid) and int(state.time) == 0
    for _, _, _, info, _ in steps[3:]:
        assert not bool(info["returned_episode"]) and bool(info["returned_episode_valid"])
        assert float(info["returned_episode_returns"]) == pytest.approx(0.7, abs=1e-6)
        assert int(info["returned_episode_lengths"]) == 3
    assert int(steps[-1][4].episode_lengths) == 2
    assert float(steps[-1][4].episode_returns) == pytest.approx(-0.2, abs=1e-6)


def test_truncated_episode_keeps_flags_separate() -> None:
    env, params = make_stats_env(slip_prob=0.0, start_max=0, max_steps_in_episode=5)
    steps = run_scripted(env, params, [0] * 6)  # always left: never at the goal
    assert [s[2] for s in steps] == [False] * 4 + [True, False]
    assert not any(s[1] for s in steps)
    info = steps[4][3]
    assert bool(info["returned_episode"])
    assert float(info["returned_episode_returns"]) == pytest.approx(-0.5, abs=1e-6)
    assert int(info["returned_episode_lengths"]) == 5
    assert float(info["returned_episode_success"]) == 0.0
    assert "final_observation" in info  # the base step's bookkeeping is inherited


def rollout_batch(env, params, n: int, steps: int, seed: int = 0):
    """jit(scan(vmap(step))) with random actions: the PureJaxRL usage."""

    def run(key):
        key, key_reset = jax.random.split(key)
        _, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key_reset, n), params)

        def body(carry, key):
            state = carry
            key_act, key_step = jax.random.split(key)
            actions = jax.random.randint(key_act, (n,), 0, 2)
            _, state, reward, terminated, truncated, info = jax.vmap(
                env.step, in_axes=(0, 0, 0, None)
            )(jax.random.split(key_step, n), state, actions, params)
            info = {k: v for k, v in info.items() if k != "final_observation"}
            return state, (reward, terminated, truncated, info)

        return jax.lax.scan(body, state, jax.random.split(key, steps))

    return jax.device_get(jax.jit(run)(jax.random.PRNGKey(seed)))


def test_matches_host_bookkeeping_under_jit_scan_vmap() -> None:
    n, steps = 16, 120
    env, params = make_stats_env(slip_prob=0.3, max_steps_in_episode=12)
    state, (reward, terminated, truncated, info) = rollout_batch(env, params, n, steps)
    ret, length = np.zeros(n), np.zeros(n, np.int64)
    last_ret, last_len = np.zeros(n), np.zeros(n, np.int64)
    last_success, valid = np.zeros(n), np.zeros(n, bool)
    for t in range(steps):
        assert not np.any(terminated[t] & truncated[t])
        done = terminated[t] | truncated[t]
        ret += reward[t]
        length += 1
        last_ret = np.where(done, ret, last_ret)
        last_len = np.where(done, length, last_len)
        last_success = np.where(done, info["success"][t], last_success)
        valid |= done
        np.testing.assert_array_equal(info["returned_episode"][t], done)
        np.testing.assert_allclose(info["returned_episode_returns"][t], last_ret, atol=1e-5)
        np.testing.assert_array_equal(info["returned_episode_lengths"][t], last_len)
        np.testing.assert_array_equal(info["returned_episode_success"][t], last_success)
        np.testing.assert_array_equal(info["returned_episode_valid"][t], valid)
        ret[done], length[done] = 0.0, 0
    np.testing.assert_allclose(state.episode_returns, ret, atol=1e-5)
    np.testing.assert_array_equal(state.episode_lengths, length)
    assert valid.all() and info["returned_episode"].sum() > n


def test_validity_flag_masks_lanes_that_never_finished() -> None:
    env, params = make_stats_env(slip_prob=0.0, start_max=0, length=3, max_steps_in_episode=50)
    n = 4
    actions = jnp.array([1, 0, 1, 0])  # lanes 0 and 2 finish after 2 steps; 1 and 3 never

    @jax.jit
    def run(key):
        _, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key, n), params)

        def body(state, key):
            out = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(key, n), state, actions, params
            )
            return out[1], out[5]

        return jax.lax.scan(body, state, jax.random.split(key, 5))[1]

    info = jax.device_get(run(jax.random.PRNGKey(0)))
    np.testing.assert_array_equal(info["returned_episode_valid"][-1], [True, False, True, False])
    np.testing.assert_allclose(
        info["returned_episode_returns"][-1], [0.8, 0.0, 0.8, 0.0], atol=1e-6
    )
    valid = info["returned_episode_valid"][-1]
    assert info["returned_episode_returns"][-1][valid].mean() == pytest.approx(0.8, abs=1e-6)


def test_exposes_inner_spaces_params_and_validation() -> None:
    inner, params = scalegym.make("ToyChain-v0")
    env = EpisodeStatistics(inner)
    assert isinstance(env, Environment)
    assert env.default_params == inner.default_params
    assert (
        env.observation_space(params).to_gymnasium()
        == inner.observation_space(params).to_gymnasium()
    )
    assert env.action_space().n == 2 and env.num_actions == 2 and env.name == inner.name
    with pytest.raises(ValueError, match="slip_prob"):
        env.make_params(slip_prob=-1.0)
    # planners step cloned states with step_env (no auto-reset)
    _, state = env.reset(jax.random.PRNGKey(0), params)
    _, next_state, _, _, _ = env.step_env(jax.random.PRNGKey(1), state, 1, params)
    assert int(next_state.episode_lengths) == 1 and int(next_state.time) == 1
    assert env.render_text(next_state, params).count("A") == 1


def test_wraps_gymnax_env_without_success() -> None:
    inner, params = registry.make_gymnax("CartPole-v1")
    env = EpisodeStatistics(inner)
    _, (_, terminated, truncated, info) = rollout_batch(env, params, 8, 100)
    assert "returned_episode_success" not in info
    done = terminated | truncated
    assert done.any()
    # Each finished CartPole episode earns 1 per step, so its return equals its length.
    finished = info["returned_episode"]
    np.testing.assert_allclose(
        info["returned_episode_returns"][finished], info["returned_episode_lengths"][finished]
    )


def test_wrapped_env_through_gymnasium_adapters() -> None:
    inner, params = scalegym.make("ToyChain-v0")
    single = FunctionalGymEnv(EpisodeStatistics(inner), params, render_mode="ansi")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(single, skip_render_check=True)
    assert isinstance(single.render(), str)

    envs = FunctionalVectorEnv(EpisodeStatistics(inner), params, num_envs=8)
    envs.reset(seed=0)
    seen = 0
    for _ in range(40):
        _, _, terminated, truncated, info = envs.step(np.ones(8, np.int64))
        done = terminated | truncated
        if done.any():
            final = info["final_info"]
            assert final["returned_episode"][done].all()
            np.testing.assert_array_equal(
                final["returned_episode_lengths"][done] > 0, np.ones(done.sum(), bool)
            )
            seen += int(done.sum())
    assert seen > 0
