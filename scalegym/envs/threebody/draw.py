"""ThreeBody rollouts as pictures: the three bodies and their orbits since the episode began."""

from __future__ import annotations

import numpy as np

from scalegym.envs.threebody import rules

SCENE_PX = 200
FPS = 8
BODY_COLOURS = ((214, 39, 40), (31, 119, 180), (44, 160, 44))
AXES = (225, 225, 225)


def orbit_scenes(positions: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Frames [T, SCENE_PX, SCENE_PX, 3] uint8 of positions [T, 3, 2] (centre-of-mass frame):
    each body as a dot, its trail since the frame's episode began as a line of its colour.

    One scale over the whole rollout (the widest position plus a margin), so the view never
    jumps; the half-width in length units is written in the top-left corner.
    """
    from PIL import Image, ImageDraw

    from scalegym.render.canvas import FAINT, font

    positions = np.asarray(positions, np.float64)
    finite = np.isfinite(positions)
    half = 1.1 * float(np.max(np.abs(positions[finite]), initial=1.0))
    centre = SCENE_PX / 2

    def pixel(point: np.ndarray) -> tuple[float, float]:
        x, y = point
        return centre + centre * x / half, centre - centre * y / half  # y up

    frames = []
    start = 0
    for t in range(len(positions)):
        start = t if starts[t] else start
        image = Image.new("RGB", (SCENE_PX, SCENE_PX), (255, 255, 255))
        draw = ImageDraw.Draw(image)
        draw.line((0, centre, SCENE_PX, centre), fill=AXES)
        draw.line((centre, 0, centre, SCENE_PX), fill=AXES)
        draw.text((4, 2), f"+/-{half:.3g} au", fill=FAINT, font=font())
        for body, colour in enumerate(BODY_COLOURS):
            trail = [pixel(p) for p in positions[start : t + 1, body] if np.all(np.isfinite(p))]
            if len(trail) >= 2:
                draw.line(trail, fill=colour, width=1)
            if trail:
                x, y = trail[-1]
                draw.ellipse((x - 4, y - 4, x + 4, y + 4), fill=colour)
        frames.append(np.asarray(image))
    return np.stack(frames)


def energy_line(delta_e: float) -> str:
    """The frame's energy error as a caption line, ASCII: `log10|dE| -8.1`."""
    error = abs(float(delta_e))
    return "log10|dE| " + (f"{np.log10(error):.1f}" if error > 0 else "-inf")


def action_name(action: int, actions: tuple[float, ...] = rules.MU_ACTIONS) -> str:
    """The step parameter an action picks (μ, or Aarseth's η), ASCII: `mu 1e-02`."""
    return f"{'eta' if actions != rules.MU_ACTIONS else 'mu'} {actions[action]:.0e}"
