"""The suite runner: each cell not yet finished, in order, one fsynced record each; resumable."""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from scalegym.progress import cell_progress
from scalegym.suites import report
from scalegym.suites.clock import utc_now
from scalegym.suites.lock import hold_run_dir
from scalegym.suites.rundir import (
    RESULTS,
    append_record,
    create_run_dir,
    read_records,
    resume_manifest,
    write_manifest,
)
from scalegym.suites.schema import Cell, CellContext, EnvCache, PartialCellError
from scalegym.suites.spec import SuiteSpec

EXECUTORS = ("local", "ray")


def run_suite(
    spec: SuiteSpec,
    out_dir: str | Path | None = None,
    resume_dir: str | Path | None = None,
    progress: bool = True,
    *,
    command: Sequence[str] | None = None,
    devices: int | None = None,
    executor: str = "local",
    address: str | None = None,
    imports: Sequence[str] = (),
) -> Path:
    """Run every cell of `spec` not yet finished; returns the run directory.

    A new run goes to `out_dir` or `results/runs/<suite>/<UTC stamp>/`; `resume_dir` continues
    a run, skipping its cells recorded "ok". A cell that raises is recorded "failed" and the run
    goes on. summary.csv and report.md are rewritten at the end. Train and timestep cells split
    their env batch over `devices` local devices (None: all; `scalegym.agents.devices`).
    `executor="ray"` runs each cell as a Ray task (`scalegym.suites.ray_executor`) on the cluster
    at `address` (None: a local Ray), whose workers import `imports` first; the run directory is
    the same either way, so either executor resumes the other's run. The cluster is joined first:
    one it cannot join raises `RayClusterError` with no run directory written or changed.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; allowed: {', '.join(EXECUTORS)}")
    command = list(command if command is not None else sys.argv)
    if executor == "ray":  # before any run directory is touched: a refusal leaves it as it was
        from scalegym.suites.ray_executor import connect

        connect(address)
    run_dir = Path(resume_dir) if resume_dir is not None else create_run_dir(spec, out_dir)
    with hold_run_dir(run_dir):
        if resume_dir is not None:
            resume_manifest(run_dir, spec, command, executor)
        else:
            write_manifest(run_dir, spec, command, devices, executor)
        _run_cells(
            spec,
            run_dir,
            resuming=resume_dir is not None,
            progress=progress,
            devices=devices,
            executor=executor,
            address=address,
            imports=imports,
        )
    return run_dir


def _run_cells(
    spec: SuiteSpec,
    run_dir: Path,
    *,
    resuming: bool,
    progress: bool,
    devices: int | None,
    executor: str = "local",
    address: str | None = None,
    imports: Sequence[str] = (),
) -> None:
    results = run_dir / RESULTS
    done = {r["cell"] for r in read_records(results) if r["status"] == "ok"}
    todo = [cell for cell in spec.cells if cell.name not in done]
    try:
        with cell_progress(len(spec.cells), len(spec.cells) - len(todo), progress) as bar:

            def finished(record: dict[str, Any]) -> None:
                append_record(results, record)
                bar.finish(report.cell_summary(record))

            if executor == "ray":
                from scalegym.suites.ray_executor import run_cells_on_ray

                run_cells_on_ray(
                    run_cell,
                    todo,
                    run_dir,
                    resuming=resuming,
                    devices=devices,
                    address=address,
                    imports=imports,
                    on_start=lambda cell: None,  # cells overlap: the bar counts whole cells
                    on_finish=finished,
                )
                return
            for cell in todo:
                bar.start(cell.name)
                record = run_cell(
                    cell,
                    run_dir,
                    resuming=resuming,
                    advance=bar.update,
                    devices=devices,
                    envs=spec.envs,
                )
                finished(record)
    finally:  # after Ctrl-C too: the report then lists the cells still to run
        report.write_outputs(run_dir)


def run_cell(
    cell: Cell,
    run_dir: Path,
    *,
    resuming: bool = False,
    advance: Callable[[float], None],
    devices: int | None = None,
    envs: EnvCache | None = None,
) -> dict[str, Any]:
    """Run one cell and return its record; an exception becomes a "failed" record. `envs`: the
    envs the suite's validation resolved (None: the cell resolves its own, as on a Ray worker)."""
    context = CellContext(
        run_dir=run_dir,
        tb_dir=run_dir / "tb" / cell.name,
        checkpoint_dir=run_dir / "checkpoints" / cell.name,
        resuming=resuming,
        advance=advance,
        devices=devices,
        envs=envs if envs is not None else EnvCache(),
    )
    started, start = utc_now(), time.perf_counter()
    record: dict[str, Any] = {
        "cell": cell.name,
        "kind": cell.kind,
        "env": cell.env,
        "env_params": dict(cell.env_params),
    }
    try:
        result = cell.run(context)  # each cell runs its envs under their own precision()
        record.update(status="ok", result=result)
    except PartialCellError as err:  # the finished part is kept in the record
        record.update(status="failed", error=str(err), result=err.result)
    except Exception as err:  # one broken cell must not cost the others; KeyboardInterrupt ends
        record.update(
            status="failed",
            error=f"{type(err).__name__}: {err}",
            traceback=traceback.format_exc(limit=-8),
            result={},
        )
    record.update(started=started, finished=utc_now(), wall_s=time.perf_counter() - start)
    return record
