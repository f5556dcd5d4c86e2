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
    UsageError,
    add_devices,
    add_import,
    add_progress,
    check_devices,
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
        "optional with --resume (the run's own copy is used)",
    )
    cmd.add_argument("--out", type=Path, metavar="DIR", help="the run directory (default: stamped)")
    cmd.add_argument(
        "--resume", type=Path, metavar="RUN_DIR", help="continue a run, skipping finished cells"
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
    from scalegym.suites.rundir import DEFAULT_ROOT, SUITE_COPY, RunDirError
    from scalegym.suites.runner import run_suite
    from scalegym.suites.spec import SuiteError, load_suite

    for module in args.imports:
        import_user_module(module)
    if args.suite is None and args.resume is None:
        raise UsageError("give a SUITE name or .toml file, or --resume RUN_DIR")
    if args.resume is not None and args.out is not None:
        raise UsageError("--out starts a new run and --resume continues one; give only one")
    if args.resume is not None and not (args.resume / rundir.MANIFEST).is_file():
        raise UsageError(f"--resume {args.resume}: not a run directory (no {rundir.MANIFEST})")
    if args.resume is not None:
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
        run_dir = run_suite(
            spec,
            out_dir=args.out,
            resume_dir=args.resume,
            progress=progress_enabled(args.progress),
            command=args.command_line,
            devices=args.devices,
            executor=args.executor,
            address=args.address,
            imports=args.imports,
        )
    except (SuiteError, RunDirError, RunDirBusy) as err:  # the input, not the run, is wrong
        raise UsageError(str(err)) from None
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
