"""Training inside a suite cell: TensorBoard curves, progress, resume from its checkpoint."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from scalegym.agents.result import TrainResult
from scalegym.suites.tensorboard import TensorBoardLogger


def train_in_cell(cell: Any, context: Any, *, share: float = 1.0) -> tuple[TrainResult, bool]:
    """Train `cell.agent` over `cell.seeds` seeds; (the result, whether it resumed).

    A cell killed mid-way is continued from its checkpoint when resuming; otherwise it starts
    over, and the curves of the lost attempt are removed so TensorBoard shows one run. Training
    fills the first `share` of the cell's progress bar.
    """
    from scalegym.agents.train import train_agent

    resume = context.resuming and has_files(context.checkpoint_dir)
    if not resume:
        clear(context.tb_dir)
        clear(context.checkpoint_dir)
    with TensorBoardLogger(context.tb_dir) as logger:

        def log(env_steps: int, scalars: dict[str, float]) -> None:
            logger.log_scalars(env_steps, scalars)
            context.advance(share * min(1.0, env_steps / cell.steps))

        result = train_agent(
            cell.env,
            cell.agent,
            total_steps=cell.steps,
            num_seeds=cell.seeds,
            seed=cell.seed,
            env_overrides=dict(cell.env_params),
            agent_overrides=dict(cell.agent_params),
            devices=context.devices,
            log=log,
            checkpoint_dir=context.checkpoint_dir,
            resume=resume,
            progress=False,  # the runner's own bar is live; rich allows one live display
        )
    return result, resume


def clear(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)


def has_files(path: Path) -> bool:
    return path.is_dir() and any(p.is_file() for p in path.rglob("*"))
