"""Running observation normalisation: per-leaf mean and variance, merged batch by batch."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


class ObsNorm(NamedTuple):
    """Running mean and variance of every obs leaf (Chan's parallel update)."""

    count: jax.Array  # []
    mean: Any  # like one obs
    var: Any


def init_obs_norm(obs: Any) -> ObsNorm:
    zeros = jax.tree.map(lambda x: jnp.zeros(x.shape[1:], jnp.float32), obs)
    ones = jax.tree.map(lambda x: jnp.ones(x.shape[1:], jnp.float32), obs)
    return ObsNorm(jnp.asarray(1e-4, jnp.float32), zeros, ones)


def update_obs_norm(norm: ObsNorm, obs: Any) -> ObsNorm:
    """Merge a batch of obs (leaves [..., *shape]) into the running moments."""
    first = jax.tree.leaves(obs)[0]
    leading = first.ndim - jax.tree.leaves(norm.mean)[0].ndim
    axes = tuple(range(leading))
    n = jnp.asarray(first.shape[:leading], jnp.float32).prod()
    total = norm.count + n

    def new_mean(mean: jax.Array, x: jax.Array) -> jax.Array:
        return mean + (x.mean(axes) - mean) * n / total

    def new_var(mean: jax.Array, var: jax.Array, x: jax.Array) -> jax.Array:
        delta = x.mean(axes) - mean
        m2 = var * norm.count + x.var(axes) * n + jnp.square(delta) * norm.count * n / total
        return m2 / total

    # Two maps rather than one returning pairs: a tuple observation would look like a pair.
    means = jax.tree.map(new_mean, norm.mean, obs)
    variances = jax.tree.map(new_var, norm.mean, norm.var, obs)
    return ObsNorm(total, means, variances)


def normalize(norm: ObsNorm, obs: Any, enabled: bool) -> Any:
    if not enabled:
        return obs
    return jax.tree.map(
        lambda x, m, v: jnp.clip((x - m) / jnp.sqrt(v + 1e-8), -10.0, 10.0),
        obs,
        norm.mean,
        norm.var,
    )
