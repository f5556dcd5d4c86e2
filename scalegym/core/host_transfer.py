"""One device-to-host copy for a pytree of arrays: pack into bytes under jit, unpack as views.

`jax.device_get` on a pytree copies leaf by leaf, each with its own dispatch; a gymnasium step
that hands back an observation dict, reward, flags and info pays that per leaf. `BytePacker`
concatenates the leaves' bytes inside the compiled step, so the host makes one copy and reads
each leaf back as a NumPy view of it (dtype and shape as traced).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


@dataclass(frozen=True)
class _Leaf:
    offset: int  # first byte in the packed buffer
    nbytes: int
    dtype: np.dtype
    shape: tuple[int, ...]


class BytePacker:
    """Packs pytrees shaped like `example` (arrays or `jax.ShapeDtypeStruct`s) into uint8 [B]."""

    def __init__(self, example: Any):
        leaves, self.treedef = jax.tree.flatten(example)
        self.leaves: list[_Leaf] = []
        offset = 0
        for leaf in leaves:
            dtype = np.dtype(leaf.dtype)
            shape = tuple(leaf.shape)
            nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            self.leaves.append(_Leaf(offset, nbytes, dtype, shape))
            offset += nbytes
        self.nbytes = offset

    def pack(self, tree: Any) -> jax.Array:
        """The leaves' bytes in one uint8 vector [nbytes] (call under jit)."""
        parts = [_as_bytes(jnp.asarray(x)) for x in jax.tree.leaves(tree)]
        if not parts:
            return jnp.zeros((0,), jnp.uint8)
        return jnp.concatenate(parts)

    def unpack(self, buffer: np.ndarray) -> Any:
        """The pytree back from a host copy of `pack`'s output, as views of `buffer` (no copies;
        writable when `buffer` is)."""
        views = [np.ndarray(x.shape, x.dtype, buffer, x.offset) for x in self.leaves]
        return jax.tree.unflatten(self.treedef, views)


def _as_bytes(x: jax.Array) -> jax.Array:
    """`x` flattened to its bytes (native byte order), uint8 [x.size * itemsize]."""
    flat = x.reshape(-1)
    if x.dtype == jnp.bool_:
        return flat.astype(jnp.uint8)  # NumPy's bool is one byte, 0 or 1
    if np.dtype(x.dtype).itemsize == 1:
        return jax.lax.bitcast_convert_type(flat, jnp.uint8)
    return jax.lax.bitcast_convert_type(flat, jnp.uint8).reshape(-1)
