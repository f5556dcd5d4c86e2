"""PPO on the host path: a plain gymnasium env stepped in Python, policy and update jitted."""

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.training.train_state import TrainState

from scalegym.agents.ppo.config import PPOConfig
from scalegym.agents.ppo.host import (
    EpisodeTracker,
    chunk_log,
    collect_host_rollout,
    make_host_policy,
    with_final_obs,
)
from scalegym.agents.ppo.loss import make_optimizer
from scalegym.agents.ppo.normalization import init_obs_norm
from scalegym.agents.ppo.policy import build_network
from scalegym.agents.train import train_agent, training_request
from scalegym.core.resolve import resolve_env


def test_final_obs_replaces_only_finished_lanes():
    next_obs = np.arange(6, dtype=np.float32).reshape(3, 2)
    final = np.array([None, np.array([9.0, 9.0], np.float32), None], dtype=object)
    done = np.array([False, True, False])
    out = with_final_obs(next_obs, {"final_obs": final}, done)
    np.testing.assert_array_equal(out, [[0, 1], [9, 9], [4, 5]])
    np.testing.assert_array_equal(next_obs[1], [2, 3])  # the reset obs is left intact


def test_dict_final_obs():
    next_obs = {"a": np.zeros((2, 1)), "b": np.ones((2, 2))}
    final = np.array([{"a": np.array([5.0]), "b": np.array([7.0, 7.0])}, None], dtype=object)
    out = with_final_obs(next_obs, {"final_obs": final}, np.array([True, False]))
    assert out["a"][0, 0] == 5.0 and out["b"][0].tolist() == [7.0, 7.0]
    assert out["a"][1, 0] == 0.0 and out["b"][1].tolist() == [1.0, 1.0]


@pytest.mark.slow  # beyond one learning test per env family: make test-all
def test_gymnasium_cartpole_learns_on_the_host_path():
    logged = []
    request = training_request(
        resolve_env("CartPole-v1"), "ppo", steps=40_000, agent_params={}, num_seeds=1, seed=1
    )
    record = train_agent(
        request, log=lambda step, scalars: logged.append((step, scalars)), progress=False
    )
    assert record.path == "host" and record.steps == 39_936
    steps = [s for s, _ in logged]
    assert steps == sorted(steps) and steps[-1] == 39_936
    early = np.mean([s["train/return"] for _, s in logged[:5] if "train/return" in s])
    # Random play on CartPole averages about 22; PPO after 40k steps is far beyond it.
    assert early < 60 and record.final.eval_return > 100, (early, record.final)
    # Evaluation and training returns are reported apart; SPS leaves out the compiling update.
    assert record.final.train_return is not None and record.final.per_seed_return is not None
    assert "eval/return" in logged[0][1] and "eval/return" in logged[-1][1]
    assert record.sps is not None and record.compile_s > 0


def test_host_rollout_values_the_last_real_observation() -> None:
    # ToyChain through gymnasium's vector API with a 3-step limit: episodes end every few steps.
    config = PPOConfig(num_envs=6, num_steps=12, hidden=(8,))
    envs = gymnasium.make_vec("scalegym/ToyChainBox-v0", num_envs=6, max_steps_in_episode=3)
    obs, _ = envs.reset(seed=0)
    network = build_network(config, 2)
    policy = make_host_policy(config, network)
    state = TrainState.create(
        apply_fn=network.apply,
        params=network.init(jax.random.key(0), obs),
        tx=make_optimizer(config),
    )
    tracker = EpisodeTracker(6)
    norm = init_obs_norm(jnp.asarray(obs))
    traj, _, _ = collect_host_rollout(
        envs, policy, state, norm, obs, jax.random.key(1), tracker, config.num_steps
    )
    assert traj.obs.shape == (12, 6, 1) and traj.final_value.shape == (12, 6)
    done = np.asarray(traj.terminated | traj.truncated)
    assert np.asarray(traj.truncated).any() and not (traj.terminated & traj.truncated).any()
    value, final_value = np.asarray(traj.value), np.asarray(traj.final_value)
    # A continuing step bootstraps from the next observation's value (the same network) ...
    cont = ~done[:-1]
    np.testing.assert_allclose(final_value[:-1][cont], value[1:][cont], rtol=1e-5, atol=1e-6)
    # ... a finished one from its last real observation, not the reset observation after it.
    assert not np.allclose(final_value[:-1][done[:-1]], value[1:][done[:-1]])
    envs.close()

    scalars = chunk_log({"loss": jnp.float32(0.5)}, tracker, seconds=2.0, steps=72)
    assert scalars["train/loss"] == 0.5 and scalars["perf/sps"] == 36.0
    assert scalars["train/episode_length"] <= 3.0 and "train/return" in scalars
    assert scalars["train/episodes"] >= 1  # the count the train/* means are taken over
    assert tracker.take() == ([], [])  # chunk_log took this chunk's episodes


def test_progress_bar_on_the_host_path(capsys) -> None:
    request = training_request(
        resolve_env("CartPole-v1"),
        "ppo",
        steps=4 * 32 * 2,
        agent_params={"num_steps": 32},
        num_seeds=1,
        seed=0,
    )
    result = train_agent(request, progress=True)
    err = capsys.readouterr().err
    assert "ppo CartPole-v1 (host)" in err and "eval.return=" in err
    # Two updates: the first compiles, so one update's steps are timed.
    assert result.path == "host" and result.steps == 256 and result.sps is not None
