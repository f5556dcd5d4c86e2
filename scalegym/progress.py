"""Progress bars on stderr (stdout may carry JSON), shared by the agents, the suites and the CLI."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any

__all__ = [
    "CellBar",
    "TrainingBar",
    "cell_progress",
    "count_progress",
    "progress_enabled",
    "training_bar",
]

# The scalars a training bar shows after the bar, in this order, when a chunk reports them.
BAR_SCALARS = ("train/return", "train/success", "eval/return", "eval/success", "perf/sps")
# Shown until a bar's first update: the first chunk is compiled before it runs (seconds, with
# the bar still at 0), and a bar that sits still unexplained looks like a hang.
COMPILING = "compiling…"


def progress_enabled(flag: bool | None) -> bool:
    """`--progress`/`--no-progress` as given, else on when stderr is a terminal."""
    return sys.stderr.isatty() if flag is None else flag


class TrainingBar:
    """One bar over a training run's env steps, with its latest scalars beside it."""

    def __init__(self, description: str, total: int) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[info]}"),
            transient=False,
            console=Console(stderr=True),
        )
        self.progress.start()
        self.task = self.progress.add_task(description, total=total, info=COMPILING)

    def update(self, steps: int, scalars: Mapping[str, float]) -> None:
        info = " ".join(
            f"{k.replace('/', '.')}={scalars[k]:.3g}" for k in BAR_SCALARS if k in scalars
        )
        self.progress.update(self.task, completed=steps, info=info)

    def close(self) -> None:
        self.progress.stop()


@contextlib.contextmanager
def training_bar(enabled: bool, description: str, total: int) -> Iterator[TrainingBar | None]:
    """A `TrainingBar` that is closed however the run ends, or None when progress is off."""
    if not enabled:
        yield None
        return
    bar = TrainingBar(description, total)
    try:
        yield bar
    finally:
        bar.close()


class CellBar:
    """A suite run's bars: one over cells and one for the cell in flight; summary lines above."""

    def __init__(self, progress: Any, console: Any, total: int, completed: int) -> None:
        self._progress, self._console = progress, console
        self._cells = None
        if progress is not None:
            self._cells = progress.add_task("cells", total=total, completed=completed)
        self._current: Any = None
        self._name = ""

    def start(self, name: str) -> None:
        """The cell in flight, labelled as compiling until it first reports progress."""
        self._name = name
        if self._progress is not None:
            self._current = self._progress.add_task(f"{name} ({COMPILING})", total=1.0)

    def update(self, fraction: float) -> None:
        if self._progress is not None and self._current is not None:
            self._progress.update(self._current, completed=fraction, description=self._name)

    def finish(self, line: str) -> None:
        self._console.print(line, markup=False, highlight=False, soft_wrap=True)
        if self._progress is not None:
            if self._current is not None:
                self._progress.remove_task(self._current)
            self._progress.advance(self._cells)


@contextlib.contextmanager
def cell_progress(total: int, completed: int, enabled: bool) -> Iterator[CellBar]:
    """Bars over a suite's cells; with progress off, only each finished cell's summary line."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TimeElapsedColumn

    console = Console(stderr=True)
    if not enabled:
        yield CellBar(None, console, total, completed)
        return
    columns = (*Progress.get_default_columns()[:1], BarColumn(), TaskProgressColumn())
    with Progress(*columns, TimeElapsedColumn(), console=console, transient=True) as progress:
        yield CellBar(progress, progress.console, total, completed)


@contextlib.contextmanager
def count_progress(
    total: int, description: str, enabled: bool | None
) -> Iterator[Callable[[], None]]:
    """Yield `advance()` over `total` items; `enabled=None` means when stderr is a terminal."""
    if not progress_enabled(enabled):
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    columns = (*Progress.get_default_columns()[:1], BarColumn(), MofNCompleteColumn())
    with Progress(
        *columns, TimeElapsedColumn(), console=Console(stderr=True), transient=True
    ) as bar:
        task = bar.add_task(description, total=total)
        yield lambda: bar.advance(task)
