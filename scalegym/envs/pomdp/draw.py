"""POMDP rollouts as pictures: a table of the episode so far, one row per step — the symbol
observed, the hidden node (what the agent never sees), the action and its reward."""

from __future__ import annotations

import numpy as np

FPS = 2
HEADER = ["step", "observed", "hidden node", "action", "reward"]


def pomdp_scenes(
    symbols: np.ndarray,
    nodes: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    starts: np.ndarray,
    horizon: int,
) -> np.ndarray:
    """Frames [T, H, W, 3] uint8 from per-frame [T] arrays: frame t shows the rows of its
    episode up to t, its own row highlighted (H + 1 row slots: the H actions and the end)."""
    from scalegym.render.canvas import signed, table_scenes

    rows_per_frame: list[list[list[str]]] = []
    rows: list[list[str]] = []
    for t in range(len(symbols)):
        rows = [] if starts[t] else rows
        acted = int(actions[t]) >= 0
        rows = [
            *rows,
            [
                str(len(rows)),
                f"o{int(symbols[t])}",
                str(int(nodes[t])),
                f"a{int(actions[t])}" if acted else "(end)",
                signed(float(rewards[t])) if acted else "",
            ],
        ]
        rows_per_frame.append(rows)
    return table_scenes(HEADER, rows_per_frame, visible=horizon + 1)
