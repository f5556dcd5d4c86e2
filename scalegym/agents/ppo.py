"""PPO under jit, PureJaxRL style: rollout → epochs → minibatches as nested `lax.scan`.

`make_train(env, params, config)` returns a pure `train(key)`; `jax.jit(jax.vmap(train))(keys)`
trains many seeds in one compiled call. `make_ppo` exposes the same run as `init` plus `update`
so a host driver can run it in jitted chunks and log between them (scalegym.agents.train).

Shapes: E = num_envs, T = num_steps; rollouts are time-major [T, E, ...]. Feed-forward networks
see each sample alone ([1, T·E] "sequences"); the GRU sees whole [T, E] sequences and is reset
where an episode starts. Truncation-aware GAE: the value of the last real observation
(`info["final_observation"]`) is bootstrapped on truncation, and never on termination.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from scalegym.agents.networks import NETWORKS, ActorCritic, RecurrentActorCritic
from scalegym.agents.normalization import ObsNorm, init_obs_norm, normalize, update_obs_norm
from scalegym.core.wrappers import EpisodeStatistics


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """PPO hyperparameters; the defaults are PureJaxRL's CartPole settings."""

    num_envs: int = 4
    num_steps: int = 128  # rollout length per env per update
    total_timesteps: int = 500_000  # env steps per seed
    update_epochs: int = 4
    num_minibatches: int = 4
    learning_rate: float = 2.5e-4
    anneal_lr: bool = True
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    network: str = "mlp"  # mlp | cnn | gru
    hidden: tuple[int, ...] = (64, 64)
    activation: str = "tanh"  # tanh | relu
    memory: int = 128  # GRU width
    normalize_obs: bool = False

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def num_updates(self) -> int:
        return max(1, self.total_timesteps // self.batch_size)

    @property
    def recurrent(self) -> bool:
        return self.network == "gru"

    def validate(self) -> None:
        """Raise ValueError naming the field and the allowed values."""
        positive = ("num_envs", "num_steps", "total_timesteps", "update_epochs", "num_minibatches")
        for name in positive:
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(
                    f"PPOConfig.{name}={getattr(self, name)!r}: allowed: integers >= 1"
                )
        if self.network not in NETWORKS:
            raise ValueError(f"PPOConfig.network={self.network!r}: allowed: {', '.join(NETWORKS)}")
        if self.activation not in ("tanh", "relu"):
            raise ValueError(f"PPOConfig.activation={self.activation!r}: allowed: tanh, relu")
        split = self.num_envs if self.recurrent else self.batch_size
        if split % self.num_minibatches:
            what = "num_envs" if self.recurrent else "num_envs * num_steps"
            raise ValueError(
                f"PPOConfig.num_minibatches={self.num_minibatches} must divide {what}={split}"
            )
        for name in ("learning_rate", "gamma", "gae_lambda", "clip_eps", "max_grad_norm"):
            if not getattr(self, name) > 0:
                raise ValueError(f"PPOConfig.{name}={getattr(self, name)!r}: allowed: > 0")

    def as_dict(self) -> dict[str, Any]:
        """The fields as JSON-ready values (tuples become lists), for records and checkpoints."""
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in dataclasses.fields(self)
        }

    def replace(self, **changes: Any) -> PPOConfig:
        """A copy with `changes`; unknown names raise ValueError listing the fields."""
        fields = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - fields)
        if unknown:
            raise ValueError(
                f"unknown PPO config field(s) {', '.join(unknown)}; "
                f"allowed: {', '.join(sorted(fields))}"
            )
        if "hidden" in changes:
            changes["hidden"] = tuple(changes["hidden"])
        config = dataclasses.replace(self, **changes)
        config.validate()
        return config


class Transition(NamedTuple):
    obs: Any  # [T, E, ...]
    starts: jax.Array  # [T, E] bool obs opens an episode (resets the GRU)
    action: jax.Array  # [T, E] int32
    log_prob: jax.Array  # [T, E]
    value: jax.Array  # [T, E]
    reward: jax.Array  # [T, E]
    terminated: jax.Array  # [T, E]
    truncated: jax.Array  # [T, E]
    final_value: jax.Array  # [T, E] value of the last real observation of the step


class RunnerState(NamedTuple):
    train_state: TrainState
    env_state: Any  # [E] EpisodeStatistics state
    obs: Any  # [E, ...]
    starts: jax.Array  # [E] bool
    carry: jax.Array  # [E, M] GRU carry ([E, 1] unused for feed-forward)
    obs_norm: ObsNorm
    key: jax.Array
    update: jax.Array  # [] int32 updates done


class PPO(NamedTuple):
    """The pieces of one PPO run: `init(key)`, `update(runner)`, `train(key)`, and `learn` (the
    optimisation on one given rollout, shared with the host path)."""

    init: Callable[[jax.Array], RunnerState]
    update: Callable[[RunnerState], tuple[RunnerState, dict[str, jax.Array]]]
    train: Callable[[jax.Array], tuple[RunnerState, dict[str, jax.Array]]]
    learn: Callable[..., tuple[TrainState, dict[str, jax.Array]]]
    apply: Callable[..., tuple[jax.Array, jax.Array, jax.Array]]
    env: EpisodeStatistics
    config: PPOConfig


def calculate_gae(
    transitions: Transition, gamma: float, gae_lambda: float
) -> tuple[jax.Array, jax.Array]:
    """Advantages and value targets [T, E], bootstrapping from `final_value` unless terminated.

    `final_value[t]` is V(s_{t+1}) for a continuing episode and V(last real obs) at a time limit,
    so truncation bootstraps and termination does not; the recursion stops at either end.
    """
    not_terminated = 1.0 - transitions.terminated.astype(jnp.float32)
    not_done = not_terminated * (1.0 - transitions.truncated.astype(jnp.float32))
    deltas = (
        transitions.reward + gamma * not_terminated * transitions.final_value - transitions.value
    )

    def backwards(next_adv: jax.Array, xs: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, ...]:
        delta, cont = xs
        adv = delta + gamma * gae_lambda * cont * next_adv
        return adv, adv

    _, advantages = jax.lax.scan(
        backwards, jnp.zeros_like(deltas[0]), (deltas, not_done), reverse=True
    )
    return advantages, advantages + transitions.value


def ppo_loss(
    params: Any,
    apply_fn: Callable[..., tuple[jax.Array, jax.Array, jax.Array]],
    carry: jax.Array,
    batch: Transition,
    advantages: jax.Array,
    targets: jax.Array,
    config: PPOConfig,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Clipped-surrogate PPO loss on one minibatch of sequences [T', E']."""
    _, logits, values = apply_fn(params, carry, batch.obs, batch.starts)
    log_probs = jax.nn.log_softmax(logits)
    log_prob = jnp.take_along_axis(log_probs, batch.action[..., None], axis=-1)[..., 0]
    ratio = jnp.exp(log_prob - batch.log_prob)
    adv = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    clipped_ratio = jnp.clip(ratio, 1.0 - config.clip_eps, 1.0 + config.clip_eps)
    actor_loss = -jnp.minimum(ratio * adv, clipped_ratio * adv).mean()
    clipped_values = batch.value + jnp.clip(values - batch.value, -config.clip_eps, config.clip_eps)
    value_loss = (
        0.5 * jnp.maximum(jnp.square(values - targets), jnp.square(clipped_values - targets)).mean()
    )
    entropy = -(jnp.exp(log_probs) * log_probs).sum(-1).mean()
    total = actor_loss + config.vf_coef * value_loss - config.ent_coef * entropy
    approx_kl = ((ratio - 1.0) - jnp.log(ratio)).mean()
    return total, {
        "loss": total,
        "actor_loss": actor_loss,
        "value_loss": value_loss,
        "entropy": entropy,
        "approx_kl": approx_kl,
        "clip_frac": (jnp.abs(ratio - 1.0) > config.clip_eps).mean(),
    }


def build_network(config: PPOConfig, num_actions: int) -> nn.Module:
    conv = config.network == "cnn"
    if config.recurrent:
        return RecurrentActorCritic(
            num_actions, config.hidden, config.activation, memory=config.memory
        )
    return ActorCritic(num_actions, config.hidden, config.activation, conv)


def make_apply(network: nn.Module, recurrent: bool) -> Callable[..., Any]:
    """One calling convention for both kinds: (params, carry, obs [T, E, ...], starts [T, E])
    → (carry, logits [T, E, A], values [T, E])."""
    if recurrent:
        return lambda params, carry, obs, starts: network.apply(params, carry, obs, starts)

    def apply(params: Any, carry: jax.Array, obs: Any, starts: jax.Array) -> tuple[jax.Array, ...]:
        t, e = starts.shape
        flat = jax.tree.map(lambda x: x.reshape(t * e, *x.shape[2:]), obs)
        logits, values = network.apply(params, flat)
        return carry, logits.reshape(t, e, -1), values.reshape(t, e)

    return apply


def make_value(network: nn.Module, recurrent: bool) -> Callable[..., jax.Array]:
    """(params, carry, obs [E, ...]) → values [E] of observations that start no episode."""
    if recurrent:
        apply = make_apply(network, True)

        def value(params: Any, carry: jax.Array, obs: Any) -> jax.Array:
            starts = jnp.zeros((1, carry.shape[0]), bool)
            return apply(params, carry, jax.tree.map(lambda x: x[None], obs), starts)[2][0]

        return value
    return lambda params, carry, obs: network.apply(params, obs, method="value")


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


def make_optimizer(config: PPOConfig) -> optax.GradientTransformation:
    """Adam with global-norm clipping and, optionally, a linearly annealed learning rate."""

    def schedule(count: jax.Array) -> jax.Array:
        steps_per_update = config.num_minibatches * config.update_epochs
        return config.learning_rate * (1.0 - (count // steps_per_update) / config.num_updates)

    return optax.chain(
        optax.clip_by_global_norm(config.max_grad_norm),
        optax.adam(learning_rate=schedule if config.anneal_lr else config.learning_rate, eps=1e-5),
    )


def make_learn(config: PPOConfig, apply: Callable[..., Any]) -> Callable[..., Any]:
    """`learn(train_state, traj [T, E], carry0 [E, M], obs_norm, key) -> (train_state, losses)`:
    GAE, then `update_epochs` passes of minibatch SGD. Shared by the jitted and host paths."""
    e, t = config.num_envs, config.num_steps
    carry_width = config.memory if config.recurrent else 1
    # Feed-forward samples are independent, so minibatches shuffle all T·E of them.
    seq_len, num_seqs = (t, e) if config.recurrent else (1, t * e)
    minibatch_seqs = num_seqs // config.num_minibatches

    def learn(
        train_state: TrainState,
        traj: Transition,
        carry0: jax.Array,
        obs_norm: ObsNorm,
        key: jax.Array,
    ) -> tuple[TrainState, dict[str, jax.Array]]:
        """GAE, then `update_epochs` passes of minibatch SGD over one rollout [T, E]."""
        advantages, targets = calculate_gae(traj, config.gamma, config.gae_lambda)
        to_seqs = lambda x: x.reshape(seq_len, num_seqs, *x.shape[2:])
        traj, advantages, targets = jax.tree.map(to_seqs, (traj, advantages, targets))
        carries = carry0 if config.recurrent else jnp.zeros((num_seqs, carry_width), jnp.float32)
        traj = traj._replace(obs=normalize(obs_norm, traj.obs, config.normalize_obs))

        def epoch(carry: tuple[TrainState, jax.Array], _: None):
            state, key = carry
            key, k_perm = jax.random.split(key)
            perm = jax.random.permutation(k_perm, num_seqs)

            def minibatches(x: jax.Array) -> jax.Array:
                x = jnp.take(x, perm, axis=1)
                x = x.reshape(x.shape[0], config.num_minibatches, minibatch_seqs, *x.shape[2:])
                return jnp.swapaxes(x, 0, 1)  # [num_minibatches, seq_len, minibatch_seqs, ...]

            mb = jax.tree.map(minibatches, (traj, advantages, targets))
            mb_carry = jnp.take(carries, perm, axis=0).reshape(
                config.num_minibatches, minibatch_seqs, carry_width
            )

            def step(state: TrainState, xs: tuple) -> tuple[TrainState, dict]:
                (batch, adv, tgt), c = xs
                grads, aux = jax.grad(ppo_loss, has_aux=True)(
                    state.params, apply, c, batch, adv, tgt, config
                )
                return state.apply_gradients(grads=grads), aux

            state, aux = jax.lax.scan(step, state, (mb, mb_carry))
            return (state, key), aux

        (state, _), losses = jax.lax.scan(
            epoch, (train_state, key), None, length=config.update_epochs
        )
        return state, {k: v.mean() for k, v in losses.items()}

    return learn


def make_ppo(env: Any, env_params: Any, config: PPOConfig) -> PPO:
    """Build the jittable pieces of a PPO run on a functional env (scalegym or gymnax)."""
    config.validate()
    env = EpisodeStatistics(env)
    num_actions = env.action_space(env_params).n
    network = build_network(config, num_actions)
    apply = make_apply(network, config.recurrent)
    value_of = make_value(network, config.recurrent)
    e, t = config.num_envs, config.num_steps
    carry_width = config.memory if config.recurrent else 1
    tx = make_optimizer(config)
    learn = make_learn(config, apply)

    def init(key: jax.Array) -> RunnerState:
        key, k_net, k_env = jax.random.split(key, 3)
        obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(
            jax.random.split(k_env, e), env_params
        )
        carry = jnp.zeros((e, carry_width), jnp.float32)
        starts = jnp.ones((e,), bool)
        add_time = lambda tree: jax.tree.map(lambda x: x[None], tree)
        if config.recurrent:
            variables = network.init(k_net, carry, add_time(obs), starts[None])
        else:
            variables = network.init(k_net, obs)
        state = TrainState.create(apply_fn=network.apply, params=variables, tx=tx)
        return RunnerState(
            state, env_state, obs, starts, carry, init_obs_norm(obs), key, jnp.int32(0)
        )

    def env_step(runner: RunnerState, _: None) -> tuple[RunnerState, tuple[Transition, Any, dict]]:
        key, k_act, k_env = jax.random.split(runner.key, 3)
        params = runner.train_state.params
        norm = lambda o: normalize(runner.obs_norm, o, config.normalize_obs)
        add_time = lambda tree: jax.tree.map(lambda x: x[None], tree)
        carry, logits, value = apply(
            params, runner.carry, add_time(norm(runner.obs)), runner.starts[None]
        )
        logits, value = logits[0], value[0]
        action = jax.random.categorical(k_act, logits).astype(jnp.int32)
        log_prob = jnp.take_along_axis(jax.nn.log_softmax(logits), action[:, None], -1)[:, 0]
        obs, env_state, reward, terminated, truncated, info = jax.vmap(
            env.step, in_axes=(0, 0, 0, None)
        )(jax.random.split(k_env, e), runner.env_state, action, env_params)
        # V(last real obs): equals V(next obs) unless the episode ended this step. A recurrent
        # critic needs this step's carry; a feed-forward one is batched over the whole rollout
        # after the scan (same numbers, far fewer small ops per step).
        final_obs = info["final_observation"]
        if config.recurrent:
            final_value = value_of(params, carry, norm(final_obs))
        else:
            final_value = jnp.zeros((e,), jnp.float32)
        done = terminated | truncated
        transition = Transition(
            runner.obs,
            runner.starts,
            action,
            log_prob,
            value,
            reward.astype(jnp.float32),
            terminated,
            truncated,
            final_value,
        )
        runner = runner._replace(env_state=env_state, obs=obs, starts=done, carry=carry, key=key)
        deferred = None if config.recurrent else final_obs
        episode_info = {k: v for k, v in info.items() if k.startswith("returned_episode")}
        return runner, (transition, deferred, episode_info)

    def update(runner: RunnerState) -> tuple[RunnerState, dict[str, jax.Array]]:
        """One PPO iteration: a rollout of T steps on E envs, then `learn` on it."""
        carry0 = runner.carry
        runner, (traj, final_obs, episode_info) = jax.lax.scan(env_step, runner, None, length=t)
        if not config.recurrent:
            flat = jax.tree.map(lambda x: x.reshape(t * e, *x.shape[2:]), final_obs)
            flat = normalize(runner.obs_norm, flat, config.normalize_obs)
            values = value_of(runner.train_state.params, None, flat)
            traj = traj._replace(final_value=values.reshape(t, e))
        key, k_learn = jax.random.split(runner.key)
        # Learn with the statistics the rollout acted with, then fold the rollout into them.
        state, metrics = learn(runner.train_state, traj, carry0, runner.obs_norm, k_learn)
        obs_norm = runner.obs_norm
        if config.normalize_obs:
            obs_norm = update_obs_norm(obs_norm, traj.obs)
        metrics.update(episode_metrics(episode_info))  # reduced once per rollout, not per step
        runner = runner._replace(
            train_state=state, key=key, obs_norm=obs_norm, update=runner.update + 1
        )
        return runner, metrics

    def train(key: jax.Array) -> tuple[RunnerState, dict[str, jax.Array]]:
        runner = init(key)
        return jax.lax.scan(lambda r, _: update(r), runner, None, length=config.num_updates)

    return PPO(init, update, train, learn, apply, env, config)


def make_train(
    env: Any, env_params: Any, config: PPOConfig
) -> Callable[[jax.Array], tuple[RunnerState, dict[str, jax.Array]]]:
    """The whole run as one pure function of a key (vmap it over seeds)."""
    return make_ppo(env, env_params, config).train
