"""Animated GIFs from frames [T, H, W, 3] uint8, with Pillow."""

from __future__ import annotations

from pathlib import Path

import numpy as np

PALETTE_COLOURS = 128  # drawings of few flat colours and antialiased text: plenty


def write_gif(path: str | Path, frames: np.ndarray, fps: float) -> Path:
    """Write `frames` [T, H, W, 3] uint8 as a GIF that loops, `fps` frames per second; the path.

    All frames share one palette (up to PALETTE_COLOURS colours, from every frame), so each
    frame after the first stores only what changed. Pillow merges a frame equal to the one
    before into it (one frame shown twice as long); rollout frames always differ by their caption.
    """
    from PIL import Image

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not len(frames):
        raise ValueError(
            f"write_gif: frames must be [T, H, W, 3] uint8 with T >= 1, got {frames.shape} "
            f"{frames.dtype}"
        )
    if not fps > 0:
        raise ValueError(f"write_gif: fps must be > 0, got {fps!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stacked = Image.fromarray(frames.reshape(-1, *frames.shape[2:]))  # [T·H, W, 3]
    palette = stacked.quantize(colors=PALETTE_COLOURS, dither=Image.Dither.NONE)
    images = [
        Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in frames
    ]
    images[0].save(
        path,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=round(1000 / fps),
        loop=0,
        disposal=1,
    )
    return path
