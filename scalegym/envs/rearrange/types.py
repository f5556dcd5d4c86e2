"""Rearrange state and params (flax dataclasses; shape-setting fields are static)."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from flax import struct

from scalegym.envs.rearrange.generator import LayoutPool

ACTIONS = ("forward", "left", "right", "pick", "place", "noop")
FORWARD, LEFT, RIGHT, PICK, PLACE, NOOP = range(6)
OBS_MODES = ("egocentric", "symbolic")
TASKS = ("place", "pick")
NO_OBJECT = -1


@struct.dataclass
class RearrangeState:
    """One episode's state (K objects). Batch dims, when vmapped, lead every field."""

    time: jax.Array  # [] int32 steps taken
    layout: jax.Array  # [] int32 index into the layout pool
    agent_pos: jax.Array  # [] int32 cell
    agent_dir: jax.Array  # [] int32 facing, 0 north 1 east 2 south 3 west
    obj_pos: jax.Array  # [K] int32 cell of each object (stale while held)
    goal_pos: jax.Array  # [K] int32 goal cell of each object
    held: jax.Array  # [] int32 held object, or -1
    picked: jax.Array  # [K] bool object has been picked at least once this episode


@struct.dataclass
class RearrangeParams:
    """Tunables are pytree leaves (vmappable); static fields set shapes and recompile on change."""

    pool: LayoutPool | None = None  # built by Rearrange.make_params from the static fields
    max_steps_in_episode: int = 324  # default 4·H·W
    step_penalty: float = 0.01
    pick_bonus: float = 1.0
    success_bonus: float = 10.0
    height: int = struct.field(pytree_node=False, default=9)
    width: int = struct.field(pytree_node=False, default=9)
    num_objects: int = struct.field(pytree_node=False, default=1)
    view_size: int = struct.field(pytree_node=False, default=5)
    obs_mode: str = struct.field(pytree_node=False, default="egocentric")
    wall_density: float = struct.field(pytree_node=False, default=0.2)
    pool_size: int = struct.field(pytree_node=False, default=256)
    # Draws the layout pool at make(). A leaf, not a static field, so params of different
    # instances (a scaling cell gives each run its own) stack into one batch; the pool carries
    # the seed it was drawn from and a replace() that changes it is refused like the static ones.
    layout_seed: int = 0

    def __post_init__(self) -> None:
        # Runs on every construction, `replace` included: a static field changed after the pool
        # was built would keep the old layouts (and shapes) without a word.
        drift = pool_drift(self)
        if drift:
            wanted = ", ".join(f"{name}={value}" for name, value, _ in drift)
            built = ", ".join(f"{name}={value}" for name, _, value in drift)
            raise ValueError(
                f"RearrangeParams: {wanted}, but the layout pool was built for {built}. Fields "
                f"that shape the pool ({', '.join(POOL_FIELDS)}) are fixed when params are made: "
                "build new ones with env.make_params(...) or scalegym.make(id, ...) instead of "
                "params.replace(...)"
            )


POOL_FIELDS = (
    "height",
    "width",
    "num_objects",
    "view_size",
    "obs_mode",
    "wall_density",
    "pool_size",
    "layout_seed",
)


def pool_view_size(params: RearrangeParams) -> int:
    """Side of the egocentric wall views the layout pool holds (0: symbolic obs needs none)."""
    return params.view_size if params.obs_mode == "egocentric" else 0


def concrete(value: Any) -> np.ndarray | None:
    """An integer leaf's value where it is known on the host (an int, or a numpy or committed JAX
    array); None for a tracer or any other stand-in that pytree transformations put there."""
    if isinstance(value, jax.core.Tracer) or value is None:
        return None
    if isinstance(value, int | np.integer | np.ndarray | jax.Array):
        array = np.asarray(value)
        return array if array.dtype.kind in "iu" else None
    return None


def pool_drift(params: RearrangeParams) -> list[tuple[str, Any, Any]]:
    """(name, value the params need, value the pool was built for) for each mismatch."""
    built = dict(getattr(params.pool, "built_for", ()))
    need = {
        "height": params.height,
        "width": params.width,
        "pool_size": params.pool_size,
        "wall_density": params.wall_density,
    }
    drift = [(k, v, built[k]) for k, v in need.items() if k in built and built[k] != v]
    drawn_from = getattr(params.pool, "layout_seed", None)
    wanted, drawn = concrete(params.layout_seed), concrete(drawn_from)
    if wanted is not None and drawn is not None and not np.array_equal(wanted, drawn):
        drift.append(("layout_seed", params.layout_seed, drawn_from))
    view = built.get("view", pool_view_size(params))
    if view != pool_view_size(params):
        wanted = f"{params.obs_mode}/{params.view_size}"
        drift.append(("obs_mode/view_size", wanted, f"wall views {view}x{view}"))
    min_free = 2 * params.num_objects + 1  # cells for the agent, objects and goals
    if "min_free" in built and built["min_free"] < min_free:
        drift.append(("num_objects", params.num_objects, (built["min_free"] - 1) // 2))
    return drift
