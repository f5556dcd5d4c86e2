"""Cells as Ray tasks: `scalegym run SUITE --executor ray [--address ADDR]`.

Each cell runs as one Ray task in a worker's own scratch directory; the task returns the cell's
record and its files (tb/<cell>/, checkpoints/<cell>/), and the driver writes both into the run
directory exactly as the local executor would, so results.jsonl, the report and `--resume` do not
care which executor ran a cell. Nothing needs a shared filesystem: a resumed cell's checkpoint and
a search cell's `checkpoint = "cell:NAME"` travel to the worker with the task.

Cells run as soon as the cells they read (a search cell's prior) have finished; each asks Ray for
one CPU, or one GPU when the cluster has GPUs. A worker that dies (killed, out of memory) fails
its cell only: the record says what Ray reported, and the other cells go on.
"""

from __future__ import annotations

import importlib
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from scalegym.suites.clock import utc_now
from scalegym.suites.schema import Cell

RunCell = Callable[..., dict[str, Any]]  # the runner's run_cell(cell, run_dir, *, resuming, ...)
TASK_PREFIX = "scalegym-cell:"  # a running cell's worker shows as "ray::scalegym-cell:<name>"
Files = dict[str, bytes]  # path relative to the run directory -> contents


def cell_files(cell: Cell) -> list[str]:
    """The run-directory folders a cell writes: what comes back from its task."""
    return [f"tb/{cell.name}", f"checkpoints/{cell.name}"]


def pack(root: Path, folders: Sequence[str]) -> Files:
    """Every file under `root/folder` for each folder, keyed by its path relative to `root`."""
    files: Files = {}
    for folder in folders:
        base = root / folder
        if base.is_dir():
            for path in sorted(base.rglob("*")):
                if path.is_file():
                    files[path.relative_to(root).as_posix()] = path.read_bytes()
    return files


def unpack(root: Path, files: Files, folders: Sequence[str] = ()) -> None:
    """Write `files` under `root`, first emptying `folders` so no stale file stays beside them."""
    for folder in folders:
        shutil.rmtree(root / folder, ignore_errors=True)
    for relative, data in files.items():
        path = root / relative
        if root.resolve() not in path.resolve().parents:
            raise ValueError(f"{relative}: a cell's file must stay inside the run directory")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def run_cell_task(
    run_cell: RunCell,
    cell: Cell,
    files: Files,
    *,
    resuming: bool,
    devices: int | None,
    imports: Sequence[str],
    sys_path: Sequence[str],
) -> tuple[dict[str, Any], Files]:
    """The body of one Ray task: `run_cell` (the runner's) on `cell` in a scratch run directory
    holding `files`."""
    for entry in sys_path:  # where the driver found the user's --import modules
        if entry not in sys.path:
            sys.path.append(entry)
    for module in imports:  # user envs register themselves on import, as in the driver
        importlib.import_module(module)
    with tempfile.TemporaryDirectory(prefix="scalegym-cell-") as scratch:
        root = Path(scratch)
        unpack(root, files)
        record = run_cell(cell, root, resuming=resuming, advance=_ignore, devices=devices)
        return record, pack(root, cell_files(cell))


def lost_cell_record(cell: Cell, error: BaseException, started: str, wall_s: float) -> dict:
    """The record of a cell whose task never returned (its worker died, or Ray failed)."""
    return {
        "cell": cell.name,
        "kind": cell.kind,
        "env": cell.env,
        "env_params": dict(cell.env_params),
        "status": "failed",
        "error": f"{type(error).__name__}: {error}",
        "traceback": "".join(traceback.format_exception_only(error))[-4000:],
        "result": {},
        "started": started,
        "finished": utc_now(),
        "wall_s": wall_s,
    }


def run_cells_on_ray(
    run_cell: RunCell,
    cells: Sequence[Cell],
    run_dir: Path,
    *,
    resuming: bool,
    devices: int | None,
    address: str | None,
    imports: Sequence[str],
    on_start: Callable[[Cell], None],
    on_finish: Callable[[dict[str, Any]], None],
) -> None:
    """Run `cells` as Ray tasks, each by `run_cell`; `on_finish(record)` as each ends, in the
    order they end.

    The driver writes each finished cell's files into `run_dir` before `on_finish` sees it, so a
    cell reading another's checkpoint is sent only after that one is on disk.
    """
    import ray

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    resources = {"num_gpus": 1} if ray.cluster_resources().get("GPU", 0) >= 1 else {"num_cpus": 1}
    task = ray.remote(max_retries=0)(run_cell_task)
    waiting = list(cells)
    unfinished = {cell.name for cell in cells}
    running: dict[Any, tuple[Cell, str, float]] = {}
    sys_path = [entry for entry in sys.path if entry and Path(entry).is_dir()]
    try:
        while waiting or running:
            for cell in [c for c in waiting if not unfinished & set(c.reads())]:
                waiting.remove(cell)
                folders = [f"checkpoints/{name}" for name in cell.reads()]
                if resuming:
                    folders += cell_files(cell)
                ref = task.options(name=TASK_PREFIX + cell.name, **resources).remote(
                    run_cell,
                    cell,
                    pack(run_dir, folders),
                    resuming=resuming,
                    devices=devices,
                    imports=list(imports),
                    sys_path=sys_path,
                )
                running[ref] = (cell, utc_now(), time.perf_counter())
                on_start(cell)
            [ref], _ = ray.wait(list(running), num_returns=1)
            cell, started, start = running.pop(ref)
            try:
                record, files = ray.get(ref)
                unpack(run_dir, files, cell_files(cell))
            except ray.exceptions.RayError as err:  # the worker died, or the task never ran
                record = lost_cell_record(cell, err, started, time.perf_counter() - start)
            unfinished.discard(cell.name)
            on_finish(record)
    finally:
        for ref in running:  # Ctrl-C: stop what is still running; resume picks them up
            ray.cancel(ref, force=True)


def _ignore(fraction: float) -> None:
    """A cell's progress inside a worker: only whole cells are shown."""
