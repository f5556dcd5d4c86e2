"""Rearrange rendering on the host: an ASCII grid for people and tests, and an RGB array."""

from __future__ import annotations

import numpy as np

from scalegym.envs.rearrange.types import RearrangeParams, RearrangeState

AGENT_CHARS = "^>v<"  # facing north, east, south, west
TILE = 8
COLOURS = {
    "floor": (235, 235, 235),
    "wall": (60, 60, 60),
    "goal": (120, 200, 120),
    "object": (220, 120, 40),
    "object_on_goal": (40, 150, 40),
    "agent": (40, 80, 220),
}


def _layout(state: RearrangeState, params: RearrangeParams) -> tuple[np.ndarray, dict]:
    layout = int(state.layout)
    walls = np.asarray(params.pool.walls[layout]).reshape(params.height, params.width)
    fields = {
        "agent": int(state.agent_pos),
        "facing": int(state.agent_dir),
        "objects": np.asarray(state.obj_pos).tolist(),
        "goals": np.asarray(state.goal_pos).tolist(),
        "held": int(state.held),
    }
    return walls, fields


def render_text(state: RearrangeState, params: RearrangeParams) -> str:
    """One unbatched state as text: `#` wall, `.` floor, `a`,`b`.. objects, `A`,`B`.. their
    goals, `*` an object on its own goal, `^>v<` the agent; then a line with the held object."""
    walls, f = _layout(state, params)
    grid = np.where(walls, "#", ".").astype("<U1")
    flat = grid.reshape(-1)
    for k, goal in enumerate(f["goals"]):
        flat[goal] = chr(ord("A") + k)
    for k, cell in enumerate(f["objects"]):
        if k == f["held"]:
            continue
        flat[cell] = "*" if cell == f["goals"][k] else chr(ord("a") + k)
    flat[f["agent"]] = AGENT_CHARS[f["facing"]]
    held = chr(ord("a") + f["held"]) if f["held"] >= 0 else "-"
    rows = ["".join(row) for row in grid]
    return "\n".join([*rows, f"held: {held}  t: {int(state.time)}"])


def render_rgb(state: RearrangeState, params: RearrangeParams) -> np.ndarray:
    """One unbatched state as a uint8 image [H·8, W·8, 3]."""
    walls, f = _layout(state, params)
    h, w = walls.shape
    cells = np.zeros((h * w, 3), np.uint8)
    cells[:] = COLOURS["floor"]
    cells[walls.reshape(-1)] = COLOURS["wall"]
    for goal in f["goals"]:
        cells[goal] = COLOURS["goal"]
    for k, cell in enumerate(f["objects"]):
        if k != f["held"]:
            cells[cell] = COLOURS["object_on_goal" if cell == f["goals"][k] else "object"]
    image = np.repeat(np.repeat(cells.reshape(h, w, 3), TILE, 0), TILE, 1)
    r, c = divmod(f["agent"], w)
    tile = image[r * TILE : (r + 1) * TILE, c * TILE : (c + 1) * TILE]
    tile[2:-2, 2:-2] = COLOURS["agent"]
    # A bar on the facing side shows the heading.
    side = {
        0: (slice(0, 2), slice(2, -2)),
        1: (slice(2, -2), slice(-2, None)),
        2: (slice(-2, None), slice(2, -2)),
        3: (slice(2, -2), slice(0, 2)),
    }[f["facing"]]
    tile[side] = COLOURS["agent"]
    if f["held"] >= 0:
        tile[3:-3, 3:-3] = COLOURS["object"]
    return image
