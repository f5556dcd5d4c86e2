"""Policies that learn nothing: one fixed action (each fixed μ, each fixed Aarseth η) and random.

They have the evaluation signature `policy(obs [B, ...], key, theta) → actions [B] int32` with
their one parameter passed as data (`theta`), so every fixed action shares one compiled
evaluation (`scalegym.envs.threebody.evaluation.evaluate_instances`, the `timestep` cell).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp


def fixed_action(obs: jax.Array, key: jax.Array, action: Any) -> jax.Array:
    """Always `action` (theta): one fixed μ of ThreeBody-v0, one fixed η of ThreeBodyAarseth-v0."""
    return jnp.full(obs.shape[:1], action, jnp.int32)


def random_action(obs: jax.Array, key: jax.Array, num_actions: Any) -> jax.Array:
    """Uniform over 0..num_actions−1 (theta), one draw per row of `obs`."""
    return jax.random.randint(key, obs.shape[:1], 0, num_actions, jnp.int32)
