"""The actor-critic as PPO calls it: one convention for feed-forward and recurrent networks.

`make_apply` maps (params, carry, obs [T, E, ...], starts [T, E], prev) to (carry,
logits [T, E, A], values [T, E]) for both kinds — prev is the previous action and reward
(`Previous` [T, E]) of a GRU with `prev_action_reward`, else None; `sample_action` draws
actions [E] and their log-probabilities.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from scalegym.agents.ppo.config import PPOConfig
from scalegym.agents.ppo.networks import ActorCritic, Previous, RecurrentActorCritic


def build_network(config: PPOConfig, num_actions: int) -> nn.Module:
    conv = config.network == "cnn"
    if config.recurrent:
        return RecurrentActorCritic(
            num_actions,
            config.hidden,
            config.activation,
            memory=config.memory,
            previous=config.prev_action_reward,
        )
    return ActorCritic(num_actions, config.hidden, config.activation, conv)


def make_apply(network: nn.Module, recurrent: bool) -> Callable[..., Any]:
    """One calling convention for both kinds: (params, carry, obs [T, E, ...], starts [T, E],
    prev [T, E] or None) → (carry, logits [T, E, A], values [T, E])."""
    if recurrent:
        return lambda params, carry, obs, starts, prev=None: network.apply(
            params, carry, obs, starts, prev
        )

    def apply(
        params: Any, carry: jax.Array, obs: Any, starts: jax.Array, prev: None = None
    ) -> tuple[jax.Array, ...]:
        t, e = starts.shape
        flat = jax.tree.map(lambda x: x.reshape(t * e, *x.shape[2:]), obs)
        logits, values = network.apply(params, flat)
        return carry, logits.reshape(t, e, -1), values.reshape(t, e)

    return apply


def make_value(network: nn.Module, recurrent: bool) -> Callable[..., jax.Array]:
    """(params, carry, obs [E, ...], prev [E] or None) → values [E] of observations that start
    no episode."""
    if recurrent:
        apply = make_apply(network, True)

        def value(
            params: Any, carry: jax.Array, obs: Any, prev: Previous | None = None
        ) -> jax.Array:
            starts = jnp.zeros((1, carry.shape[0]), bool)
            return apply(params, carry, add_time(obs), starts, add_time(prev))[2][0]

        return value
    return lambda params, carry, obs, prev=None: network.apply(params, obs, method="value")


def sample_action(key: jax.Array, logits: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Actions [E] int32 sampled from logits [E, A], and their log-probabilities [E]."""
    action = jax.random.categorical(key, logits).astype(jnp.int32)
    log_prob = jnp.take_along_axis(jax.nn.log_softmax(logits), action[:, None], -1)[:, 0]
    return action, log_prob


def add_time(tree: Any) -> Any:
    """A leading time axis of length 1 on every leaf: [E, ...] -> [1, E, ...]."""
    return jax.tree.map(lambda x: x[None], tree)
