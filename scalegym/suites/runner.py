"""The suite runner: a directory per run, one fsynced JSON line per finished cell, resumable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from scalegym.agents.budgets import Criterion
from scalegym.agents.result import TrainResult
from scalegym.core.resolve import env_precision
from scalegym.progress import cell_progress
from scalegym.suites import report
from scalegym.suites.clock import utc_now
from scalegym.suites.lock import hold_run_dir
from scalegym.suites.search import run_search_cell
from scalegym.suites.spec import BenchCell, Cell, ScalingCell, SuiteSpec, TrainCell
from scalegym.suites.tensorboard import TensorBoardLogger
from scalegym.suites.timestep import run_timestep_cell
from scalegym.suites.training import clear as _clear
from scalegym.suites.training import train_in_cell

DEFAULT_ROOT = Path("results") / "runs"
SUITE_COPY = "suite.toml"


class RunDirError(ValueError):
    """A run directory that cannot be used as asked (already holds a run, or is not a run)."""


class PartialCellError(RuntimeError):
    """A cell that failed after finishing part of its work; `result` holds that part."""

    def __init__(self, message: str, result: dict[str, Any]) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class CellContext:
    """Where one cell writes, and how it reports the fraction of its work done."""

    run_dir: Path
    tb_dir: Path  # tb/<cell>/
    checkpoint_dir: Path  # checkpoints/<cell>/
    resuming: bool  # the run is being resumed: a checkpoint of this cell may be continued
    advance: Callable[[float], None]  # fraction of the cell done, 0..1
    devices: int | None = None  # local devices a training's env batch is split over (None: all)


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
    the same either way, so either executor resumes the other's run.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; allowed: {', '.join(EXECUTORS)}")
    command = list(command if command is not None else sys.argv)
    run_dir = Path(resume_dir) if resume_dir is not None else _create_run_dir(spec, out_dir)
    with hold_run_dir(run_dir):
        if resume_dir is not None:
            _resume_manifest(run_dir, spec, command, executor)
        else:
            _write_manifest(run_dir, spec, command, devices, executor)
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


EXECUTORS = ("local", "ray")


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
    results = run_dir / report.RESULTS
    done = {r["cell"] for r in report.read_records(results) if r["status"] == "ok"}
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
                finished(
                    run_cell(cell, run_dir, resuming=resuming, advance=bar.update, devices=devices)
                )
    finally:  # after Ctrl-C too: the report then lists the cells still to run
        report.write_outputs(run_dir)


def run_cell(
    cell: Cell,
    run_dir: Path,
    *,
    resuming: bool = False,
    advance: Callable[[float], None],
    devices: int | None = None,
) -> dict[str, Any]:
    """Run one cell and return its record; an exception becomes a "failed" record."""
    context = CellContext(
        run_dir=run_dir,
        tb_dir=run_dir / "tb" / cell.name,
        checkpoint_dir=run_dir / "checkpoints" / cell.name,
        resuming=resuming,
        advance=advance,
        devices=devices,
    )
    started, start = utc_now(), time.perf_counter()
    record: dict[str, Any] = {
        "cell": cell.name,
        "kind": cell.kind,
        "env": cell.env,
        "env_params": dict(cell.env_params),
    }
    try:
        with env_precision(cell.env):  # x64 only for an env that declares float64 physics
            result = CELL_RUNNERS[cell.kind](cell, context)
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


def run_bench_cell(cell: BenchCell, context: CellContext) -> dict[str, Any]:
    """Env-only SPS per batch size; `perf/sps` goes to TensorBoard with the batch size as step."""
    from scalegym.core.resolve import resolve_env
    from scalegym.suites.measures import bench_report

    resolved = resolve_env(cell.env, **cell.env_params)
    rows: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    _clear(context.tb_dir)
    with TensorBoardLogger(context.tb_dir) as logger:
        # One batch size at a time, so the progress bar moves and TensorBoard fills in as we go.
        for done, batch_size in enumerate(cell.batch_sizes, start=1):
            one = bench_report(
                resolved,
                [batch_size],
                cell.steps,
                cell.repeats,
                cell.seed,
                overrides=dict(cell.env_params),
                progress=False,
            )
            failed += one["failed"]
            for row in one["results"]:
                rows.append(row)
                logger.log_scalars(batch_size, {"perf/sps": row["sps"]})
            context.advance(done / len(cell.batch_sizes))
    result = {
        "env_kind": resolved.kind,
        "consumes": one["consumes"],
        "x64": one["x64"],
        "num_steps": cell.steps,
        "repeats": cell.repeats,
        "seed": cell.seed,
        "results": rows,
        "failed": failed,
    }
    if failed:
        errors = "; ".join(f"B={f['batch_size']:,}: {f['error']}" for f in failed)
        raise PartialCellError(errors, result)
    return result


def run_train_cell(cell: TrainCell, context: CellContext) -> dict[str, Any]:
    """Train `cell.agent` over `cell.seeds` seeds; curves go to TensorBoard at every chunk."""
    result, resume = train_in_cell(cell, context)
    record = {**result.as_record(), "resumed_from_checkpoint": resume}
    if cell.threshold is not None:
        record["threshold"] = threshold_verdict(result, cell.threshold_on, cell.threshold)
    return record


def threshold_verdict(result: TrainResult, metric: str, value: float) -> dict[str, Any]:
    """Whether the final evaluation reached `value` on `metric` ("success" or "return")."""
    achieved = {"success": result.final.eval_success, "return": result.final.eval_return}[metric]
    return {
        "metric": metric,
        "value": value,
        "achieved": achieved,
        "passed": None if achieved is None else bool(achieved >= value),
    }


def run_scaling_cell(cell: ScalingCell, context: CellContext) -> dict[str, Any]:
    """Per value of `cell.vary`: the agent's runs judged at every budget, each seed's first
    passing budget and N̂; then the power law fitted over the values. A value that raises ends
    the cell, keeping the values done in a `PartialCellError`."""
    from scalegym.agents.budgets import budget_agent, geometric_budgets

    agent = budget_agent(cell.agent)
    budgets = geometric_budgets(**cell.budgets)  # [E]
    criterion = Criterion(cell.criterion, cell.threshold)
    _clear(context.tb_dir)
    rows: list[dict[str, Any]] = []
    for index, value in enumerate(cell.values):
        try:
            rows.append(scaling_value(cell, value, agent, budgets, criterion, context, index))
        except Exception as err:
            result = scaling_result(cell, budgets, criterion, rows)
            raise PartialCellError(
                f"{value_label(cell, value)}: {type(err).__name__}: {err}", result
            ) from err
        context.advance((index + 1) / len(cell.values))
    result = scaling_result(cell, budgets, criterion, rows)
    # TensorBoard steps are integers: whole values are the step, fractional ones (ε) in 1/1000s.
    whole = all(float(row["value"]).is_integer() for row in rows)
    tag, scale = ("scaling/n_hat", 1) if whole else ("scaling/n_hat_vs_value_x1000", 1000)
    with TensorBoardLogger(context.tb_dir) as logger:
        for row in rows:
            logger.log_scalars(round(row["value"] * scale), {tag: row["n_hat"]})
    return result


def scaling_value(
    cell: ScalingCell,
    value: float,
    agent: Callable[..., Any],
    budgets: np.ndarray,
    criterion: Criterion,
    context: CellContext,
    index: int,
) -> dict[str, Any]:
    """One value's runs: the agent over all seeds, curves to `tb/<cell>/<vary>=<value>/`."""
    from scalegym.suites.scaling import value_record

    start = time.perf_counter()
    overrides = cell.overrides(value)
    with TensorBoardLogger(context.tb_dir / value_label(cell, value)) as logger:

        def log(label: str, budget: int, scalars: dict[str, float]) -> None:
            logger.log_scalars(budget, scalars)
            done = min(1.0, budget / float(budgets[-1]))
            context.advance((index + done) / len(cell.values))

        run = agent(
            cell.env,
            overrides,
            budgets=budgets,
            unit=cell.unit,
            criterion=criterion,
            num_seeds=cell.seeds,
            seed=cell.seed,
            agent_params=dict(cell.agent_params),
            log=log,
        )
    return {
        "value": value,
        "env_params": overrides,
        **value_record(run.budgets, run.passes, run.metric, cell.delta),
        "extra": run.extra,
        "wall_s": time.perf_counter() - start,
    }


def scaling_result(
    cell: ScalingCell, budgets: np.ndarray, criterion: Criterion, rows: list[dict[str, Any]]
) -> dict[str, Any]:
    """The cell's record: its setting, a row per value done, and the fit when two N̂ are finite."""
    from scalegym.suites.scaling import fit_values

    result: dict[str, Any] = {
        "agent": cell.agent,
        "vary": list(cell.vary),
        "unit": cell.unit,
        "criterion": criterion.describe(),
        "criterion_on": cell.criterion,
        "threshold": cell.threshold,
        "delta": cell.delta,
        "seeds": cell.seeds,
        "seed": cell.seed,
        "budgets": budgets.tolist(),
        "theory_exponent": cell.theory_exponent,
        "values": rows,
        "fit": None,
    }
    if len(rows) >= 2:  # a cell cut short is fitted over the values it finished
        first = [row["first_budgets"] for row in rows]
        result.update(fit_values([row["value"] for row in rows], first, cell.delta, cell.seed))
    return result


def value_label(cell: ScalingCell, value: float) -> str:
    """`height+width=8`: one value's name, and its TensorBoard folder under `tb/<cell>/`."""
    number = int(value) if float(value).is_integer() else float(value)
    return f"{'+'.join(cell.vary)}={number}"


# Cell kind → runner; a later kind registers its runner here next to its spec in CELL_KINDS.
CELL_RUNNERS: dict[str, Callable[[Any, CellContext], dict[str, Any]]] = {
    "bench": run_bench_cell,
    "train": run_train_cell,
    "scaling": run_scaling_cell,
    "timestep": run_timestep_cell,
    "search": run_search_cell,
}


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line with a single write, then fsync: a kill loses a line, never half."""
    line = (json.dumps(record, default=_to_json) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(line)
        while view:  # one write for a regular file; the loop only guards short writes
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def new_run_dir(root: Path) -> Path:
    """`root/<UTC YYYYmmdd-HHMMSS>`, with `-2`, `-3`... when two runs start in the same second."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    for attempt in range(1, 1000):
        path = root / (stamp if attempt == 1 else f"{stamp}-{attempt}")
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise RunDirError(f"{root}: could not create a new run directory for {stamp}")


def git_state(cwd: str | Path | None = None) -> dict[str, Any]:
    """The commit checked out in `cwd` and whether tracked files differ from it (None: no git)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def _create_run_dir(spec: SuiteSpec, out_dir: str | Path | None) -> Path:
    if out_dir is None:
        return new_run_dir(DEFAULT_ROOT / spec.name)
    run_dir = Path(out_dir)
    if (run_dir / report.MANIFEST).exists() or (run_dir / report.RESULTS).exists():
        raise RunDirError(
            f"{run_dir} already holds a run; continue it with --resume {run_dir} "
            "or choose another --out"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def _write_manifest(
    run_dir: Path,
    spec: SuiteSpec,
    command: list[str],
    devices: int | None = None,
    executor: str = "local",
) -> None:
    from scalegym.suites.measures import device_info, versions

    (run_dir / SUITE_COPY).write_bytes(spec.source)  # the exact file, for --resume and reruns
    manifest = {
        "suite": {
            "name": spec.name,
            "description": spec.description,
            "path": spec.path,
            "sha256": spec.sha256,
        },
        "cells": _cell_entries(spec),
        "seed": spec.seed,
        "seeds": {c.name: c.seeds for c in spec.cells if isinstance(c, TrainCell | ScalingCell)},
        "started": utc_now(),
        "command": command,
        "cwd": os.getcwd(),
        "git": git_state(),
        "device": device_info(),
        "training_devices": devices or device_info()["num_devices"],  # the env batch's split
        "executor": executor,  # the driver's device above; a Ray worker's may differ
        "versions": versions(),
        "resumed": [],
    }
    report.write_text_atomic(run_dir / report.MANIFEST, json.dumps(manifest, indent=2) + "\n")


def _resume_manifest(
    run_dir: Path, spec: SuiteSpec, command: list[str], executor: str = "local"
) -> None:
    """Check `run_dir` is a run of this suite, note the resume, and drop a half-written line."""
    try:
        manifest = report.read_manifest(run_dir)
    except ValueError as err:
        raise RunDirError(str(err)) from None
    suite = manifest.get("suite", {})
    if suite.get("name") != spec.name:
        raise RunDirError(
            f"{run_dir} is a run of suite {suite.get('name')!r}, not {spec.name!r}; "
            f"resume it with `scalegym run --resume {run_dir}`"
        )
    manifest.setdefault("resumed", []).append(
        {
            "at": utc_now(),
            "command": command,
            "suite_sha256": spec.sha256,
            "suite_changed": spec.sha256 != suite.get("sha256"),
            "git": git_state(),  # the code the resumed cells ran with
            "executor": executor,
        }
    )
    # The cells run now are the spec's; the report lists them in this order.
    manifest["cells"] = _cell_entries(spec)
    report.write_text_atomic(run_dir / report.MANIFEST, json.dumps(manifest, indent=2) + "\n")
    _drop_partial_line(run_dir / report.RESULTS)


def _cell_entries(spec: SuiteSpec) -> list[dict[str, str]]:
    return [{"name": c.name, "kind": c.kind, "env": c.env} for c in spec.cells]


def _drop_partial_line(path: Path) -> None:
    """Cut a trailing write that a kill left without its newline, so appends start clean."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)
            os.fsync(f.fileno())


def _to_json(obj: Any) -> Any:
    """numpy and jax values as plain numbers and lists; anything else as its text."""
    if isinstance(obj, np.generic):
        return obj.item()
    if hasattr(obj, "__array__"):
        return np.asarray(obj).tolist()
    if isinstance(obj, Path):
        return str(obj)
    return repr(obj)  # never lose a whole record to one odd value
