"""Rearrange: navigate, pick, navigate, place K objects in a walled gridworld (after Galactic).

Over 400 lines: the env class keeps its step, its potential-based shaping and its spaces.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from scalegym.core import spaces
from scalegym.core.environment import Environment
from scalegym.core.fields import check_fields, check_kinds, is_int, require
from scalegym.core.fusion import compute_once
from scalegym.envs.rearrange import generator
from scalegym.envs.rearrange.render import render_rgb, render_text
from scalegym.envs.rearrange.types import (
    FORWARD,
    LEFT,
    OBS_MODES,
    PICK,
    PLACE,
    RIGHT,
    TASKS,
    RearrangeParams,
    RearrangeState,
    pool_view_size,
)

NUM_CHANNELS = 4  # wall, free object, goal, object on its goal
VECTOR_SIZE = 6  # holding, target (ahead, right), target goal (ahead, right), steps left
MAX_GRID = 64
MAX_OBJECTS = 16


class Rearrange(Environment[RearrangeState, RearrangeParams]):
    """Pick-and-place gridworld with shortest-path reward shaping.

    | item        | value                                                                     |
    |-------------|---------------------------------------------------------------------------|
    | grid        | H×W (default 9×9), border walls, procedural room walls from a layout pool |
    | actions     | Discrete(6): forward, turn left, turn right, pick, place, no-op           |
    | observation | egocentric: {"view": float32[V, V, 4], "vector": float32[6]}              |
    |             |   view channels wall, free object, goal, object-on-goal; agent at the     |
    |             |   centre facing up; vector: holding, target (ahead, right)/max(H, W),     |
    |             |   its goal (ahead, right)/max(H, W), steps-left fraction                  |
    |             | symbolic: float32[8 + 6K] positions only (see `symbolic_obs`)             |
    | reward      | −step_penalty; + Φ(next state) − Φ(state), Φ = −(shortest-path cells of |
    |             | the rest of the task, see `shaping_potential`); +pick_bonus on each       |
    |             | object's first pick; +success_bonus on success                            |
    | terminated  | success: every object on its goal ("place"), holding object 0 ("pick")    |
    | truncated   | time ≥ max_steps_in_episode (default 4·H·W)                               |
    | info        | success: bool                                                             |

    Objects block movement and placing; goals do not. The target is the held object, else the
    lowest-index object not on its goal. The shaping is potential-based over the whole task: one
    potential covers every stage and is applied on every step, so the shaping terms of any cycle
    of actions that returns to a state sum to zero and cannot be farmed (v0 skipped shaping at
    stage changes; "place, walk round, re-pick, walk back" earned +1.86 per 14 steps there).
    """

    instance_field = "layout_seed"  # the param that draws an instance (a scaling cell sets it)

    obs_from_state = True  # get_obs reads only the state: `step` computes one observation

    def __init__(self, task: str = "place"):
        if task not in TASKS:
            raise ValueError(f"Rearrange task must be one of {TASKS}, got {task!r}")
        self.task = task
        self._default_params: RearrangeParams | None = None

    @property
    def name(self) -> str:
        return "RearrangePick" if self.task == "pick" else "Rearrange"

    @property
    def default_params(self) -> RearrangeParams:
        if self._default_params is None:
            self._default_params = self.make_params()
        return self._default_params

    @property
    def num_actions(self) -> int:
        return 6

    # ----------------------------------------------------------------- params

    def make_params(self, **overrides: Any) -> RearrangeParams:
        """Validated params with the layout pool generated for the static fields."""
        fields = {f.name for f in dataclasses.fields(RearrangeParams)} - {"pool"}
        check_fields(f"{self.name} params", overrides, fields)
        check_kinds(f"{self.name} params", overrides, RearrangeParams())
        params = RearrangeParams(**overrides)
        if "max_steps_in_episode" not in overrides:
            params = params.replace(max_steps_in_episode=4 * params.height * params.width)
        self.validate_params(params)
        pool = generator.generate_pool(
            params.height,
            params.width,
            float(params.wall_density),
            pool_view_size(params),
            params.pool_size,
            params.layout_seed,
            2 * params.num_objects + 1,
        )
        return params.replace(pool=pool)

    def validate_params(self, params: RearrangeParams) -> None:
        p, name = params, self.name
        for field in ("height", "width"):
            value = getattr(p, field)
            require(
                is_int(value) and 5 <= value <= MAX_GRID,
                name,
                field,
                value,
                f"integers 5..{MAX_GRID}",
            )
        k = p.num_objects
        require(
            is_int(k) and 1 <= k <= MAX_OBJECTS,
            name,
            "num_objects",
            k,
            f"integers 1..{MAX_OBJECTS}",
        )
        if self.task == "pick":
            require(k == 1, name, "num_objects", k, "1 (a pick task moves one object)")
        require(p.obs_mode in OBS_MODES, name, "obs_mode", p.obs_mode, ", ".join(OBS_MODES))
        smallest = min(p.height, p.width)
        v = p.view_size
        require(
            is_int(v) and v % 2 == 1 and 3 <= v <= smallest,
            name,
            "view_size",
            v,
            f"odd integers 3..{smallest if smallest % 2 else smallest - 1} "
            f"(at most the grid's smaller side, {smallest})",
        )
        d = p.wall_density
        require(0.0 <= d <= 0.5, name, "wall_density", d, "0.0..0.5")
        interior = (p.height - 2) * (p.width - 2)
        free = int(interior * (1.0 - p.wall_density))
        cells = 2 * p.num_objects + 1
        if free < 2 * cells:
            raise ValueError(
                f"{self.name}: grid too small: height={p.height}, width={p.width} with "
                f"wall_density={p.wall_density} leaves about {free} free cells, but "
                f"num_objects={p.num_objects} needs at least {2 * cells} (2 × (agent + objects "
                f"+ goals)); enlarge height/width, lower wall_density or num_objects"
            )
        require(is_int(p.pool_size, 1), name, "pool_size", p.pool_size, ">= 1")
        size = generator.pool_bytes(p.height, p.width, pool_view_size(p), p.pool_size)
        require(
            size <= generator.MAX_POOL_BYTES,
            name,
            "pool_size",
            p.pool_size,
            f"a layout pool of at most {generator.MAX_POOL_BYTES // 2**20} MiB (this one would "
            f"take {size / 2**20:.0f} MiB); lower pool_size",
        )
        steps = p.max_steps_in_episode
        require(int(steps) >= 1, name, "max_steps_in_episode", steps, ">= 1")
        for field in ("step_penalty", "pick_bonus", "success_bonus"):
            value = getattr(p, field)
            require(np.isfinite(float(value)), name, field, value, "finite numbers")

    # ----------------------------------------------------------------- spaces

    def action_space(self, params: RearrangeParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(6)

    def observation_space(self, params: RearrangeParams | None = None) -> spaces.Space:
        p = params if params is not None else self.default_params
        if p.obs_mode == "symbolic":
            return spaces.Box(-1.0, 1.0, (8 + 6 * p.num_objects,), jnp.float32)
        v = p.view_size
        return spaces.Dict(
            {
                "view": spaces.Box(0.0, 1.0, (v, v, NUM_CHANNELS), jnp.float32),
                "vector": spaces.Box(-1.0, 1.0, (VECTOR_SIZE,), jnp.float32),
            }
        )

    # ----------------------------------------------------------------- dynamics

    def reset_env(self, key: jax.Array, params: RearrangeParams) -> tuple[Any, RearrangeState]:
        k = params.num_objects
        num_cells = 2 * k + 1  # agent, objects, goals: all distinct
        bits = jax.random.bits(key, (num_cells + 2,), jnp.uint32)
        draws = (bits >> 1).astype(jnp.int32)  # non-negative int32 for modulo
        layout = draws[0] % params.pool_size
        num_free = params.pool.num_free[layout]
        picks = sample_distinct(draws[1 : num_cells + 1], num_free)
        cells = params.pool.free_cells[layout, picks]  # [2K+1]
        state = RearrangeState(
            time=jnp.zeros((), jnp.int32),
            layout=layout,
            agent_pos=cells[0],
            agent_dir=draws[num_cells + 1] % 4,
            obj_pos=cells[1 : k + 1],
            goal_pos=cells[k + 1 :],
            held=jnp.full((), -1, jnp.int32),
            picked=jnp.zeros((k,), bool),
        )
        return self.get_obs(state, params), state

    def step_env(
        self, key: jax.Array, state: RearrangeState, action: Any, params: RearrangeParams
    ) -> tuple[Any, RearrangeState, jax.Array, jax.Array, dict[str, Any]]:
        del key  # the dynamics are deterministic
        action = jnp.asarray(action, jnp.int32)
        k = params.num_objects
        objects = jnp.arange(k, dtype=jnp.int32)
        front = front_cell(state.agent_pos, state.agent_dir, params.width)
        front_wall = params.pool.walls[state.layout, front]
        obj_at_front = (state.obj_pos == front) & (objects != state.held)  # [K]
        front_has_obj = jnp.any(obj_at_front)
        front_blocked = front_wall | front_has_obj
        holding = state.held >= 0

        moved = (action == FORWARD) & ~front_blocked
        turn = jnp.where(action == LEFT, 3, jnp.where(action == RIGHT, 1, 0))
        picks = (action == PICK) & ~holding & front_has_obj
        pick_idx = jnp.argmax(obj_at_front).astype(jnp.int32)
        places = (action == PLACE) & holding & ~front_blocked
        first_pick = picks & ~state.picked[pick_idx]

        next_state = state.replace(
            time=state.time + 1,
            agent_pos=jnp.where(moved, front, state.agent_pos),
            agent_dir=(state.agent_dir + turn) % 4,
            obj_pos=jnp.where(places & (objects == state.held), front, state.obj_pos),
            held=jnp.where(picks, pick_idx, jnp.where(places, -1, state.held)),
            picked=state.picked | (picks & (objects == pick_idx)),
        )
        shaping = self.shaping_potential(next_state, params) - self.shaping_potential(state, params)
        success = self.is_success(next_state, params)
        f32 = lambda x: jnp.asarray(x, jnp.float32)
        reward = (
            -f32(params.step_penalty)
            + shaping
            + f32(params.pick_bonus) * first_pick
            + f32(params.success_bonus) * success
        )
        obs = self.get_obs(next_state, params)
        return obs, next_state, reward, success, {"success": success}

    def is_success(self, state: RearrangeState, params: RearrangeParams) -> jax.Array:
        if self.task == "pick":
            return state.held == 0
        return jnp.all(objects_on_goal(state)) & (state.held < 0)

    def shaping_potential(self, state: RearrangeState, params: RearrangeParams) -> jax.Array:
        """Φ(s) float32 []: minus the shortest-path cells of the rest of the task, whole task.

        For "place", the rest of the task is the tour that first carries the held object (if
        any) to its goal, then, in index order, walks to each object resting off its goal and
        carries it to its goal. Φ is 0 once every object rests on its goal. It depends on the
        state alone, so the shaping Φ(s') − Φ(s) of the steps of any cycle back to a state sums
        to zero; and by the triangle inequality a pick or a place never lowers Φ. For "pick" it
        is the walk to object 0 until it is held.
        """
        dist = params.pool.dist  # [P, N, N]; scalar gathers below, never a row copy under vmap
        layout = state.layout
        held = jnp.maximum(state.held, 0)
        holding = state.held >= 0
        if self.task == "pick":  # the task ends with the pick: only the walk to object 0 is left
            walk = dist[layout, state.agent_pos, state.obj_pos[0]].astype(jnp.int32)
            return -jnp.where(holding, 0, walk).astype(jnp.float32)
        # Where the tour stands once the held object is delivered, and what delivering it costs.
        here = jnp.where(holding, state.goal_pos[held], state.agent_pos)
        cells = jnp.where(holding, dist[layout, state.agent_pos, state.goal_pos[held]], 0)
        cells = cells.astype(jnp.int32)
        objects = jnp.arange(state.obj_pos.shape[-1], dtype=jnp.int32)
        resting_off = (objects != state.held) & (state.obj_pos != state.goal_pos)  # [K]
        for k in range(state.obj_pos.shape[-1]):  # K is static and small
            leg = (
                dist[layout, here, state.obj_pos[k]]
                + dist[layout, state.obj_pos[k], state.goal_pos[k]]
            )
            cells = cells + jnp.where(resting_off[k], leg.astype(jnp.int32), 0)
            here = jnp.where(resting_off[k], state.goal_pos[k], here)
        return -cells.astype(jnp.float32)

    # ----------------------------------------------------------------- observations

    def get_obs(
        self, state: RearrangeState, params: RearrangeParams, key: jax.Array | None = None
    ) -> Any:
        if params.obs_mode == "symbolic":
            return symbolic_obs(state, params)
        return egocentric_obs(state, params)

    # ----------------------------------------------------------------- rendering

    def render_text(self, state: RearrangeState, params: RearrangeParams) -> str:
        return render_text(state, params)

    def render_rgb(self, state: RearrangeState, params: RearrangeParams) -> np.ndarray:
        return render_rgb(state, params)


def front_cell(pos: jax.Array, facing: jax.Array, width: int) -> jax.Array:
    """The cell ahead of `pos` (border walls keep it inside the grid for any free `pos`)."""
    step = jnp.asarray([-width, 1, width, -1], jnp.int32)
    return pos + step[facing]


def sample_distinct(draws: jax.Array, n: jax.Array) -> jax.Array:
    """Distinct uniform indices in [0, n) from non-negative int draws [M] (M small, static).

    Draw j is reduced mod (n − j) to a rank r among the values not yet taken; the value of that
    rank is the least fixed point of x = r + #{earlier picks ≤ x}, reached in j iterations.
    This avoids a permutation of all n cells per reset and any sort.
    """
    picks: list[jax.Array] = []
    for j in range(draws.shape[0]):
        rank = draws[j] % (n - j)
        x = rank
        for _ in range(j):
            x = rank + sum((p <= x).astype(jnp.int32) for p in picks)
        picks.append(x)
    return jnp.stack(picks)


def objects_on_goal(state: RearrangeState) -> jax.Array:
    """[K] bool: object k rests on its own goal (not held)."""
    objects = jnp.arange(state.obj_pos.shape[-1], dtype=jnp.int32)
    return (state.obj_pos == state.goal_pos) & (objects != state.held)


def current_target(state: RearrangeState) -> jax.Array:
    """The held object, else the lowest-index object not on its goal (0 when all are)."""
    first_open = jnp.argmin(objects_on_goal(state)).astype(jnp.int32)
    return jnp.where(state.held >= 0, state.held, first_open)


def agent_frame(state: RearrangeState, cells: jax.Array, width: int) -> tuple[jax.Array, jax.Array]:
    """(ahead, right) offsets of `cells` [K] from the agent, in cells, in the agent's frame."""
    dir_row = jnp.asarray(generator.DIR_ROW, jnp.int32)
    dir_col = jnp.asarray(generator.DIR_COL, jnp.int32)
    d = state.agent_dir
    drow = cells // width - state.agent_pos // width
    dcol = cells % width - state.agent_pos % width
    ahead = drow * dir_row[d] + dcol * dir_col[d]
    right = drow * dir_row[(d + 1) % 4] + dcol * dir_col[(d + 1) % 4]
    return ahead, right


def egocentric_obs(state: RearrangeState, params: RearrangeParams) -> dict[str, jax.Array]:
    """{"view": [V, V, 4], "vector": [6]} float32 for one state."""
    v, w = params.view_size, params.width
    r = v // 2
    k = params.num_objects
    objects = jnp.arange(k, dtype=jnp.int32)
    held_k = objects == state.held  # [K]
    on_goal = (state.obj_pos == state.goal_pos) & ~held_k  # [K]
    cells = jnp.concatenate([state.obj_pos, state.goal_pos])  # [2K]
    ahead, right = agent_frame(state, cells, w)
    inside = (jnp.abs(ahead) <= r) & (jnp.abs(right) <= r)
    flat = jnp.where(inside, (r - ahead) * v + (r + right), -1)  # [2K] view cell or −1
    # The view cell each item lights in channels 1..3, or −1 where it shows in none.
    marks = jnp.stack(
        [
            jnp.where(~held_k & ~on_goal, flat[:k], -1),  # free object
            jnp.where(~on_goal, flat[k:], -1),  # goal not yet covered
            jnp.where(on_goal, flat[:k], -1),  # object on its goal
        ]
    )  # [3, K]
    wall = params.pool.wall_view[state.layout, state.agent_pos, state.agent_dir]  # [V*V]
    # Each of the V·V·4 view elements reads these few values; computed once, not per element.
    marks, wall = compute_once((marks, wall))
    view_cells = jnp.arange(v * v, dtype=jnp.int32)[:, None, None]  # [V*V, 1, 1]
    lit = jnp.any(marks[None] == view_cells, axis=2)  # [V*V, 3]
    # Built channels-last directly: a [4, V*V] stack then a transpose costs a copy per step.
    view = jnp.concatenate([wall[:, None], lit], axis=1).reshape(v, v, NUM_CHANNELS)

    target = current_target(state)
    holding = state.held >= 0
    t_ahead = jnp.where(holding, 0, ahead[target])  # a held object travels with the agent
    t_right = jnp.where(holding, 0, right[target])
    offsets = jnp.stack([t_ahead, t_right, ahead[k + target], right[k + target]])
    # Explicit float32 throughout: under jax_enable_x64 Python scalars would promote to float64.
    scale = jnp.float32(1.0 / max(params.height, params.width))
    vector = jnp.concatenate(
        [
            holding.astype(jnp.float32)[None],
            offsets.astype(jnp.float32) * scale,
            steps_left(state, params)[None],
        ]
    )
    return {"view": view.astype(jnp.float32), "vector": vector}


def steps_left(state: RearrangeState, params: RearrangeParams) -> jax.Array:
    """float32 [] fraction of the episode's step budget still unused."""
    limit = jnp.asarray(params.max_steps_in_episode, jnp.float32)
    return 1.0 - state.time.astype(jnp.float32) / limit


def symbolic_obs(state: RearrangeState, params: RearrangeParams) -> jax.Array:
    """float32[8 + 6K]: agent (row, col), facing one-hot [4], holding, then per object its
    (row, col), its goal (row, col), on-goal and held flags, and the steps-left fraction.
    Rows are scaled by 1/(H−1) and columns by 1/(W−1)."""
    h, w = params.height, params.width
    k = params.num_objects
    objects = jnp.arange(k, dtype=jnp.int32)
    held_k = objects == state.held
    obj_pos = jnp.where(held_k, state.agent_pos, state.obj_pos)
    on_goal = (state.obj_pos == state.goal_pos) & ~held_k

    def row_col(cells: jax.Array) -> tuple[jax.Array, jax.Array]:
        rows, cols = (cells // w).astype(jnp.float32), (cells % w).astype(jnp.float32)
        return rows / jnp.float32(h - 1), cols / jnp.float32(w - 1)

    a_row, a_col = row_col(state.agent_pos)
    o_row, o_col = row_col(obj_pos)
    g_row, g_col = row_col(state.goal_pos)
    per_object = jnp.stack([o_row, o_col, g_row, g_col, on_goal, held_k], axis=-1).reshape(-1)
    head = jnp.stack([a_row, a_col]).astype(jnp.float32)
    facing = jax.nn.one_hot(state.agent_dir, 4, dtype=jnp.float32)
    holding = (state.held >= 0).astype(jnp.float32)[None]
    return jnp.concatenate(
        [head, facing, holding, per_object.astype(jnp.float32), steps_left(state, params)[None]]
    )
