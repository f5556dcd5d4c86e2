"""Jittable observation and action spaces: Discrete, Box and Dict, each convertible to gymnasium."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np


class Space:
    """Base class: a set of values with a jittable `sample` and `contains`."""

    def sample(self, key: jax.Array) -> Any:
        raise NotImplementedError

    def contains(self, x: Any) -> jax.Array:
        raise NotImplementedError

    def to_gymnasium(self) -> gymnasium.spaces.Space:
        raise NotImplementedError


class Discrete(Space):
    """Integers {0, ..., n-1}, int32."""

    def __init__(self, n: int):
        if int(n) < 1:
            raise ValueError(f"Discrete space needs n >= 1, got n={n}")
        self.n = int(n)
        self.shape: tuple[int, ...] = ()
        self.dtype = jnp.int32

    def sample(self, key: jax.Array) -> jax.Array:
        return jax.random.randint(key, (), 0, self.n, dtype=jnp.int32)

    def contains(self, x: Any) -> jax.Array:
        x = jnp.asarray(x)
        return (
            jnp.logical_and(x >= 0, x < self.n)
            & (x.shape == ())
            & jnp.issubdtype(x.dtype, jnp.integer)
        )

    def to_gymnasium(self) -> gymnasium.spaces.Discrete:
        return gymnasium.spaces.Discrete(self.n)

    def __repr__(self) -> str:
        return f"Discrete({self.n})"


class Box(Space):
    """A float32 (or int) array of fixed shape with elementwise bounds."""

    def __init__(
        self,
        low: float | np.ndarray,
        high: float | np.ndarray,
        shape: Sequence[int],
        dtype: Any = jnp.float32,
    ):
        self.shape = tuple(int(s) for s in shape)
        self.dtype = dtype
        self.low = np.broadcast_to(np.asarray(low, dtype=np.float64), self.shape)
        self.high = np.broadcast_to(np.asarray(high, dtype=np.float64), self.shape)
        if np.any(self.low > self.high):
            raise ValueError("Box space needs low <= high everywhere")

    def sample(self, key: jax.Array) -> jax.Array:
        if jnp.issubdtype(self.dtype, jnp.integer):
            return jax.random.randint(
                key, self.shape, self.low.astype(np.int64), self.high.astype(np.int64) + 1
            ).astype(self.dtype)
        # Unbounded sides fall back to a standard normal draw so samples stay finite.
        low = jnp.asarray(np.where(np.isfinite(self.low), self.low, -1.0), jnp.float32)
        high = jnp.asarray(np.where(np.isfinite(self.high), self.high, 1.0), jnp.float32)
        u = jax.random.uniform(key, self.shape, jnp.float32)
        return (low + u * (high - low)).astype(self.dtype)

    def contains(self, x: Any) -> jax.Array:
        x = jnp.asarray(x)
        if x.shape != self.shape:
            return jnp.asarray(False)
        low = jnp.asarray(self.low, jnp.float32)
        high = jnp.asarray(self.high, jnp.float32)
        xf = x.astype(jnp.float32)
        return jnp.all(jnp.logical_and(xf >= low, xf <= high))

    def to_gymnasium(self) -> gymnasium.spaces.Box:
        dtype = np.dtype(self.dtype)
        return gymnasium.spaces.Box(
            low=self.low.astype(dtype), high=self.high.astype(dtype), shape=self.shape, dtype=dtype
        )

    def __repr__(self) -> str:
        return f"Box(shape={self.shape}, dtype={np.dtype(self.dtype).name})"


class Dict(Space):
    """A dictionary of named sub-spaces; samples and observations are dicts with the same keys."""

    def __init__(self, spaces: dict[str, Space]):
        self.spaces = OrderedDict(spaces)

    def sample(self, key: jax.Array) -> dict[str, Any]:
        keys = jax.random.split(key, len(self.spaces))
        return {
            name: space.sample(k)
            for (name, space), k in zip(self.spaces.items(), keys, strict=True)
        }

    def contains(self, x: Any) -> jax.Array:
        if not isinstance(x, dict) or set(x) != set(self.spaces):
            return jnp.asarray(False)
        out = jnp.asarray(True)
        for name, space in self.spaces.items():
            out = jnp.logical_and(out, space.contains(x[name]))
        return out

    def to_gymnasium(self) -> gymnasium.spaces.Dict:
        return gymnasium.spaces.Dict({k: s.to_gymnasium() for k, s in self.spaces.items()})

    def __getitem__(self, name: str) -> Space:
        return self.spaces[name]

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}: {v!r}" for k, v in self.spaces.items())
        return f"Dict({inner})"
