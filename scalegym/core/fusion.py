"""Keep XLA from recomputing a per-env value once for every element of an observation.

Under `vmap`, a per-env scalar (an agent cell, a layout index, a done flag) that feeds a wide
output (a V×V×C view) is broadcast to every element. XLA's fuser treats chains of cheap ops
(compare, select, add, gather) as free to duplicate, so it fuses the whole chain — the step's
dynamics, the auto-reset's cell sampling — into the loop that writes each output element: the
chain then runs V·V·C times per env instead of once. Measured on Rearrange-v0 (2-core CPU,
batch 4096) this made the observation cost ten times the rest of the step.

`lax.optimization_barrier` does not stop it on the CPU backend (it is expanded before fusion).
The fuser never duplicates a reduction into a consumer that reuses elements, so `compute_once`
passes each leaf through an identity reduction (max with the dtype's lowest value, or with
False), which is computed once per element of the small input and costs next to nothing.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp


def compute_once(tree: Any) -> Any:
    """`tree` unchanged in value, but each leaf computed once before any consumer reads it.

    Use it on small per-env arrays (state fields, indices, flags) right before they fan out into
    a large output. Leaves of PRNG-key dtype pass through untouched.
    """
    return jax.tree.map(_identity_reduction, tree)


def _identity_reduction(leaf: Any) -> Any:
    leaf = jnp.asarray(leaf)
    if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        return leaf
    if leaf.dtype == jnp.bool_:
        return jnp.any(jnp.stack([leaf, jnp.zeros_like(leaf)]), axis=0)
    if jnp.issubdtype(leaf.dtype, jnp.complexfloating):
        raise TypeError(f"compute_once: complex leaves are not supported (got {leaf.dtype})")
    # max(x, -inf) is x for every float x, NaN and -0.0 included.
    floating = jnp.issubdtype(leaf.dtype, jnp.floating)
    lowest = -jnp.inf if floating else jnp.iinfo(leaf.dtype).min
    return jnp.max(jnp.stack([leaf, jnp.full_like(leaf, lowest)]), axis=0)
