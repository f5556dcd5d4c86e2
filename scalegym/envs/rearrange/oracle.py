"""The BFS oracle for Rearrange: exact shortest plans by value iteration on the planning graph.

The graph's nodes are (holding target, cell, facing), 2·N·4 of them. Walls and every object other
than the target are obstacles; the target blocks its cell until picked. Distances to the task's
last action are relaxed to a fixed point (BFS order, unit costs), then the policy takes the action
whose successor is closest. With one object this is the exact optimum of the episode; with K > 1
it is optimal object by object, in target order.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from scalegym.envs.rearrange.env import Rearrange, current_target
from scalegym.envs.rearrange.types import FORWARD, LEFT, PICK, PLACE, RIGHT, RearrangeParams
from scalegym.envs.rearrange.types import RearrangeState as State

INF = jnp.int32(1 << 20)


class PlanningGraph(NamedTuple):
    """Successor tables of one state's planning graph; node = (h·N + cell)·4 + facing."""

    forward: jax.Array  # [2N·4] int32 node after "forward"
    left: jax.Array  # [2N·4] int32
    right: jax.Array  # [2N·4] int32
    pick: jax.Array  # [2N·4] int32 node after a valid pick (holding = 1), −1 if invalid
    finish: jax.Array  # [2N·4] bool the task's last action (pick or place) succeeds here


def planning_graph(env: Rearrange, state: State, params: RearrangeParams) -> PlanningGraph:
    """Build the successor tables for the current target of one (unbatched) state."""
    n = params.height * params.width
    k = params.num_objects
    target = current_target(state)
    objects = jnp.arange(k, dtype=jnp.int32)
    walls = params.pool.walls[state.layout]  # [N]
    cells = jnp.arange(n, dtype=jnp.int32)
    others = (objects != target) & (objects != state.held)  # [K] obstacles
    other_cells = jnp.any((state.obj_pos[:, None] == cells[None, :]) & others[:, None], axis=0)
    obstacle = walls | other_cells  # [N]
    target_cell = state.obj_pos[target]
    goal_cell = state.goal_pos[target]

    step = jnp.asarray([-params.width, 1, params.width, -1], jnp.int32)
    facing = jnp.arange(4, dtype=jnp.int32)
    front = jnp.clip(cells[:, None] + step[None, :], 0, n - 1)  # [N, 4]
    blocked_free = obstacle[front] | (front == target_cell)  # target still on the floor
    blocked_held = obstacle[front]

    def node(h: int, cell: jax.Array, face: jax.Array) -> jax.Array:
        return (h * n + cell) * 4 + face

    here = cells[:, None]
    fwd = jnp.stack(
        [
            node(0, jnp.where(blocked_free, here, front), facing[None, :]),
            node(1, jnp.where(blocked_held, here, front), facing[None, :]),
        ]
    )  # [2, N, 4]
    left = jnp.stack([node(h, here, (facing[None, :] + 3) % 4) for h in (0, 1)])
    right = jnp.stack([node(h, here, (facing[None, :] + 1) % 4) for h in (0, 1)])
    left, right = (jnp.broadcast_to(t, (2, n, 4)) for t in (left, right))
    faces_target = front == target_cell
    faces_free_goal = (front == goal_cell) & ~obstacle[front]
    if env.task == "pick":
        pick = jnp.full((2, n, 4), -1, jnp.int32)
        finish = jnp.stack([faces_target, jnp.zeros_like(faces_target)])
    else:
        pick = jnp.stack(
            [
                jnp.where(faces_target, node(1, here, facing[None, :]), -1),
                jnp.full((n, 4), -1, jnp.int32),
            ]
        )
        finish = jnp.stack([jnp.zeros_like(faces_free_goal), faces_free_goal])
    flat = lambda t: t.reshape(-1)
    return PlanningGraph(flat(fwd), flat(left), flat(right), flat(pick), flat(finish))


def distances_to_finish(graph: PlanningGraph) -> jax.Array:
    """[2N·4] int32 fewest actions from each node to task completion (INF if impossible)."""

    def relax(dist: jax.Array) -> jax.Array:
        via_pick = jnp.where(graph.pick >= 0, dist[jnp.maximum(graph.pick, 0)], INF)
        best = jnp.minimum(
            jnp.minimum(dist[graph.forward], dist[graph.left]),
            jnp.minimum(dist[graph.right], via_pick),
        )
        return jnp.minimum(dist, jnp.minimum(best + 1, INF))

    def cond(carry: tuple[jax.Array, jax.Array]) -> jax.Array:
        return carry[1]

    def body(carry: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        dist, _ = carry
        new = relax(dist)
        return new, jnp.any(new != dist)

    start = jnp.where(graph.finish, 1, INF).astype(jnp.int32)
    dist, _ = jax.lax.while_loop(cond, body, (start, jnp.asarray(True)))
    return dist


def current_node(state: State, params: RearrangeParams) -> jax.Array:
    n = params.height * params.width
    holding = (state.held >= 0).astype(jnp.int32)
    return (holding * n + state.agent_pos) * 4 + state.agent_dir


def oracle_action(env: Rearrange, state: State, params: RearrangeParams) -> jax.Array:
    """The oracle's action for one state (vmap it for a batch): an int32 in [0, 6)."""
    graph = planning_graph(env, state, params)
    dist = distances_to_finish(graph)
    s = current_node(state, params)
    pick_next = graph.pick[s]
    finishing = graph.finish[s]
    via_pick = jnp.where(pick_next >= 0, dist[jnp.maximum(pick_next, 0)], INF)
    q = jnp.full((6,), INF, jnp.int32)  # NOOP and unusable actions stay at INF
    q = q.at[FORWARD].set(dist[graph.forward[s]])
    q = q.at[LEFT].set(dist[graph.left[s]])
    q = q.at[RIGHT].set(dist[graph.right[s]])
    q = q.at[PICK].set(via_pick)
    finish_action = PICK if env.task == "pick" else PLACE
    q = (
        jnp.where(finishing, INF, q)
        .at[finish_action]
        .set(jnp.where(finishing, 0, q[finish_action]))
    )
    return jnp.argmin(q).astype(jnp.int32)


def optimal_steps(env: Rearrange, state: State, params: RearrangeParams) -> jax.Array:
    """Fewest env steps from `state` to success for the current target (exact for K = 1)."""
    dist = distances_to_finish(planning_graph(env, state, params))
    return dist[current_node(state, params)]
