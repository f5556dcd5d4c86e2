"""Rearrange state and params (flax dataclasses; shape-setting fields are static)."""

from __future__ import annotations

import jax
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
    layout_seed: int = struct.field(pytree_node=False, default=0)
