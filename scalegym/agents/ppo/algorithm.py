"""PPO under jit, PureJaxRL style: rollout → epochs → minibatches as nested `lax.scan`.

`make_ppo(env, params, config)` gathers the static pieces of a run; its steps are top-level pure
functions — `init_runner`, `collect_rollout`, `ppo_update` (rollout, learn, episode sums for the
log) — so `jax.jit(jax.vmap(ppo.train))(keys)` trains many seeds in one compiled call and a host
driver can run `ppo.update` in jitted chunks, logging between them (scalegym.agents.ppo.driver).

Shapes: E = num_envs, T = num_steps; rollouts are time-major [T, E, ...]. The learning step (GAE,
loss, epochs) is in `ppo.loss`, the network convention in `ppo.policy`. A GRU with
`prev_action_reward` also takes each env's previous action and reward: the runner carries them
(`prev`) beside the GRU carry, each transition records what its step was fed, and the network
reads zeros where an episode starts, where it resets the carry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.training.train_state import TrainState

from scalegym.agents.devices import per_device
from scalegym.agents.ppo.config import PPOConfig
from scalegym.agents.ppo.loss import Transition, make_learn, make_optimizer
from scalegym.agents.ppo.networks import Previous
from scalegym.agents.ppo.normalization import ObsNorm, init_obs_norm, normalize, update_obs_norm
from scalegym.agents.ppo.policy import (
    add_time,
    build_network,
    make_apply,
    make_value,
    sample_action,
)
from scalegym.core.wrappers import EpisodeStatistics

__all__ = [
    "PPO",
    "PPOConfig",
    "RunnerState",
    "collect_rollout",
    "episode_metrics",
    "init_runner",
    "make_ppo",
    "make_train",
    "ppo_update",
]


class RunnerState(NamedTuple):
    train_state: TrainState
    env_state: Any  # [E] EpisodeStatistics state
    obs: Any  # [E, ...]
    starts: jax.Array  # [E] bool obs opens an episode
    carry: jax.Array  # [E, M] GRU carry ([E, 1] unused for feed-forward)
    obs_norm: ObsNorm
    key: jax.Array
    update: jax.Array  # [] int32 updates done
    prev: Previous | None = None  # [E] last action and reward; None unless prev_action_reward


class PPO(NamedTuple):
    """The static pieces of one PPO run on a functional env (scalegym or gymnax)."""

    env: EpisodeStatistics
    env_params: Any
    config: PPOConfig
    network: nn.Module
    apply: Callable[..., tuple[jax.Array, jax.Array, jax.Array]]  # see policy.make_apply
    value: Callable[..., jax.Array]  # (params, carry, obs [E, ...], prev [E] or None) -> [E]
    learn: Callable[..., tuple[TrainState, dict[str, jax.Array]]]  # see ppo_loss.make_learn
    mesh: Any = None  # the devices the env batch is split over (devices.env_mesh); None: one

    def init(self, key: jax.Array) -> RunnerState:
        return init_runner(self, key)

    def update(self, runner: RunnerState) -> tuple[RunnerState, dict[str, jax.Array]]:
        return ppo_update(self, runner)

    def train(self, key: jax.Array) -> tuple[RunnerState, dict[str, jax.Array]]:
        """The whole run from a key: metrics are stacked over updates."""
        runner = init_runner(self, key)
        return jax.lax.scan(lambda r, _: ppo_update(self, r), runner, None, self.config.num_updates)


def make_ppo(env: Any, env_params: Any, config: PPOConfig) -> PPO:
    """Build the pieces of a PPO run; the env is wrapped in `EpisodeStatistics` for the log."""
    config.validate()
    env = EpisodeStatistics(env)
    network = build_network(config, env.action_space(env_params).n)
    apply = make_apply(network, config.recurrent)
    value = make_value(network, config.recurrent)
    learn = make_learn(config, apply)
    return PPO(env, env_params, config, network, apply, value, learn)


def make_train(
    env: Any, env_params: Any, config: PPOConfig
) -> Callable[[jax.Array], tuple[RunnerState, dict[str, jax.Array]]]:
    """The whole run as one pure function of a key (vmap it over seeds)."""
    return make_ppo(env, env_params, config).train


def init_runner(ppo: PPO, key: jax.Array) -> RunnerState:
    """Fresh network, optimiser and E envs from one key."""
    config, env = ppo.config, ppo.env
    e = config.num_envs
    key, k_net, k_env = jax.random.split(key, 3)
    obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(k_env, e), ppo.env_params
    )
    carry = jnp.zeros((e, config.memory if config.recurrent else 1), jnp.float32)
    starts = jnp.ones((e,), bool)
    prev = no_previous(e) if config.prev_action_reward else None
    if config.recurrent:
        variables = ppo.network.init(k_net, carry, add_time(obs), starts[None], add_time(prev))
    else:
        variables = ppo.network.init(k_net, obs)
    state = TrainState.create(
        apply_fn=ppo.network.apply, params=variables, tx=make_optimizer(config)
    )
    norm = init_obs_norm(obs)
    return RunnerState(state, env_state, obs, starts, carry, norm, key, jnp.int32(0), prev)


def learner_reward(config: PPOConfig, reward: jax.Array) -> jax.Array:
    """Rewards [E] as the learner sees them (GAE, the next step's input): × reward_scale."""
    return reward.astype(jnp.float32) * jnp.float32(config.reward_scale)


def no_previous(batch: int) -> Previous:
    """The previous step of `batch` lanes that have taken none ([B] zeros; starts mask it too)."""
    return Previous(jnp.zeros((batch,), jnp.int32), jnp.zeros((batch,), jnp.float32))


def env_step(ppo: PPO, runner: RunnerState) -> tuple[RunnerState, tuple[Transition, Any, dict]]:
    """Act on E envs once: (runner, (transition, last real obs [E, ...], episode info))."""
    config = ppo.config
    key, k_act, k_env = jax.random.split(runner.key, 3)
    params = runner.train_state.params
    norm = lambda o: normalize(runner.obs_norm, o, config.normalize_obs)
    carry, logits, value = ppo.apply(
        params, runner.carry, add_time(norm(runner.obs)), runner.starts[None], add_time(runner.prev)
    )
    action, log_prob = sample_action(k_act, logits[0])
    step = per_device(jax.vmap(ppo.env.step, in_axes=(0, 0, 0, None)), ppo.mesh)
    obs, env_state, reward, terminated, truncated, info = step(
        jax.random.split(k_env, config.num_envs), runner.env_state, action, ppo.env_params
    )
    reward = learner_reward(config, reward)  # the logged returns stay unscaled
    # This step, as the next one takes it in (masked there if it starts an episode).
    prev = None if runner.prev is None else Previous(action, reward)
    # V(last real obs) equals V(next obs) unless the episode ended this step. A recurrent critic
    # needs this step's carry; a feed-forward one is batched over the whole rollout afterwards
    # (same numbers, far fewer small ops per step), so its slot is filled in `collect_rollout`.
    final_obs = info["final_observation"]
    if config.recurrent:
        final_value = ppo.value(params, carry, norm(final_obs), prev)
    else:
        final_value = jnp.zeros((config.num_envs,), jnp.float32)
    transition = Transition(
        runner.obs,
        runner.starts,
        action,
        log_prob,
        value[0],
        reward,
        terminated,
        truncated,
        final_value,
        runner.prev,
    )
    done = terminated | truncated
    runner = runner._replace(
        env_state=env_state, obs=obs, starts=done, carry=carry, key=key, prev=prev
    )
    episode_info = {k: v for k, v in info.items() if k.startswith("returned_episode")}
    return runner, (transition, final_obs, episode_info)


def collect_rollout(ppo: PPO, runner: RunnerState) -> tuple[RunnerState, Transition, dict]:
    """T steps on E envs: (runner, rollout [T, E], episode info [T, E]) with final values set."""
    config = ppo.config
    t, e = config.num_steps, config.num_envs
    runner, (traj, final_obs, episode_info) = jax.lax.scan(
        lambda r, _: env_step(ppo, r), runner, None, length=t
    )
    if not config.recurrent:
        flat = jax.tree.map(lambda x: x.reshape(t * e, *x.shape[2:]), final_obs)
        flat = normalize(runner.obs_norm, flat, config.normalize_obs)
        values = ppo.value(runner.train_state.params, None, flat)
        traj = traj._replace(final_value=values.reshape(t, e))
    return runner, traj, episode_info


def episode_metrics(info: dict[str, Any]) -> dict[str, jax.Array]:
    """Sums and counts over the episodes that ended in a rollout (averaged on the host)."""
    ended = info["returned_episode"].astype(jnp.float32)
    metrics = {
        "episodes": ended.sum(),
        "return_sum": (info["returned_episode_returns"] * ended).sum(),
        "length_sum": (info["returned_episode_lengths"] * ended).sum(),
    }
    if "returned_episode_success" in info:
        metrics["success_sum"] = (info["returned_episode_success"] * ended).sum()
    return metrics


def ppo_update(ppo: PPO, runner: RunnerState) -> tuple[RunnerState, dict[str, jax.Array]]:
    """One PPO iteration: collect a rollout, learn on it, and sum its episodes for the log."""
    carry0 = runner.carry
    runner, traj, episode_info = collect_rollout(ppo, runner)
    key, k_learn = jax.random.split(runner.key)
    # Learn with the statistics the rollout acted with, then fold the rollout into them.
    state, metrics = ppo.learn(runner.train_state, traj, carry0, runner.obs_norm, k_learn)
    obs_norm = runner.obs_norm
    if ppo.config.normalize_obs:
        obs_norm = update_obs_norm(obs_norm, traj.obs)
    metrics.update(episode_metrics(episode_info))  # reduced once per rollout, not per step
    runner = runner._replace(
        train_state=state, key=key, obs_norm=obs_norm, update=runner.update + 1
    )
    return runner, metrics
