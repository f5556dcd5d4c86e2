"""Actor-critic networks for PPO: MLP, a small CNN for grid views, and a GRU recurrent policy.

Observations may be arrays or dicts of arrays (e.g. Rearrange's {"view", "vector"}). Shapes are
batch-first: obs leaves [B, ...], logits [B, A], values [B]; the recurrent network takes time-major
sequences [T, B, ...] and a carry [B, H], and optionally its previous step (`Previous` [T, B]).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

NETWORKS = ("mlp", "cnn", "gru")


def flatten_obs(obs: Any, batch_dims: int = 1) -> jax.Array:
    """Concatenate every obs leaf, flattened past the batch dims: [*batch, F] float32."""
    leaves = jax.tree.leaves(obs)
    return jnp.concatenate(
        [x.reshape(*x.shape[:batch_dims], -1).astype(jnp.float32) for x in leaves], axis=-1
    )


def orthogonal(scale: float = 1.0) -> Callable[..., jax.Array]:
    """Orthogonal initializer by Gram-Schmidt in plain jnp ops, not LAPACK's QR.

    Same distribution as `flax.linen.initializers.orthogonal` (QR of a Gaussian matrix with the
    signs of R's diagonal folded in). Written out because jaxlib 0.10's batched CPU QR can
    deadlock when two of them run at once on a 2-thread pool — which `jax.vmap(init)` over seeds
    on a 2-core machine does.
    """

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
        rows, cols = int(np.prod(shape[:-1])), int(shape[-1])
        tall = (max(rows, cols), min(rows, cols))
        a = jax.random.normal(key, tall, jnp.float32)

        def column(q: jax.Array, j: jax.Array) -> tuple[jax.Array, None]:
            v = a[:, j]
            for _ in range(2):  # re-orthogonalise once: "twice is enough" for stability
                v = v - q @ (q.T @ v)
            q = q.at[:, j].set(v / jnp.linalg.norm(v))
            return q, None

        q, _ = jax.lax.scan(column, jnp.zeros(tall, jnp.float32), jnp.arange(tall[1]))
        if rows < cols:
            q = q.T
        return (scale * q).reshape(shape).astype(dtype)

    return init


def _dense(features: int, scale: float) -> nn.Dense:
    return nn.Dense(features, kernel_init=orthogonal(scale), bias_init=nn.initializers.zeros)


class Torso(nn.Module):
    """Features of one batch of observations: CNN over a "view" leaf if asked, then an MLP."""

    hidden: Sequence[int] = (64, 64)
    activation: str = "tanh"
    conv: bool = False

    @nn.compact
    def __call__(self, obs: Any) -> jax.Array:
        act = nn.tanh if self.activation == "tanh" else nn.relu
        if self.conv and isinstance(obs, dict) and "view" in obs:
            view = obs["view"].astype(jnp.float32)  # [B, V, V, C]
            x = nn.relu(nn.Conv(16, (3, 3), padding="SAME")(view))
            x = nn.relu(nn.Conv(32, (3, 3), padding="VALID")(x))
            rest = {k: v for k, v in obs.items() if k != "view"}
            parts = [x.reshape(x.shape[0], -1)]
            if rest:
                parts.append(flatten_obs(rest))
            x = jnp.concatenate(parts, axis=-1)
        else:
            x = flatten_obs(obs)
        for width in self.hidden:
            x = act(_dense(width, np.sqrt(2))(x))
        return x


class ActorCritic(nn.Module):
    """Separate actor and critic torsos (PureJaxRL's layout): obs → (logits [B, A], value [B])."""

    num_actions: int
    hidden: Sequence[int] = (64, 64)
    activation: str = "tanh"
    conv: bool = False

    def setup(self) -> None:
        self.actor_torso = Torso(self.hidden, self.activation, self.conv)
        self.actor_head = _dense(self.num_actions, 0.01)
        self.critic_torso = Torso(self.hidden, self.activation, self.conv)
        self.critic_head = _dense(1, 1.0)

    def __call__(self, obs: Any) -> tuple[jax.Array, jax.Array]:
        return self.actor_head(self.actor_torso(obs)), self.value(obs)

    def value(self, obs: Any) -> jax.Array:
        """The critic alone (the bootstrap value of final observations needs no logits)."""
        return self.critic_head(self.critic_torso(obs))[..., 0]


class ResetGRU(nn.Module):
    """A GRU cell scanned over time that zeroes its carry where an episode started."""

    features: int

    @nn.compact
    def __call__(self, carry: jax.Array, inputs: tuple[jax.Array, jax.Array]):
        x, start = inputs  # [B, F], [B] bool: this step's obs opens a new episode
        carry = jnp.where(start[:, None], jnp.zeros_like(carry), carry)
        carry, y = nn.GRUCell(self.features, recurrent_kernel_init=orthogonal())(carry, x)
        return carry, y


class Previous(NamedTuple):
    """A recurrent policy's last step as it takes it in: the action it played and the reward paid
    (× `PPOConfig.reward_scale`, as the learner sees it). Whatever it holds where a step opens an
    episode, the network reads zeros there (`previous_inputs`)."""

    action: jax.Array  # [T, B] int32
    reward: jax.Array  # [T, B] float32


def previous_inputs(prev: Previous, starts: jax.Array, num_actions: int) -> jax.Array:
    """[T, B, A + 1]: the previous action one-hot and the previous reward, zeros at starts."""
    one_hot = jax.nn.one_hot(prev.action, num_actions, dtype=jnp.float32)  # [T, B, A]
    x = jnp.concatenate([one_hot, prev.reward.astype(jnp.float32)[..., None]], axis=-1)
    return jnp.where(starts[..., None], 0.0, x)


class RecurrentActorCritic(nn.Module):
    """Embed → GRU (reset at episode starts) → actor and critic heads, over [T, B] sequences.

    With `previous`, the GRU's input at step t is the embedded observation and the previous
    action (one-hot) and reward (RL², R2D2): zeros where an episode starts, the steps where the
    carry resets, so a policy can condition on what it already played where the observation
    does not say.
    """

    num_actions: int
    hidden: Sequence[int] = (128,)
    activation: str = "relu"
    conv: bool = False
    memory: int = 128
    previous: bool = False

    @nn.compact
    def __call__(
        self, carry: jax.Array, obs: Any, starts: jax.Array, prev: Previous | None = None
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """carry [B, M], obs leaves [T, B, ...], starts [T, B], prev [T, B] (with `previous`)
        → carry, logits [T, B, A], values [T, B]."""
        t, b = starts.shape
        flat_obs = jax.tree.map(lambda x: x.reshape(t * b, *x.shape[2:]), obs)
        x = Torso(self.hidden, self.activation, self.conv, name="embed")(flat_obs)
        x = x.reshape(t, b, -1)
        if self.previous:
            if prev is None:
                raise ValueError(
                    "this recurrent policy takes its previous action and reward as inputs "
                    "(PPOConfig.prev_action_reward = true), and its caller passed none (prev): "
                    "pass them, or set it to false"
                )
            x = jnp.concatenate([x, previous_inputs(prev, starts, self.num_actions)], axis=-1)
        scan = nn.scan(
            ResetGRU,
            variable_broadcast="params",
            split_rngs={"params": False},
            in_axes=0,
            out_axes=0,
        )
        carry, y = scan(self.memory, name="gru")(carry, (x, starts))
        act = nn.tanh if self.activation == "tanh" else nn.relu
        actor = act(_dense(self.memory, np.sqrt(2))(y))
        critic = act(_dense(self.memory, np.sqrt(2))(y))
        logits = _dense(self.num_actions, 0.01)(actor)
        value = _dense(1, 1.0)(critic)[..., 0]
        return carry, logits, value

    def initial_carry(self, batch: int) -> jax.Array:
        return jnp.zeros((batch, self.memory), jnp.float32)
