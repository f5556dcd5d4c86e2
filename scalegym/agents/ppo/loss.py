"""PPO's learning step: truncation-aware GAE, the clipped loss, and minibatch epochs on a rollout.

Shapes: E = num_envs, T = num_steps; rollouts are time-major [T, E, ...]. Feed-forward networks
see each sample alone ([1, T·E] "sequences"); the GRU sees whole [T, E] sequences (with the
previous actions and rewards the rollout fed it, `Transition.prev`, where it takes them). The value
of the last real observation (`info["final_observation"]`) is bootstrapped on truncation, never on
termination.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from scalegym.agents.ppo.config import PPOConfig
from scalegym.agents.ppo.networks import Previous
from scalegym.agents.ppo.normalization import ObsNorm, normalize


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
    prev: Previous | None = None  # [T, E] the previous step the policy was fed (prev_action_reward)


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
    _, logits, values = apply_fn(params, carry, batch.obs, batch.starts, batch.prev)
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


def learning_rate(config: PPOConfig) -> float | optax.Schedule:
    """The learning rate by optimiser step: with `anneal_lr`, linear from `learning_rate` to 0
    over the run's `num_updates` (a training run's whole length, PureJaxRL's schedule); else
    constant (the budget agent's: a rate that looks at the run's end would make a budget's run
    depend on the largest budget of its grid)."""
    if not config.anneal_lr:
        return config.learning_rate

    def schedule(count: jax.Array) -> jax.Array:
        steps_per_update = config.num_minibatches * config.update_epochs
        return config.learning_rate * (1.0 - (count // steps_per_update) / config.num_updates)

    return schedule


def make_optimizer(config: PPOConfig) -> optax.GradientTransformation:
    """Adam with global-norm clipping at `learning_rate(config)`."""
    return optax.chain(
        optax.clip_by_global_norm(config.max_grad_norm),
        optax.adam(learning_rate=learning_rate(config), eps=1e-5),
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
