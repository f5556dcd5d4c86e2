"""The `scalegym` command line: argument parsing and dispatch; the work lives in the library."""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scalegym.suites.report import write_text_atomic

# Exit codes: 0 success, 1 the command failed while running, 2 bad command line (usage).
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
DEFAULT_BATCH_SIZES = (1, 64, 1024, 4096, 16384)


class UsageError(Exception):
    """A command-line value that cannot work (unknown env id, bad param); exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with errors reported as `scalegym: error: ...` whatever the subcommand."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"scalegym: error: {message}\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run `scalegym ARGS`; returns the exit code (0 ok, 1 failed while running, 2 usage)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help and argparse errors; return instead of exiting
        return stop.code if isinstance(stop.code, int) else EXIT_USAGE
    if args.handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    # Recorded in a run's manifest so the run can be repeated.
    args.command_line = ["scalegym", *(sys.argv[1:] if argv is None else argv)]
    import jax  # after parsing, so `--help` and usage errors answer without loading JAX

    # Float64 envs need x64 before any env is built. Restored afterwards so that calling main()
    # in-process (tests, notebooks) leaves the caller's JAX configuration as it was.
    x64_before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        return args.handler(args)
    except UsageError as err:
        return _fail(str(err), EXIT_USAGE)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    finally:
        jax.config.update("jax_enable_x64", x64_before)


def build_parser() -> argparse.ArgumentParser:
    """The full parser; each subcommand adds itself and sets `handler`."""
    parser = _Parser(
        prog="scalegym",
        description="JAX-vectorized RL environments, agents and benchmark suites.",
    )
    parser.set_defaults(handler=None)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_list(commands)
    _add_bench(commands)
    _add_run(commands)
    _add_train(commands)
    _add_report(commands)
    _add_tb(commands)
    # Each subcommand adds itself the same way: an `_add_<name>` that builds the subparser and a
    # `_<name>` handler.
    return parser


# -------------------------------------------------------------------------------------------- list


def _add_list(commands: Any) -> None:
    cmd = commands.add_parser(
        "list", help="list registered scalegym env ids", description="List scalegym env ids."
    )
    cmd.add_argument("--json", action="store_true", help="print one JSON object to stdout")
    cmd.set_defaults(handler=_list)


def _list(args: argparse.Namespace) -> int:
    from scalegym.core import registry

    rows = [_describe_env(env_id) for env_id in registry.list_envs()]
    if args.json:
        print(json.dumps({"envs": rows}))
        return EXIT_OK
    from rich.console import Console
    from rich.table import Table

    table = Table(title="scalegym envs")
    for column in ("id", "observation space", "action space"):
        table.add_column(column)
    for row in rows:
        if "error" in row:
            table.add_row(row["id"], f"[red]unavailable: {row['error']}[/red]", "")
        else:
            table.add_row(row["id"], row["observation_space"], row["action_space"])
    Console().print(table)
    return EXIT_OK


def _describe_env(env_id: str) -> dict[str, str]:
    from scalegym.core import registry

    try:
        env, params = registry.make(env_id)
        return {
            "id": env_id,
            "observation_space": repr(env.observation_space(params)),
            "action_space": repr(env.action_space(params)),
        }
    except Exception as err:  # one broken env must not hide the others from the listing
        return {"id": env_id, "error": f"{type(err).__name__}: {err}"}


# ------------------------------------------------------------------------------------------- bench


def _add_bench(commands: Any) -> None:
    cmd = commands.add_parser(
        "bench",
        help="env-only steps per second over batch sizes",
        description=(
            "Measure env-only steps per second (random actions pre-sampled, compilation timed "
            "apart, median over repeats) for a scalegym, gymnax:, module: or gymnasium env id."
        ),
    )
    cmd.add_argument("env_id", metavar="ENV_ID", help="e.g. Rearrange-v0, gymnax:CartPole-v1")
    cmd.add_argument(
        "--batch-sizes",
        type=_batch_sizes,
        default=list(DEFAULT_BATCH_SIZES),
        metavar="B1,B2,...",
        help=f"comma-separated batch sizes (default {','.join(map(str, DEFAULT_BATCH_SIZES))})",
    )
    cmd.add_argument("--steps", type=_positive_int, default=256, help="steps per timed run")
    cmd.add_argument("--repeats", type=_positive_int, default=5, help="timed runs per batch size")
    cmd.add_argument("--seed", type=int, default=0, help="seed for actions and resets")
    _add_overrides(cmd, "--set", "overrides", "env param override (repeatable)")
    _add_import(cmd)
    cmd.add_argument("--out", type=Path, metavar="PATH", help="also write the JSON to PATH")
    cmd.add_argument("--json", action="store_true", help="print one JSON object to stdout")
    _add_progress(cmd)
    cmd.set_defaults(handler=_bench)


def _bench(args: argparse.Namespace) -> int:
    from scalegym.core.resolve import resolve_env
    from scalegym.suites.measures import bench_report

    for module in args.imports:
        _import_user_module(module)
    overrides = dict(args.overrides)
    try:
        resolved = resolve_env(args.env_id, **overrides)
    except ValueError as err:
        raise UsageError(str(err)) from None
    except ImportError as err:
        return _fail(str(err), EXIT_FAILURE)
    try:
        report = bench_report(
            resolved,
            args.batch_sizes,
            args.steps,
            args.repeats,
            args.seed,
            overrides=overrides,
            progress=args.progress,
        )
    except (ValueError, TypeError, RuntimeError, MemoryError, ImportError) as err:
        # Failures of the user's env or of the device (e.g. out of memory at a large batch).
        return _fail(f"bench {args.env_id} failed: {type(err).__name__}: {err}", EXIT_FAILURE)
    if args.json:
        print(json.dumps(report))
    else:
        _print_bench_table(report)
    if args.out is not None:
        _write_json(args.out, report)
        print(f"results: {args.out}", file=sys.stderr if args.json else sys.stdout)
    return EXIT_OK


def _print_bench_table(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{report['env']} ({report['kind']}): env steps per second")
    table.add_column("batch size", justify="right")
    table.add_column("median SPS", justify="right")
    table.add_column("min – max SPS", justify="right")
    table.add_column("compile s", justify="right")
    for row in report["results"]:
        table.add_row(
            f"{row['batch_size']:,}",
            f"{row['sps']:,.0f}",
            f"{row['sps_min']:,.0f} – {row['sps_max']:,.0f}",
            f"{row['compile_s']:.2f}",
        )
    console = Console()
    console.print(table)
    device = report["device"]
    console.print(
        f"device: {device['backend']} ({device['device_kind']}) x{device['num_devices']}, "
        f"{device['cpu_count']} CPUs, {device['processor']}; jax {report['jax']}; "
        f"{report['num_steps']} steps x {report['repeats']} repeats"
    )


# --------------------------------------------------------------------------------------------- run


def _add_run(commands: Any) -> None:
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
    _add_import(cmd)
    cmd.add_argument("--json", action="store_true", help="print one JSON object to stdout")
    _add_progress(cmd)
    cmd.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from scalegym.suites import report
    from scalegym.suites.runner import SUITE_COPY, RunDirError, run_suite
    from scalegym.suites.spec import SuiteError, load_suite

    for module in args.imports:
        _import_user_module(module)
    if args.suite is None and args.resume is None:
        raise UsageError("give a SUITE name or .toml file, or --resume RUN_DIR")
    if args.resume is not None and args.out is not None:
        raise UsageError("--out starts a new run and --resume continues one; give only one")
    if args.resume is not None and not (args.resume / report.MANIFEST).is_file():
        raise UsageError(f"--resume {args.resume}: not a run directory (no {report.MANIFEST})")
    source = args.suite if args.suite is not None else args.resume / SUITE_COPY
    try:
        spec = load_suite(source)  # every cell validated before any work starts
        run_dir = run_suite(
            spec,
            out_dir=args.out,
            resume_dir=args.resume,
            progress=_progress_enabled(args.progress),
            command=args.command_line,
        )
    except (SuiteError, RunDirError) as err:  # the input, not the run, is wrong
        raise UsageError(str(err)) from None
    latest = report.latest_records(report.read_records(run_dir / report.RESULTS))
    records = [latest[cell.name] for cell in spec.cells if cell.name in latest]
    failed = sum(record["status"] != "ok" for record in records)
    if args.json:
        print(json.dumps({"run_dir": str(run_dir), "cells": records, "failed": failed}))
    else:
        print((run_dir / report.REPORT).read_text())
    _print_next_steps(run_dir, to_stderr=args.json)
    if failed:
        return _fail(f"{failed} cell(s) failed; see {run_dir / report.REPORT}", EXIT_FAILURE)
    return EXIT_OK


# ------------------------------------------------------------------------------------------- train


def _add_train(commands: Any) -> None:
    cmd = commands.add_parser(
        "train",
        help="train an agent on an env over seeds, with TensorBoard curves",
        description=(
            "Train an agent (PPO) on any env id for a budget of env steps per seed; all seeds "
            "in one compiled call. Writes <out>/tb (TensorBoard), <out>/checkpoint and "
            "<out>/result.json."
        ),
    )
    cmd.add_argument("env_id", metavar="ENV_ID", help="e.g. Rearrange-v0, gymnax:CartPole-v1")
    cmd.add_argument("--agent", default="ppo", help="the agent (default ppo)")
    cmd.add_argument(
        "--steps", type=_positive_int, default=1_000_000, help="env steps per seed (default 1M)"
    )
    cmd.add_argument("--seeds", type=_positive_int, default=1, help="seeds trained together")
    cmd.add_argument("--seed", type=int, default=0, help="first seed")
    _add_overrides(cmd, "--set", "overrides", "env param override (repeatable)")
    _add_overrides(cmd, "--agent-set", "agent_overrides", "agent config override (repeatable)")
    cmd.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="run directory (default results/runs/train/<env>/<stamp>/)",
    )
    cmd.add_argument(
        "--resume", action="store_true", help="continue from the checkpoint in --out DIR"
    )
    _add_import(cmd)
    cmd.add_argument("--json", action="store_true", help="print one JSON object to stdout")
    _add_progress(cmd)
    cmd.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> int:
    from scalegym.core.resolve import resolve_env
    from scalegym.suites.runner import DEFAULT_ROOT, new_run_dir
    from scalegym.suites.spec import agent_param_problems
    from scalegym.suites.tensorboard import TensorBoardLogger

    for module in args.imports:
        _import_user_module(module)
    env_overrides, agent_overrides = dict(args.overrides), dict(args.agent_overrides)
    try:
        resolve_env(args.env_id, **env_overrides)  # bad ids and params fail before any work
    except ValueError as err:
        raise UsageError(str(err)) from None
    problems = agent_param_problems(args.agent, agent_overrides)
    if problems:
        raise UsageError(f"--agent-set: {'; '.join(problems)}")
    if args.resume and args.out is None:
        raise UsageError("--resume continues the run in --out DIR; give --out")
    if args.out is not None and not args.resume and _holds_training(args.out):
        raise UsageError(f"{args.out} already holds a training run; add --resume or pick --out")
    run_dir = args.out
    if run_dir is None:
        run_dir = new_run_dir(DEFAULT_ROOT / "train" / re.sub(r"[^A-Za-z0-9_.-]", "_", args.env_id))
    from scalegym.agents.train import train_agent

    try:
        with TensorBoardLogger(run_dir / "tb") as logger:
            result = train_agent(
                args.env_id,
                args.agent,
                total_steps=args.steps,
                num_seeds=args.seeds,
                seed=args.seed,
                env_overrides=env_overrides,
                agent_overrides=agent_overrides,
                log=logger.log_scalars,
                checkpoint_dir=run_dir / "checkpoint",
                resume=args.resume,
                progress=_progress_enabled(args.progress),
            )
    except ValueError as err:  # train_agent's verdict on the agent name or its config
        raise UsageError(str(err)) from None
    except (TypeError, RuntimeError, MemoryError) as err:
        return _fail(f"train {args.env_id} failed: {type(err).__name__}: {err}", EXIT_FAILURE)
    _write_json(
        run_dir / "result.json", {**result, "run_dir": str(run_dir), "command": args.command_line}
    )
    keys = ("env", "agent", "steps", "sps", "compile_s", "seeds", "final")
    summary = {key: result.get(key) for key in keys} | {"run_dir": str(run_dir)}
    if args.json:
        print(json.dumps(summary, default=float))
    else:
        _print_train_summary(summary, result.get("wall_s"))
    _print_next_steps(run_dir, to_stderr=args.json)
    return EXIT_OK


def _holds_training(out: Path) -> bool:
    checkpoint = out / "checkpoint"
    return (out / "result.json").exists() or (checkpoint.is_dir() and any(checkpoint.iterdir()))


def _print_train_summary(summary: dict[str, Any], wall_s: float | None) -> None:
    final = summary.get("final") or {}
    parts = [f"return {final.get('return', float('nan')):.3f}"]
    if final.get("success") is not None:
        parts.append(f"success {final['success']:.3f}")
    print(
        f"{summary['env']} {summary['agent']}: {summary['seeds']} seed(s) x "
        f"{summary['steps']:,} env steps; final {', '.join(parts)}; "
        f"{summary['sps']:,.0f} env steps/s (compile {summary['compile_s']:.1f} s"
        + (f", wall {wall_s:.0f} s)" if wall_s is not None else ")")
    )


# ------------------------------------------------------------------------------------------ report


def _add_report(commands: Any) -> None:
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


def _add_tb(commands: Any) -> None:
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
    import time

    from scalegym.suites.tensorboard import launch_tensorboard

    log_dir = args.run_dir / "tb"
    if not log_dir.is_dir():
        raise UsageError(f"{args.run_dir}: no tb/ folder; give a directory written by run or train")
    try:
        url = launch_tensorboard(log_dir, host=args.host, port=args.port)
    except Exception as err:  # e.g. the port is taken: TensorBoard raises its own error types
        return _fail(f"TensorBoard did not start: {err}", EXIT_FAILURE)
    print(f"TensorBoard for {args.run_dir} at {url} (Ctrl-C to stop)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return EXIT_OK


# ----------------------------------------------------------------------------------------- helpers


def _add_import(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first, e.g. one that registers your env (repeatable)",
    )


def _add_progress(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bars on stderr (default: when stderr is a terminal)",
    )


def _add_overrides(cmd: argparse.ArgumentParser, flag: str, dest: str, help_text: str) -> None:
    cmd.add_argument(
        flag,
        dest=dest,
        type=_override,
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help=f"{help_text}; VALUE is a Python literal or a string",
    )


def _progress_enabled(flag: bool | None) -> bool:
    return sys.stderr.isatty() if flag is None else flag


def _print_next_steps(run_dir: Path, *, to_stderr: bool) -> None:
    stream = sys.stderr if to_stderr else sys.stdout
    print(f"run directory: {run_dir}", file=stream)
    print(f"curves: scalegym tb {run_dir}", file=stream)


# ----------------------------------------------------------------------------------------- helpers


def _batch_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        sizes = []
    if not sizes or any(b < 1 for b in sizes):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers like 1,64,1024, got {text!r}"
        )
    return sizes


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _override(text: str) -> tuple[str, Any]:
    """`field=value` with value read as a Python literal (1, 0.5, True, 'x'), else a string."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected FIELD=VALUE, got {text!r}")
    lowered = raw.strip().lower()
    if lowered in ("true", "false"):
        return name, lowered == "true"
    try:
        value = ast.literal_eval(raw.strip())
    except (ValueError, SyntaxError):
        value = raw
    return name, value


def _import_user_module(module: str) -> None:
    # The user's cwd is where their env module usually lives; a console script does not add it.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        importlib.import_module(module)
    except ImportError as err:
        raise UsageError(f"--import {module}: {err}") from None


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    """Write atomically so an interrupted run never leaves a truncated file behind."""
    write_text_atomic(path, json.dumps(obj, indent=2) + "\n")


def _fail(message: str, code: int) -> int:
    print(f"scalegym: error: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
