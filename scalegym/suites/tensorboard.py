"""TensorBoard event files without TensorFlow or PyTorch: a scalar writer, a reader, a server."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np


class TensorBoardLogger:
    """Scalars against env steps in one log directory (`tb/<cell>/` of a run)."""

    def __init__(self, log_dir: str | Path) -> None:
        self.log_dir = Path(log_dir)
        self._writer: Any = None  # made with the first scalar: a run that fails early leaves none

    def _open(self) -> Any:
        if self._writer is None:
            from tensorboard.summary import Writer  # numpy-only: no TensorFlow or PyTorch needed

            self.log_dir.mkdir(parents=True, exist_ok=True)
            self._writer = Writer(str(self.log_dir))
        return self._writer

    def log_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
        """Write each finite number in `scalars` at `step`; anything else (None for an env
        without success, per-seed lists) is skipped."""
        points = [(tag, _as_number(value)) for tag, value in scalars.items()]
        points = [(tag, n) for tag, n in points if n is not None and math.isfinite(n)]
        if not points:
            return
        writer = self._open()
        for tag, number in points:
            writer.add_scalar(tag, number, int(step))
        # Logging happens once per jitted chunk, so flushing each time is cheap and lets a
        # running TensorBoard (and a killed run's directory) show every point written so far.
        writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def __enter__(self) -> TensorBoardLogger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _as_number(value: Any) -> float | None:
    """A float for a Python, numpy or jax scalar; None for anything else (None, lists, text)."""
    if value is None or isinstance(value, bool | str | bytes) or np.ndim(value) != 0:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def read_scalars(log_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in the event files of `log_dir` (not its subfolders), by tag, sorted by step."""
    from tensorboard.backend.event_processing import event_accumulator as ea
    from tensorboard.util import tensor_util

    # Size guidance 0 keeps every event; the defaults subsample (tensors keep only 10).
    keep_all = {ea.SCALARS: 0, ea.TENSORS: 0}
    accumulator = ea.EventAccumulator(str(log_dir), size_guidance=keep_all)
    accumulator.Reload()
    tags = accumulator.Tags()
    found: dict[str, list[tuple[int, float]]] = {}
    # tensorboard's Writer stores scalars as tensor summaries; other writers as simple values.
    for tag in tags.get(ea.SCALARS, []):
        found[tag] = [(int(e.step), float(e.value)) for e in accumulator.Scalars(tag)]
    for tag in tags.get(ea.TENSORS, []):
        events = accumulator.Tensors(tag)
        values = [(int(e.step), tensor_util.make_ndarray(e.tensor_proto)) for e in events]
        found[tag] = [(step, float(v)) for step, v in values if v.size == 1]
    return {tag: sorted(points, key=lambda p: p[0]) for tag, points in found.items() if points}


def launch_tensorboard(
    log_dir: str | Path, host: str = "127.0.0.1", port: int | None = None
) -> str:
    """Start TensorBoard on `log_dir` in background threads of this process; returns its URL.

    `port=None` lets TensorBoard take the first free port from 6006. The Python loader
    (`load_fast=false`) keeps everything in this process, so ending it leaves no server behind.
    """
    from tensorboard import program

    argv = [None, "--logdir", str(log_dir), "--host", host, "--load_fast", "false"]
    if port is not None:
        argv += ["--port", str(port)]
    board = program.TensorBoard()
    board.configure(argv=argv)
    return str(board.launch())
