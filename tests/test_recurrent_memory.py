"""A GRU that sees its previous action and reward (`PPOConfig.prev_action_reward`): what it learns
that the observations cannot teach, zeros at every episode start, and one input for the rollout,
the loss and the evaluation."""

from __future__ import annotations

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import serialization
from toy_envs import CoinGuess

import scalegym
from scalegym.agents.ppo.algorithm import PPO, RunnerState, collect_rollout, make_ppo
from scalegym.agents.ppo.checkpoint import PROGRESS, STATE, load_checkpoint, save_checkpoint
from scalegym.agents.ppo.config import PPOConfig
from scalegym.agents.ppo.evaluation import evaluate_policy
from scalegym.agents.ppo.loss import Transition, calculate_gae, ppo_loss
from scalegym.agents.ppo.networks import Previous, RecurrentActorCritic, previous_inputs

UPDATES = 40  # of 32 envs x 12 steps: 15,360 steps, 5,120 episodes of CoinGuess (horizon 3)
SEEDS = 3  # trained by one compiled program each way
EVAL_ENVS = 512  # fresh envs per seed: success is within ±0.1 of its mean at ~4.5 sigma


def coin_config(prev: bool) -> PPOConfig:
    return PPOConfig(
        network="gru",
        memory=16,
        hidden=(16,),
        num_envs=32,
        num_steps=12,
        total_timesteps=32 * 12 * UPDATES,
        num_minibatches=4,
        learning_rate=3e-3,
        gamma=1.0,
        prev_action_reward=prev,
    )


@functools.cache
def trained(prev: bool) -> tuple[PPO, list[RunnerState], list[float]]:
    """PPO on CoinGuess per seed: the pieces, each seed's runner and its success on fresh envs."""
    env = CoinGuess()
    params = env.default_params
    ppo = make_ppo(env, params, coin_config(prev))

    def train_and_evaluate(key: jax.Array) -> tuple[RunnerState, dict[str, jax.Array]]:
        runner, _ = ppo.train(key)
        return runner, evaluate_policy(ppo, runner, jax.random.key(99), params, EVAL_ENVS)

    run = jax.jit(train_and_evaluate)
    runners, success = [], []
    for seed in range(SEEDS):
        runner, out = run(jax.random.key(seed))
        runners.append(runner)
        success.append(float(out["success_sum"] / out["episodes"]))
    return ppo, runners, success


def test_the_gru_reads_the_coin_only_from_its_previous_action_and_reward() -> None:
    # Only the first step's action and reward tell the coin, so the observations alone answer
    # right half the time whatever the policy; with them as input the GRU learns to answer.
    _, _, with_previous = trained(True)
    _, _, observations_only = trained(False)
    assert min(with_previous) >= 0.9, with_previous
    assert all(abs(s - 0.5) <= 0.1 for s in observations_only), observations_only


@functools.cache
def rollout_of(runner_index: int | None) -> tuple[PPO, RunnerState, Transition]:
    """A rollout of the trained GRU with previous inputs (seed `runner_index`), or of a fresh one
    (None): the pieces, the runner it started from and the transitions [T, E]."""
    ppo, runners, _ = trained(True)
    runner = jax.jit(ppo.init)(jax.random.key(5)) if runner_index is None else runners[0]
    _, traj, _ = jax.jit(lambda r: collect_rollout(ppo, r))(runner)
    return ppo, runner, traj


def assert_previous_inputs(traj: Transition) -> None:
    """Zeros at every start, elsewhere the step before: its action one-hot and its reward."""
    starts = np.asarray(traj.starts)  # [T, E]
    # CoinGuess ends every 3 steps and the env auto-resets: starts at t = 0, 3, 6, 9.
    assert (starts == (np.arange(12) % 3 == 0)[:, None]).all()
    seen = np.asarray(previous_inputs(traj.prev, traj.starts, 2))  # [T, E, A + 1]
    assert (seen[starts] == 0).all()
    action, reward, later = np.asarray(traj.action), np.asarray(traj.reward), ~starts[1:]
    np.testing.assert_array_equal(seen[1:, :, :2][later], np.eye(2)[action[:-1]][later])
    np.testing.assert_array_equal(seen[1:, :, 2][later], reward[:-1][later])


def test_every_episode_starts_with_zeros_also_after_an_auto_reset() -> None:
    assert_previous_inputs(rollout_of(None)[2])  # a run's first rollout
    ppo, runner, traj = rollout_of(0)  # one after training
    assert_previous_inputs(traj)
    # After an auto-reset the runner still holds the last episode's step (rewards of 1 after
    # training): the network reads zeros because it masks them where it resets its carry.
    assert np.asarray(traj.prev.reward)[np.asarray(traj.starts)].any()
    params, carry0 = runner.train_state.params, runner.carry
    _, logits, values = ppo.apply(params, carry0, traj.obs, traj.starts, traj.prev)
    noise = jax.random.normal(jax.random.key(1), traj.reward.shape)
    garbage = Previous(
        jnp.where(traj.starts, (traj.action + 1) % 2, traj.prev.action),
        jnp.where(traj.starts, 100.0 * noise, traj.prev.reward),
    )
    _, logits_g, values_g = ppo.apply(params, carry0, traj.obs, traj.starts, garbage)
    np.testing.assert_array_equal(np.asarray(logits_g), np.asarray(logits))
    np.testing.assert_array_equal(np.asarray(values_g), np.asarray(values))


def test_the_loss_re_evaluates_the_rollout_as_it_was_played() -> None:
    ppo, runner, traj = rollout_of(0)
    params, carry0 = runner.train_state.params, runner.carry
    # The loss's sequence re-evaluation, from the carry the rollout started with.
    _, logits, values = ppo.apply(params, carry0, traj.obs, traj.starts, traj.prev)
    log_probs = jax.nn.log_softmax(logits)
    log_prob = jnp.take_along_axis(log_probs, traj.action[..., None], axis=-1)[..., 0]
    np.testing.assert_allclose(np.asarray(log_prob), np.asarray(traj.log_prob), atol=1e-5)
    np.testing.assert_allclose(np.asarray(values), np.asarray(traj.value), atol=1e-5)
    advantages, targets = calculate_gae(traj, 1.0, 0.95)
    _, aux = ppo_loss(params, ppo.apply, carry0, traj, advantages, targets, ppo.config)
    assert float(aux["clip_frac"]) == 0.0 and abs(float(aux["approx_kl"])) < 1e-8
    # Not so without the previous steps: the trained policy's answers hang on them.
    zeros = Previous(jnp.zeros_like(traj.action), jnp.zeros_like(traj.reward))
    _, blind, _ = ppo.apply(params, carry0, traj.obs, traj.starts, zeros)
    assert float(jnp.abs(jax.nn.log_softmax(blind) - log_probs).max()) > 1.0


def test_a_network_that_takes_its_previous_step_refuses_to_run_without_it() -> None:
    network = RecurrentActorCritic(num_actions=2, hidden=(4,), memory=4, previous=True)
    carry, obs, starts = jnp.zeros((3, 4)), jnp.zeros((1, 3, 5)), jnp.ones((1, 3), bool)
    prev = Previous(jnp.zeros((1, 3), jnp.int32), jnp.zeros((1, 3)))
    params = network.init(jax.random.key(0), carry, obs, starts, prev)
    with pytest.raises(ValueError, match="previous action and reward as inputs"):
        network.apply(params, carry, obs, starts)


def test_the_switch_is_a_gru_input_recorded_with_every_config() -> None:
    assert PPOConfig().as_dict()["prev_action_reward"] is False
    assert coin_config(True).as_dict()["prev_action_reward"] is True
    with pytest.raises(ValueError, match="prev_action_reward=True is an input of recurrent"):
        PPOConfig().replace(prev_action_reward=True)
    PPOConfig().replace(network="gru", prev_action_reward=True)  # fine


def raw(x: jax.Array) -> np.ndarray:
    """An array's values, a typed PRNG key's as its data."""
    return np.asarray(jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x)


def test_a_checkpoint_from_before_the_switch_still_loads(tmp_path) -> None:
    env, params = scalegym.make("ToyChain-v0")
    config = PPOConfig(num_envs=2, num_steps=4, num_minibatches=1)
    runner = jax.jit(make_ppo(env, params, config).init)(jax.random.key(0))
    identity = {"env": "ToyChain-v0", "config": config.as_dict()}
    save_checkpoint(tmp_path, runner, {**identity, "updates": 3})
    # Rewrite it as a run saved before the field existed: no `prev` in the runner, no
    # `prev_action_reward` in the config.
    state = serialization.msgpack_restore((tmp_path / STATE).read_bytes())
    del state["prev"]
    (tmp_path / STATE).write_bytes(serialization.msgpack_serialize(state))
    progress = json.loads((tmp_path / PROGRESS).read_text())
    del progress["config"]["prev_action_reward"]
    (tmp_path / PROGRESS).write_text(json.dumps(progress))

    loaded, saved = load_checkpoint(tmp_path, runner, identity)
    assert saved["updates"] == 3 and loaded.prev is None
    for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(runner), strict=True):
        np.testing.assert_array_equal(raw(a), raw(b))
    # Such a run did not feed its GRU the previous step: resuming with the switch on is refused.
    gru = {"env": "ToyChain-v0", "config": {**config.as_dict(), "prev_action_reward": True}}
    with pytest.raises(ValueError, match=r"config\.prev_action_reward differ"):
        load_checkpoint(tmp_path, runner, gru)
