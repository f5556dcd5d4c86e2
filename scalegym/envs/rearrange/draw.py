"""Rearrange rollouts as pictures: `render.render_rgb` of each frame's state, scaled up."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from scalegym.envs.rearrange.render import TILE, render_rgb
from scalegym.envs.rearrange.types import ACTIONS, RearrangeParams

SCENE_PX = 200  # about this many pixels across a grid
FPS = 4
# The caption's key to `render.COLOURS`, two lines.
LEGEND = "blue: agent (orange inside: holding)\norange: object, green: goal, dark: placed"


def rearrange_scenes(states: Any, params: RearrangeParams) -> np.ndarray:
    """Each state of `states` (stacked [T, ...], host arrays) as an image [T, h, w, 3] uint8,
    cells scaled to about SCENE_PX across (nearest neighbour, so the tiles stay sharp)."""
    length = int(np.shape(states.time)[0])
    scale = max(1, SCENE_PX // (TILE * max(params.height, params.width)))
    scenes = []
    for t in range(length):
        image = render_rgb(jax.tree.map(lambda x, t=t: x[t], states), params)
        scenes.append(np.repeat(np.repeat(image, scale, 0), scale, 1))
    return np.stack(scenes)


def action_name(action: int) -> str:
    return ACTIONS[action]
