"""The `scalegym` command line: argument parsing and dispatch; the work lives in the library."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from typing import NoReturn

from scalegym.cli.agents import add_plan_command, add_train_command
from scalegym.cli.common import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    Interrupted,
    UsageError,
    fail,
)
from scalegym.cli.envs import add_bench_command, add_list_command
from scalegym.cli.suites import add_report_command, add_run_command, add_tb_command
from scalegym.core.extras import MissingExtraError

__all__ = ["build_parser", "entry", "main"]

_TRAIN_BUDGET = "scalegym train runs --steps env steps per seed"
_PLAN_BUDGET = "a planner (scalegym plan) plays --episodes episodes at --budget steps per decision"
# A flag of one command given to another: why it does not apply there, and what does.
MISPLACED_FLAGS: dict[str, dict[str, str]] = {
    "plan": {
        "--steps": f"it is a training budget (scalegym train); {_PLAN_BUDGET}",
        "--agent": "it names a training agent (scalegym train); a planner is chosen with --planner",
        "--agent-set": "it sets a training agent's config (scalegym train); use --planner-set",
        "--out": "a planner writes no run directory; --json prints its summary",
        "--resume": "a planner keeps no checkpoint to resume",
    },
    "train": {
        "--episodes": f"it counts a planner's episodes (scalegym plan); {_TRAIN_BUDGET}",
        "--budget": f"it is a planner's simulated steps per decision (scalegym plan); "
        f"{_TRAIN_BUDGET}",
        "--planner": "planners have their own command, scalegym plan ENV --planner NAME "
        "--budget N; train takes --agent",
        "--planner-set": "it sets a planner's options (scalegym plan); train takes --agent-set",
        "--checkpoint": "it guides a planner (scalegym plan); train continues its own run with "
        "--resume --out DIR",
    },
}


class _Parser(argparse.ArgumentParser):
    """argparse with each error in one line, `scalegym <command>: error: ...`, and a pointer to
    the command's --help instead of the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def entry() -> int:
    """The `scalegym` console script: JAX's CPU backend gets one device per usable core (before
    the first computation; `scalegym.agents.devices.one_cpu_device_per_core`), then `main`."""
    from scalegym.agents.devices import one_cpu_device_per_core

    one_cpu_device_per_core()
    return main()


def main(argv: Sequence[str] | None = None) -> int:
    """Run `scalegym ARGS`; returns the exit code (0 ok, 1 failed while running, 2 usage,
    130 interrupted)."""
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:
            parser.exit(EXIT_USAGE, misplaced_message(args.command, extra) + "\n")
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
    except Interrupted as stop:  # what was kept, and the command that goes on from it
        fail(f"interrupted; {stop.kept}" + ("; continue with:" if stop.resume else ""), 0)
        if stop.resume:
            print(f"  {shlex.join(stop.resume)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        return fail("interrupted", EXIT_INTERRUPTED)


def misplaced_message(command: str | None, extra: list[str]) -> str:
    """One line for arguments `command` does not take: why, for a flag of another command."""
    prog = f"scalegym {command}" if command else "scalegym"
    for token in extra:
        flag = token.partition("=")[0]
        reason = MISPLACED_FLAGS.get(command or "", {}).get(flag)
        if reason:
            return f"{prog}: error: {flag} does not apply here: {reason}"
    return f"{prog}: error: unrecognized arguments: {' '.join(extra)}; see {prog} --help"


def build_parser() -> argparse.ArgumentParser:
    """The full parser; each subcommand adds itself and sets `handler`."""
    parser = _Parser(
        prog="scalegym",
        description="JAX-vectorized RL environments, agents and benchmark suites.",
    )
    parser.set_defaults(handler=None, command=None)
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
    for name, command in commands.choices.items():
        command.set_defaults(command=name)
    return parser
