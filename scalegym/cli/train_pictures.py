"""`scalegym train`'s pictures in its run directory: the learning-curve plot a train cell draws
and the rollout GIF of the trained policy (`scalegym.suites.pictures`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scalegym.suites.pictures import rollout_gif

if TYPE_CHECKING:
    from scalegym.agents.result import TrainResult
    from scalegym.agents.train import TrainRequest

CURVE_PLOT = "plots/learning-curve.png"  # in a `scalegym train` run directory
ROLLOUT_GIF = "rollout.gif"


def train_pictures(
    run_dir: Path, request: TrainRequest, result: TrainResult, *, to_stderr: bool = False
) -> dict[str, Any]:
    """`scalegym train`'s pictures in its run directory: the learning-curve plot a train cell
    draws (CURVE_PLOT) and the rollout GIF (ROLLOUT_GIF). Prints where they are (to stderr
    when stdout carries JSON); returns result.json's entry {"pictures": {...}} (paths relative
    to the run directory; the GIF's is absent, with its reason, when none was drawn)."""
    stream = sys.stderr if to_stderr else sys.stdout
    pictures: dict[str, Any] = {}
    if result.curve and write_curve_plot(Path(run_dir) / CURVE_PLOT, result):
        pictures["plot"] = CURVE_PLOT
        print(f"learning curve: {Path(run_dir) / CURVE_PLOT}", file=stream)
    rollout = rollout_gif(request, Path(run_dir), ROLLOUT_GIF)
    if "gif" in rollout:
        pictures["rollout_gif"] = ROLLOUT_GIF
        print(f"rollout of the trained policy: {Path(run_dir) / ROLLOUT_GIF}", file=stream)
    else:
        pictures["rollout"] = rollout
        why = rollout.get("skipped") or rollout.get("error")
        print(f"no rollout GIF: {why}", file=stream)
    return {"pictures": pictures}


def write_curve_plot(path: Path, result: TrainResult) -> bool:
    """The train cell's learning-curve figure of `result`, as a PNG at `path`; False if none."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    from scalegym.suites.cells.train import curve_figure

    fig = curve_figure(plt, "scalegym train", result.env, result.curve)
    if fig is None:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return True
