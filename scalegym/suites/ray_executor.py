"""Cells as Ray tasks: `scalegym run SUITE --executor ray [--address ADDR]`.

Each cell runs as one Ray task in a worker's own scratch directory; the task returns the cell's
record and its files (tb/<cell>/, checkpoints/<cell>/, a train cell's rollouts/<cell>/), and the
driver writes both into the run directory exactly as the local executor would, so results.jsonl,
the report and `--resume` do not care which executor ran a cell. Nothing needs a shared
filesystem: a resumed cell's checkpoint and a search cell's `checkpoint = "cell:NAME"` travel to
the worker with the task.

Cells run as soon as the cells they read (a search cell's prior) have finished; each asks Ray for
one CPU, or one GPU when the cluster has GPUs. A bench cell measures throughput, so it runs alone:
it starts when no other cell is running, and no cell after it starts before it ends. A worker that
dies (killed, out of memory) fails its cell only: the record says what Ray reported, and the
other cells go on.

`connect` joins the cluster before the runner touches a run directory. Under Ray's token
authentication (`RAY_AUTH_MODE=token`, the token in ~/.ray/auth_token, RAY_AUTH_TOKEN_PATH or
RAY_AUTH_TOKEN) a refused or missing token is one `RayClusterError` line, not Ray's retry loop.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from scalegym.core.registry import import_env_module
from scalegym.suites.clock import utc_now
from scalegym.suites.schema import Cell

RunCell = Callable[..., dict[str, Any]]  # the runner's run_cell(cell, run_dir, *, resuming, ...)
TASK_PREFIX = "scalegym-cell:"  # a running cell's worker shows as "ray::scalegym-cell:<name>"
Files = dict[str, bytes]  # path relative to the run directory -> contents
# Kinds whose numbers are throughput: a cell of one runs with no other cell beside it.
ALONE_KINDS = frozenset({"bench"})
RECIPE = "the README's Ray recipe"


class RayClusterError(RuntimeError):
    """The Ray cluster at `--address` refused scalegym or did not answer; nothing ran."""


def connect(address: str | None) -> None:
    """Join the Ray cluster at `address` (None: start a local Ray), unless already joined.

    A `host:port` address is tried once first: a refused token or a silent address raises one
    `RayClusterError` instead of Ray's loop of a warning a second and a traceback.
    """
    import ray

    if ray.is_initialized():
        return
    if address is not None and address != "auto" and "://" not in address:
        probe_gcs(address)
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    except ConnectionError as err:
        raise RayClusterError(f"could not join the Ray cluster at {address}: {err}") from err


def probe_gcs(address: str) -> None:
    """One connection to the cluster's GCS at `address`; RayClusterError if it is refused."""
    import ray

    try:
        from ray._raylet import GcsClient  # the client ray.init retries with
    except ImportError:  # another Ray: ray.init reports the problem itself
        return
    try:
        with native_stderr_silenced():
            GcsClient(address=address)
    except ray.exceptions.AuthenticationError as err:
        raise RayClusterError(token_refused(address)) from err
    except ray.exceptions.RpcError as err:
        raise RayClusterError(
            f"no Ray cluster answered at {address} ({err}): start one there with "
            f"`ray start --head` ({RECIPE}), or check --address; nothing ran"
        ) from err


def token_refused(address: str) -> str:
    """Why the cluster at `address` refused this process, and what to do: one line."""
    mode = os.environ.get("RAY_AUTH_MODE", "")
    if mode.lower() != "token":
        why = (
            f"it asks for its token and none was sent (RAY_AUTH_MODE is {mode or 'unset'} "
            "here): export RAY_AUTH_MODE=token, with the head's token in ~/.ray/auth_token"
        )
    else:
        why = (
            f"it refused the token from {token_source()}: use the head's "
            "(`ray get-auth-token` on the head prints it)"
        )
    return f"the Ray cluster at {address} refused scalegym: {why} ({RECIPE}); nothing ran"


def token_source() -> str:
    """Where Ray takes this process's token from, in Ray's order of precedence."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "RAY_AUTH_TOKEN"
    if os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return f"RAY_AUTH_TOKEN_PATH={os.environ['RAY_AUTH_TOKEN_PATH']}"
    return "~/.ray/auth_token"


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """File descriptor 2 to /dev/null while inside: Ray's C++ client logs each failed try there,
    and the error raised after it says the same once."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def runs_alone(cell: Cell) -> bool:
    """Whether `cell` measures throughput, so that no other cell may run beside it."""
    return cell.kind in ALONE_KINDS


def ready_to_start(
    waiting: Sequence[Cell], unfinished: set[str], running: Sequence[Cell]
) -> list[Cell]:
    """The waiting cells to start now, in suite order.

    A cell starts once the cells it reads have finished. A cell that runs alone starts only when
    nothing runs, and is a barrier: the cells after it wait until it has run.
    """
    if any(runs_alone(cell) for cell in running):
        return []
    chosen: list[Cell] = []
    for cell in waiting:
        if unfinished & set(cell.reads()):
            continue
        if runs_alone(cell):
            return chosen or ([] if running else [cell])
        chosen.append(cell)
    return chosen


def cell_files(cell: Cell) -> list[str]:
    """The run-directory folders a cell writes: what comes back from its task."""
    return [f"tb/{cell.name}", f"checkpoints/{cell.name}", f"rollouts/{cell.name}"]


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
    holding `files`. A fresh worker gets one CPU device per core, as the `scalegym` command
    does, so that a bench cell splits its batch as it does locally."""
    from scalegym.agents.devices import one_cpu_device_per_core

    one_cpu_device_per_core()  # a no-op where the worker has computed already
    for entry in sys_path:  # where the driver found the user's --import modules
        if entry not in sys.path:
            sys.path.append(entry)
    for module in imports:  # user envs register themselves on import, as in the driver
        import_env_module(module)  # a module name or the absolute path of a .py file
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

    connect(address)
    resources = {"num_gpus": 1} if ray.cluster_resources().get("GPU", 0) >= 1 else {"num_cpus": 1}
    task = ray.remote(max_retries=0)(run_cell_task)
    waiting = list(cells)
    unfinished = {cell.name for cell in cells}
    running: dict[Any, tuple[Cell, str, float]] = {}
    sys_path = [entry for entry in sys.path if entry and Path(entry).is_dir()]
    try:
        while waiting or running:
            in_flight = [cell for cell, _, _ in running.values()]
            for cell in ready_to_start(waiting, unfinished, in_flight):
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
