"""What a training run shows people: a GIF of its trained policy (every train cell, and
`scalegym train`: `scalegym.cli.train_pictures` adds the learning-curve plot there).

The GIF is the first seed's policy on one fresh env, actions sampled as evaluation samples them
(`scalegym.agents.rollout`); report.md shows it under the training table.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scalegym.agents.train import TrainRequest

# Drawing a picture may fail where training did not; the run keeps its numbers and says why.
DRAWING_ERRORS = (ValueError, TypeError, RuntimeError, OSError, NotImplementedError)


def rollout_gif(request: TrainRequest, run_dir: Path, relative: str) -> dict[str, Any]:
    """Write the finished run's rollout GIF at `run_dir / relative`; what a record keeps of it:
    {"gif": relative, "frames", "width", "height", "fps", "seed", "episodes_ended",
    "mean_return", "bytes"}, or {"skipped": why} (a host env, no checkpoint), or {"error": ...}."""
    from scalegym.agents.rollout import can_draw, write_policy_gif

    reason = can_draw(request)
    if reason is not None:
        return {"skipped": reason}
    try:
        drawn = write_policy_gif(request, Path(run_dir) / relative)
    except DRAWING_ERRORS as err:
        return {"error": f"{type(err).__name__}: {err}"}
    return {"gif": relative, **drawn}


def rollout_lines(records: list[dict[str, Any]]) -> list[str]:
    """report.md's rollouts under the training table: each train cell's GIF as an image (paths
    relative to the run directory, where report.md is). Records from before GIFs add nothing."""
    drawn = [r for r in records if r["result"].get("rollout")]
    if not drawn:
        return []
    lines = [
        "",
        "Rollouts: the first seed's trained policy on one fresh env, actions sampled as in "
        "evaluation; an episode's first state, a frame after each action, its last state.",
    ]
    for record in drawn:
        rollout, cell = record["result"]["rollout"], record["cell"]
        if "gif" not in rollout:
            why = rollout.get("skipped") or rollout.get("error")
            lines += ["", f"- {cell}: no rollout ({why})"]
            continue
        ended = rollout["episodes_ended"]
        summary = f"{rollout['frames']} frames, {ended} episode{'s' * (ended != 1)} ended"
        if rollout.get("mean_return") is not None:
            summary += f", mean return {rollout['mean_return']:.2f}"
        lines += ["", f"{cell} ({summary}):", "", f"![{cell}: rollout]({rollout['gif']})"]
    return lines
