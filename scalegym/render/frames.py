"""A rollout as frames [T, H, W, 3] uint8: the env family's own drawing above a caption.

Rearrange draws its grid (`envs/rearrange/draw.py`), ThreeBody the orbits
(`envs/threebody/draw.py`), the POMDP families a table of the episode so far
(`envs/pomdp/draw.py`); any other env gets the step table: observation, action, reward. The
caption says where the frame is (episode, step), the action taken from it and its reward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

from scalegym.render.canvas import Trajectory, caption_width, signed, table_scenes, with_caption

STRIP_ROWS = 8  # rows of the step table for envs without a drawing of their own
STRIP_FPS = 3
MIN_WIDTH = 200


@dataclass(frozen=True)
class Drawing:
    """A family's pictures of a rollout: scenes [T, h, w, 3], and how to name its actions."""

    scenes: np.ndarray
    fps: float
    action_name: Any  # int -> str
    extra: list[str] | None = None  # more caption lines per frame ("\n" between), or None


def rollout_frames(env: Any, params: Any, trajectory: Trajectory) -> np.ndarray:
    """The frames [T, H, W, 3] uint8 of `trajectory`, played on `env` with `params`."""
    drawing = family_drawing(env, params, trajectory)
    lines = [caption_lines(trajectory, t, drawing) for t in range(trajectory.length)]
    width = caption_width(lines, max(MIN_WIDTH, drawing.scenes.shape[2]))
    return np.stack(
        [with_caption(s, ls, width) for s, ls in zip(drawing.scenes, lines, strict=True)]
    )


def frame_rate(env: Any) -> float:
    """Frames per second that suit the family (a table is read slower than a grid is watched)."""
    from scalegym.envs.pomdp import draw as pomdp
    from scalegym.envs.pomdp.finite_pomdp import FinitePOMDP
    from scalegym.envs.rearrange import draw as rearrange
    from scalegym.envs.rearrange.env import Rearrange
    from scalegym.envs.threebody import draw as threebody
    from scalegym.envs.threebody.env import ThreeBody

    for family, module in ((Rearrange, rearrange), (ThreeBody, threebody), (FinitePOMDP, pomdp)):
        if isinstance(env, family):
            return module.FPS
    return STRIP_FPS


def family_drawing(env: Any, params: Any, trajectory: Trajectory) -> Drawing:
    from scalegym.envs.pomdp.finite_pomdp import FinitePOMDP
    from scalegym.envs.rearrange.env import Rearrange
    from scalegym.envs.threebody.env import ThreeBody

    states = trajectory.states
    if isinstance(env, Rearrange):
        from scalegym.envs.rearrange import draw

        legend = [draw.LEGEND] * trajectory.length
        return Drawing(draw.rearrange_scenes(states, params), draw.FPS, draw.action_name, legend)
    if isinstance(env, ThreeBody):
        from scalegym.envs.threebody import draw

        scenes = draw.orbit_scenes(states.pos, trajectory.starts)
        energy = [draw.energy_line(d) for d in np.asarray(states.delta_e)]
        return Drawing(scenes, draw.FPS, lambda a: draw.action_name(a, env.actions), energy)
    if isinstance(env, FinitePOMDP):
        from scalegym.envs.pomdp import draw

        scenes = draw.pomdp_scenes(
            states.symbol,
            states.node,
            trajectory.actions,
            trajectory.rewards,
            trajectory.starts,
            int(params.max_steps_in_episode),
        )
        return Drawing(scenes, draw.FPS, lambda a: f"a{a}")
    return Drawing(strip_scenes(trajectory), STRIP_FPS, lambda a: f"a{a}")


def caption_lines(trajectory: Trajectory, t: int, drawing: Drawing) -> list[str]:
    """Episode and step; the action taken from the frame and its reward (or the episode's end
    and its return); the family's extra line."""
    step = t - trajectory.episode_start(t)
    so_far = trajectory.returns()[t]
    lines = [f"episode {int(trajectory.episodes[t]) + 1}, step {step}"]
    action = int(trajectory.actions[t])
    if action < 0:
        lines.append(f"episode over, return {so_far:.2f}")
    else:
        reward = signed(float(trajectory.rewards[t]))
        lines.append(f"action {drawing.action_name(action)}, reward {reward}")
    if drawing.extra is not None:
        lines += drawing.extra[t].split("\n")
    return lines


def strip_scenes(trajectory: Trajectory) -> np.ndarray:
    """The step table of an env without a drawing: per step its observation, action, reward."""
    rows_per_frame: list[list[list[str]]] = []
    rows: list[list[str]] = []
    for t in range(trajectory.length):
        rows = [] if trajectory.starts[t] else rows
        action = int(trajectory.actions[t])
        row = [
            str(len(rows)),
            obs_text(trajectory.obs_at(t)),
            f"a{action}" if action >= 0 else "(end)",
            signed(float(trajectory.rewards[t])) if action >= 0 else "",
        ]
        rows = [*rows, row]
        rows_per_frame.append(rows)
    return table_scenes(["step", "observation", "action", "reward"], rows_per_frame, STRIP_ROWS)


def obs_text(obs: Any) -> str:
    """An observation in a table cell: up to 4 numbers, else its size."""
    values = np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in jax.tree.leaves(obs)])
    if values.size <= 4:
        return " ".join(f"{v:.2f}" for v in values)
    return f"({values.size} numbers)"
