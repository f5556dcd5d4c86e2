"""The `scalegym` command line: argument parsing and dispatch; the work lives in the library."""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
    # Later subcommands (run SUITE, train ENV, report RUN_DIR, tb RUN_DIR) add themselves here in
    # the same way: an `_add_<name>` that builds the subparser and a `_<name>` handler.
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
    cmd.add_argument(
        "--set",
        dest="overrides",
        type=_override,
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="env param override (repeatable); VALUE is a Python literal or a string",
    )
    cmd.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first, e.g. one that registers your env (repeatable)",
    )
    cmd.add_argument("--out", type=Path, metavar="PATH", help="also write the JSON to PATH")
    cmd.add_argument("--json", action="store_true", help="print one JSON object to stdout")
    cmd.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: when stderr is a terminal)",
    )
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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fail(message: str, code: int) -> int:
    print(f"scalegym: error: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
