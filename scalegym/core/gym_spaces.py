"""Spaces and values across the gymnasium border: scalegym or gymnax spaces as gymnasium spaces,
and host values in exactly the structure and dtype a gymnasium space declares."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium
import numpy as np

__all__ = ["to_gymnasium_space", "to_space_values"]


def to_gymnasium_space(space: Any) -> gymnasium.spaces.Space:
    """A gymnasium space for a scalegym space (`to_gymnasium()`) or a gymnax-style space.

    gymnax spaces are recognised by their fields (Discrete: `n`; Box: `low`, `high`, `shape`,
    `dtype`; Dict and Tuple: `spaces`), so envs built on gymnax's space classes convert too.
    """
    if isinstance(space, gymnasium.spaces.Space):
        return space
    if hasattr(space, "to_gymnasium"):
        return space.to_gymnasium()
    kind = type(space).__name__
    if kind == "Discrete" and hasattr(space, "n"):
        return gymnasium.spaces.Discrete(int(space.n))
    if kind == "Box" and all(hasattr(space, a) for a in ("low", "high", "shape", "dtype")):
        dtype = np.dtype(space.dtype)
        shape = tuple(int(s) for s in space.shape)
        low = np.broadcast_to(np.asarray(space.low), shape).astype(dtype)
        high = np.broadcast_to(np.asarray(space.high), shape).astype(dtype)
        return gymnasium.spaces.Box(low=low, high=high, shape=shape, dtype=dtype)
    sub = getattr(space, "spaces", None)
    if kind == "Dict" and isinstance(sub, Mapping):
        return gymnasium.spaces.Dict({k: to_gymnasium_space(s) for k, s in sub.items()})
    if kind == "Tuple" and isinstance(sub, Sequence):
        return gymnasium.spaces.Tuple(tuple(to_gymnasium_space(s) for s in sub))
    raise TypeError(
        f"cannot convert {space!r} to a gymnasium space: expected a scalegym space (with "
        "to_gymnasium()) or a gymnax Discrete, Box, Dict or Tuple space"
    )


def to_space_values(x: Any, space: gymnasium.spaces.Space) -> Any:
    """Host values in exactly the structure and dtype `space` declares (fresh, writable arrays)."""
    if isinstance(space, gymnasium.spaces.Dict):
        return {k: to_space_values(x[k], s) for k, s in space.spaces.items()}
    if isinstance(space, gymnasium.spaces.Tuple):
        return tuple(to_space_values(v, s) for v, s in zip(x, space.spaces, strict=True))
    if isinstance(space, gymnasium.spaces.Discrete):
        return space.dtype.type(np.asarray(x).item())  # a scalar: what check_env asks for
    return np.array(x, dtype=space.dtype)
