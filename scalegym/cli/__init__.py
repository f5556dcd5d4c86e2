"""The `scalegym` command line: argument parsing and dispatch; the work lives in the library."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from scalegym.cli.agents import add_plan_command, add_train_command
from scalegym.cli.common import EXIT_FAILURE, EXIT_USAGE, UsageError, fail
from scalegym.cli.envs import add_bench_command, add_list_command
from scalegym.cli.suites import add_report_command, add_run_command, add_tb_command
from scalegym.core.extras import MissingExtraError

__all__ = ["main"]


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
    try:
        return args.handler(args)
    except UsageError as err:
        return fail(str(err), EXIT_USAGE)
    except MissingExtraError as err:  # an optional package: one line with the install command
        return fail(str(err), EXIT_FAILURE)
    except KeyboardInterrupt:
        return fail("interrupted", 130)


def build_parser() -> argparse.ArgumentParser:
    """The full parser; each subcommand adds itself and sets `handler`."""
    parser = _Parser(
        prog="scalegym",
        description="JAX-vectorized RL environments, agents and benchmark suites.",
    )
    parser.set_defaults(handler=None)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    add_list_command(commands)
    add_bench_command(commands)
    add_run_command(commands)
    add_train_command(commands)
    add_plan_command(commands)
    add_report_command(commands)
    add_tb_command(commands)
    # Each subcommand adds itself the same way: an `add_<name>_command(commands)` that builds its
    # subparser and sets `handler` to a `_<name>(args) -> exit code` beside it.
    return parser
