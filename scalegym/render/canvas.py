"""What the families' drawings share: the `Trajectory` they draw, captions and step tables.

Pictures are NumPy uint8 arrays [H, W, 3]; text is drawn with Pillow's default font, ASCII only
(the font has no Greek). A table keeps one size over all frames, so the frames stack.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

BACKGROUND = (255, 255, 255)
INK = (30, 30, 30)
FAINT = (120, 120, 120)
HIGHLIGHT = (255, 236, 170)  # the table row of the frame shown
LINE_PX = 14  # height of one line of text
PAD = 4


@dataclass(frozen=True)
class Trajectory:
    """One env played for T frames by a policy; frame t shows `states[t]` (host arrays).

    An episode shows its first state, one frame after each action, and its last state; the frame
    after its last state opens the next episode.
    """

    states: Any  # [T, ...] the env's own states (a pytree of NumPy arrays)
    obs: Any  # [T, ...] the observation at each frame
    actions: np.ndarray  # [T] int32 the action taken from the frame; -1 at an episode's last
    rewards: np.ndarray  # [T] float32 the reward that action earned (0 where none)
    starts: np.ndarray  # [T] bool the frame opens an episode
    ends: np.ndarray  # [T] bool the frame is an episode's last state (terminated or truncated)
    episodes: np.ndarray  # [T] int32 the episode the frame belongs to, from 0

    @property
    def length(self) -> int:
        return int(self.actions.shape[0])

    def state_at(self, t: int) -> Any:
        return jax.tree.map(lambda x: x[t], self.states)

    def obs_at(self, t: int) -> Any:
        return jax.tree.map(lambda x: x[t], self.obs)

    def episode_start(self, t: int) -> int:
        """The frame that opened frame t's episode."""
        return int(np.flatnonzero(self.starts[: t + 1])[-1])

    def returns(self) -> np.ndarray:
        """[T] float: the return of the frame's episode up to that frame (rewards before it)."""
        out = np.zeros(self.length)
        total = 0.0
        for t in range(self.length):
            total = 0.0 if self.starts[t] else total
            out[t] = total
            total += float(self.rewards[t])
        return out

    def finished_returns(self) -> list[float]:
        """The return of every episode whose last state is in the rollout."""
        returns = self.returns()
        return [float(returns[t]) for t in np.flatnonzero(self.ends)]


@functools.cache
def font() -> Any:
    from PIL import ImageFont

    return ImageFont.load_default(size=11)


def text_width(text: str) -> int:
    left, _, right, _ = font().getbbox(text)
    return int(right - left)


def caption(lines: list[str], width: int) -> np.ndarray:
    """Lines of text on white, [len(lines) · LINE_PX + 2·PAD, width, 3] uint8."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, len(lines) * LINE_PX + 2 * PAD), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((PAD, PAD + i * LINE_PX), line, fill=INK, font=font())
    return np.asarray(image)


def with_caption(scene: np.ndarray, lines: list[str], width: int | None = None) -> np.ndarray:
    """`scene` [h, w, 3] above its caption, both padded with white to `width` (at least w)."""
    width = max(scene.shape[1], width or 0)
    top = np.full((scene.shape[0], width, 3), BACKGROUND, np.uint8)
    left = (width - scene.shape[1]) // 2
    top[:, left : left + scene.shape[1]] = scene
    return np.concatenate([top, caption(lines, width)])


def caption_width(lines_per_frame: list[list[str]], minimum: int) -> int:
    """A width every frame's caption fits in."""
    widest = max((text_width(line) for lines in lines_per_frame for line in lines), default=0)
    return max(minimum, widest + 2 * PAD)


def table_scenes(
    header: list[str], rows_per_frame: list[list[list[str]]], visible: int
) -> np.ndarray:
    """One table per frame [T, H, W, 3]: its last `visible` rows, the last one highlighted.

    Column widths fit every frame's cells, and every table has `visible` row slots, so all
    frames have one size.
    """
    from PIL import Image, ImageDraw

    cells = [header, *(row for rows in rows_per_frame for row in rows)]
    widths = [max(text_width(row[c]) for row in cells) + 3 * PAD for c in range(len(header))]
    width, height = sum(widths) + PAD, (visible + 1) * LINE_PX + 2 * PAD
    starts = np.cumsum([PAD, *widths[:-1]])
    frames = []
    for rows in rows_per_frame:
        image = Image.new("RGB", (width, height), BACKGROUND)
        draw = ImageDraw.Draw(image)
        for x, text in zip(starts, header, strict=True):
            draw.text((int(x), PAD), text, fill=FAINT, font=font())
        shown = rows[-visible:]
        for i, row in enumerate(shown):
            y = PAD + (i + 1) * LINE_PX
            if i == len(shown) - 1:
                draw.rectangle((0, y - 1, width, y + LINE_PX - 2), fill=HIGHLIGHT)
            for x, text in zip(starts, row, strict=True):
                draw.text((int(x), y), text, fill=INK, font=font())
        frames.append(np.asarray(image))
    return np.stack(frames)


def signed(value: float) -> str:
    """A reward as the tables write it: `+1.00`, `-0.01`, `0`."""
    return "0" if value == 0 else f"{value:+.2f}"
