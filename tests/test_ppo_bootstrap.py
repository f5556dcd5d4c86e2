"""End to end: PPO bootstraps from V(info["final_observation"]) at a time limit, never at a goal.

A tiny chain with a 3-step limit ends episodes both ways within one rollout. The rollout's final
values and GAE's advantages are checked against values computed here, from the observations the
env really ended on, for the MLP and the GRU policy and once with observation normalisation.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scalegym
from scalegym.agents.ppo.algorithm import collect_rollout, env_step, make_ppo
from scalegym.agents.ppo.config import PPOConfig
from scalegym.agents.ppo.loss import calculate_gae
from scalegym.agents.ppo.normalization import normalize, update_obs_norm

LIMIT, E, T = 3, 8, 24
CASES = [("mlp", False), ("gru", False), ("mlp", True)]


def rollout_with_final_obs(ppo, runner):
    """The rollout's steps again, keeping each step's last real obs and the carry after it."""

    def step(r, _):
        r, (transition, final_obs, _) = env_step(ppo, r)
        return r, (transition, final_obs, r.carry)

    _, out = jax.lax.scan(step, runner, None, length=T)
    return out


def critic_values(ppo, params, obs_norm, obs, carry) -> jax.Array:
    """V of observations [E, ...] through the network's full forward pass (not `ppo.value`)."""
    x = normalize(obs_norm, obs, ppo.config.normalize_obs)
    if ppo.config.recurrent:
        starts = jnp.zeros((1, E), bool)
        return ppo.network.apply(params, carry, jax.tree.map(lambda v: v[None], x), starts)[2][0]
    return ppo.network.apply(params, x)[1]


def reference_gae(reward, value, bootstrap, terminated, truncated, gamma, lam) -> np.ndarray:
    """GAE over [T, E] from an explicit bootstrap value per step (0 where terminated)."""
    advantages = np.zeros_like(reward)
    next_adv = np.zeros(reward.shape[1])
    for t in reversed(range(reward.shape[0])):
        delta = reward[t] + gamma * bootstrap[t] - value[t]
        next_adv = delta + gamma * lam * ~(terminated[t] | truncated[t]) * next_adv
        advantages[t] = next_adv
    return advantages


@pytest.mark.parametrize(("network", "normalize_obs"), CASES)
def test_bootstrap_value_at_time_limit_and_termination(network: str, normalize_obs: bool) -> None:
    env, env_params = scalegym.make("ToyChain-v0", max_steps_in_episode=LIMIT)
    config = PPOConfig(
        network=network,
        hidden=(16,),
        memory=8,
        num_envs=E,
        num_steps=T,
        num_minibatches=2,
        normalize_obs=normalize_obs,
    )
    ppo = make_ppo(env, env_params, config)
    runner = jax.jit(ppo.init)(jax.random.key(0))
    if normalize_obs:  # statistics far from the identity, so a missed normalisation shows
        shifted = jax.tree.map(
            lambda x: 3.0 + 2.0 * jax.random.uniform(jax.random.key(1), (64, *x.shape[1:])),
            runner.obs,
        )
        runner = runner._replace(obs_norm=update_obs_norm(runner.obs_norm, shifted))

    _, traj, _ = jax.jit(lambda r: collect_rollout(ppo, r))(runner)
    steps, final_obs, carries = jax.jit(lambda r: rollout_with_final_obs(ppo, r))(runner)
    params = runner.train_state.params
    expected_final = jax.vmap(lambda o, c: critic_values(ppo, params, runner.obs_norm, o, c))(
        final_obs, carries
    )

    terminated, truncated = np.asarray(traj.terminated), np.asarray(traj.truncated)
    assert terminated.any() and truncated.any()  # both ends occur in this rollout
    np.testing.assert_array_equal(terminated, np.asarray(steps.terminated))
    # At the time limit the last real observation is the one at t = LIMIT, not the reset's.
    time_fraction = np.asarray(final_obs["vec"][..., 0])
    np.testing.assert_allclose(time_fraction[truncated], 1.0)
    np.testing.assert_allclose(
        np.asarray(traj.final_value), np.asarray(expected_final), rtol=1e-5, atol=1e-6
    )

    bootstrap = np.where(terminated, 0.0, np.asarray(expected_final))
    expected = reference_gae(
        np.asarray(traj.reward),
        np.asarray(traj.value),
        bootstrap,
        terminated,
        truncated,
        config.gamma,
        config.gae_lambda,
    )
    advantages, targets = calculate_gae(traj, config.gamma, config.gae_lambda)
    np.testing.assert_allclose(np.asarray(advantages), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        np.asarray(targets), expected + np.asarray(traj.value), rtol=1e-5, atol=1e-5
    )
    # The bootstrap of a truncated step is not the value of the reset observation after it.
    next_obs_value = np.asarray(traj.value)[1:]
    cut = truncated[:-1]
    assert not np.allclose(bootstrap[:-1][cut], next_obs_value[cut])
