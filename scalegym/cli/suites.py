"""`scalegym run`, `report` and `tb`: suites and their results."""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path
from typing import Any

from scalegym.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    Interrupted,
    UsageError,
    add_devices,
    add_import,
    add_progress,
    check_devices,
    check_existing_dir,
    check_writable_dir,
    fail,
    import_user_module,
    print_next_steps,
)
from scalegym.progress import progress_enabled

# --------------------------------------------------------------------------------------------- run


def add_run_command(commands: Any) -> None:
    cmd = commands.add_parser(
        "run",
        help="run a suite (shipped name or TOML file) and write its results",
        description=(
            "Run a suite: validate it, then run its cells in order, writing "
            "results/runs/<suite>/<stamp>/ (manifest.json, results.jsonl, summary.csv, report.md, "
            "tb/<cell>/). Exit code 1 when a cell failed, 2 for an invalid suite."
        ),
    )
    cmd.add_argument(
        "suite",
        nargs="?",
        metavar="SUITE|FILE",
        help="a shipped suite (smoke, rearrange, ...) or a path to a suite .toml; "
        "optional with --resume (the run's own copy is used); without one, the shipped suites "
        "are listed",
    )
    cmd.add_argument("--out", type=Path, metavar="DIR", help="the run directory (default: stamped)")
    cmd.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="continue a run, skipping finished cells; the modules it imported (--import, the "
        "suite's imports) are imported again",
    )
    add_devices(cmd)
    cmd.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="local: cells one after another in this process (default); ray: each cell a Ray "
        "task (needs the ray extra)",
    )
    cmd.add_argument(
        "--address",
        metavar="ADDR",
        default=None,
        help="with --executor ray: the cluster to join (e.g. ray://head:10001 or auto); "
        "default: start a local Ray",
    )
    add_import(cmd)
    cmd.add_argument("--json", action="store_true", help="print one JSON object to stdout")
    add_progress(cmd)
    cmd.set_defaults(handler=_run)


def check_executor(executor: str, address: str | None) -> None:
    """--address only with --executor ray, and ray installed for it: refused before any work."""
    if address is not None and executor != "ray":
        raise UsageError("--address is the Ray cluster to join; it needs --executor ray")
    if executor == "ray" and importlib.util.find_spec("ray") is None:
        raise UsageError(
            "--executor ray: ray is not installed; install the extra: pip install 'scalegym[ray]'"
        )


def _run(args: argparse.Namespace) -> int:
    from scalegym.suites import rundir
    from scalegym.suites.lock import RunDirBusy
    from scalegym.suites.ray_executor import RayClusterError
    from scalegym.suites.rundir import DEFAULT_ROOT, SUITE_COPY, RunDirError, new_run_dir
    from scalegym.suites.runner import run_suite
    from scalegym.suites.spec import SuiteError, load_suite

    if args.suite is None and args.resume is None:
        return _list_suites()
    for module in args.imports:
        import_user_module(module)
    if args.resume is not None and args.out is not None:
        raise UsageError("--out starts a new run and --resume continues one; give only one")
    recorded: list[str] = []
    if args.resume is not None:
        check_existing_dir(args.resume, "--resume")
        if not (args.resume / rundir.MANIFEST).is_file():
            raise UsageError(f"--resume {args.resume}: not a run directory (no {rundir.MANIFEST})")
        recorded = _import_recorded(args.resume)
        check_writable_dir(args.resume, "--resume")
    elif args.out is not None:
        check_writable_dir(args.out, "--out")
    else:
        check_writable_dir(DEFAULT_ROOT, "results root")
    check_devices(args.devices)
    check_executor(args.executor, args.address)
    source = args.suite if args.suite is not None else args.resume / SUITE_COPY
    try:
        spec = load_suite(source)  # every cell validated before any work starts
    except SuiteError as err:
        raise UsageError(str(err)) from None
    # The folder is made here, so that a Ctrl-C can name it in its resume command.
    out = args.out if args.out is not None or args.resume else new_run_dir(DEFAULT_ROOT / spec.name)
    run_dir = args.resume or out
    try:
        run_suite(
            spec,
            out_dir=out,
            resume_dir=args.resume,
            progress=progress_enabled(args.progress),
            command=args.command_line,
            devices=args.devices,
            executor=args.executor,
            address=args.address,
            imports=_worker_imports([*recorded, *args.imports, *spec.imports]),
        )
    except (SuiteError, RunDirError, RunDirBusy) as err:  # the input, not the run, is wrong
        raise UsageError(str(err)) from None
    except RayClusterError as err:  # refused or silent: nothing ran, no run directory changed
        if args.out is None and args.resume is None:
            out.rmdir()  # the empty stamped folder made above
        return fail(str(err), EXIT_FAILURE)
    except KeyboardInterrupt:
        raise _run_interrupted(args, run_dir) from None
    latest = rundir.latest_records(rundir.read_records(run_dir / rundir.RESULTS))
    records = [latest[cell.name] for cell in spec.cells if cell.name in latest]
    failed = sum(record["status"] != "ok" for record in records)
    if args.json:
        print(json.dumps({"run_dir": str(run_dir), "cells": records, "failed": failed}))
    else:
        print((run_dir / rundir.REPORT).read_text())
    print_next_steps(run_dir, to_stderr=args.json)
    if failed:
        return fail(f"{failed} cell(s) failed; see {run_dir / rundir.REPORT}", EXIT_FAILURE)
    return EXIT_OK


def _list_suites() -> int:
    """Bare `scalegym run`: the shipped suites and how to run one, on stderr as a usage hint
    (exit code 2: nothing was run)."""
    from rich.console import Console

    from scalegym.cli.catalog import suite_rows
    from scalegym.cli.envs import suite_table

    console = Console(stderr=True)
    console.print(suite_table(suite_rows()))
    console.print("run one: scalegym run SUITE (a name above, or a path to a suite .toml file)")
    return EXIT_USAGE


def _worker_imports(imports: list[str]) -> list[str]:
    """Each import once, a .py path made absolute: what a Ray worker imports, wherever it runs
    (`scalegym.core.registry.import_env_module` takes both forms)."""
    from scalegym.core.registry import is_module_path

    absolute = [str(Path(m).resolve()) if is_module_path(m) else m for m in imports]
    return list(dict.fromkeys(absolute))


def _import_recorded(run_dir: Path) -> list[str]:
    """Import what the run imported before (its --import modules and files); returns them."""
    from scalegym.core.registry import import_env_module
    from scalegym.suites.rundir import read_manifest, recorded_imports

    modules = recorded_imports(read_manifest(run_dir))
    for module in modules:
        try:
            import_env_module(module)
        except ImportError as err:
            raise UsageError(
                f"--resume {run_dir}: the run imported {module}, which cannot be imported now "
                f"({err}); run from the folder it ran in, or pass --import MODULE"
            ) from None
    return modules


def _run_interrupted(args: argparse.Namespace, run_dir: Path) -> Interrupted:
    """What a Ctrl-C kept of the run, and the exact command that continues it."""
    from scalegym.suites.rundir import MANIFEST, RESULTS, latest_records, read_records

    if not (run_dir / MANIFEST).is_file():
        return Interrupted("nothing was recorded yet; start again", list(args.command_line))
    finished = latest_records(read_records(run_dir / RESULTS)).values()
    done = sum(record["status"] == "ok" for record in finished)
    resume = ["scalegym", "run", "--resume", str(run_dir)]
    for module in args.imports:
        resume += ["--import", module]
    if args.devices is not None:
        resume += ["--devices", str(args.devices)]
    if args.executor != "local":
        resume += ["--executor", args.executor]
    if args.address is not None:
        resume += ["--address", args.address]
    return Interrupted(f"{done} finished cell(s) are kept in {run_dir}", resume)


# ------------------------------------------------------------------------------------------ report


def add_report_command(commands: Any) -> None:
    cmd = commands.add_parser(
        "report",
        help="rewrite a run's summary.csv and report.md and print the report",
        description="Regenerate summary.csv and report.md from a run's results.jsonl.",
    )
    cmd.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a results/runs/... directory")
    cmd.set_defaults(handler=_report)


def _report(args: argparse.Namespace) -> int:
    from scalegym.suites.report import write_outputs

    check_existing_dir(args.run_dir)
    try:
        _, report_path = write_outputs(args.run_dir)
    except ValueError as err:
        raise UsageError(str(err)) from None
    print(report_path.read_text())
    return EXIT_OK


# ---------------------------------------------------------------------------------------------- tb


def add_tb_command(commands: Any) -> None:
    cmd = commands.add_parser(
        "tb",
        help="serve a run's TensorBoard curves on 127.0.0.1",
        description="Start TensorBoard on RUN_DIR/tb, print its URL, and serve until Ctrl-C.",
    )
    cmd.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run or train directory")
    cmd.add_argument("--port", type=int, default=None, help="port (default: first free from 6006)")
    cmd.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    cmd.set_defaults(handler=_tb)


def _tb(args: argparse.Namespace) -> int:
    from scalegym.suites.tensorboard import launch_tensorboard

    check_existing_dir(args.run_dir)
    log_dir = args.run_dir / "tb"
    if not log_dir.is_dir():
        raise UsageError(f"{args.run_dir}: no tb/ folder; give a directory written by run or train")
    try:
        url = launch_tensorboard(log_dir, host=args.host, port=args.port)
    except Exception as err:  # e.g. the port is taken: TensorBoard raises its own error types
        return fail(f"TensorBoard did not start: {err}", EXIT_FAILURE)
    print(f"TensorBoard for {args.run_dir} at {url} (Ctrl-C to stop)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return EXIT_OK
