"""Shared pieces of the CLI: exit codes, usage errors, option helpers and value parsers."""

from __future__ import annotations

import argparse
import ast
import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from scalegym.suites.rundir import write_text_atomic

# Exit codes: 0 success, 1 the command failed while running, 2 bad command line (usage),
# 130 interrupted (Ctrl-C).
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a Ctrl-C
DEFAULT_BATCH_SIZES = (1, 64, 1024, 4096, 16384)


class UsageError(Exception):
    """A command-line value that cannot work (unknown env id, bad param); exit code 2."""


class Interrupted(Exception):
    """Ctrl-C during the work: `kept` says what was saved, `resume` is the command that goes on
    (empty when nothing was saved yet); exit code 130."""

    def __init__(self, kept: str, resume: list[str]) -> None:
        super().__init__(kept)
        self.kept, self.resume = kept, resume


# ----------------------------------------------------------------------------------------- helpers


def add_import(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first, e.g. the one that registers your env: a module name "
        "(my_envs, searched in the working folder too) or a path to its .py file (repeatable)",
    )


def add_progress(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bars on stderr (default: when stderr is a terminal)",
    )


def add_devices(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--devices",
        type=positive_int,
        default=None,
        metavar="N",
        help="split the training env batch over the first N local devices (default: every "
        "local GPU or TPU; one CPU device)",
    )


def add_overrides(cmd: argparse.ArgumentParser, flag: str, dest: str, help_text: str) -> None:
    cmd.add_argument(
        flag,
        dest=dest,
        type=parse_override,
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help=f"{help_text}; VALUE is a Python literal or a string",
    )


def print_next_steps(run_dir: Path, *, to_stderr: bool) -> None:
    stream = sys.stderr if to_stderr else sys.stdout
    print(f"run directory: {run_dir}", file=stream)
    print(f"curves: scalegym tb {run_dir}", file=stream)


# ----------------------------------------------------------------------------------------- helpers


def batch_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        sizes = []
    if not sizes or any(b < 1 for b in sizes):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers like 1,64,1024, got {text!r}"
        )
    return sizes


def positive_int(text: str) -> int:
    """A count >= 1, also written as an integral float (`1e5`, `2.5e3`); `1.5` is refused."""
    try:
        value = int(text)
    except ValueError:
        value = _integral_float(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _integral_float(text: str) -> int:
    """`text` as an int when it is a finite float with no fractional part, else 0."""
    try:
        number = float(text)
    except ValueError:
        return 0
    return int(number) if math.isfinite(number) and number.is_integer() else 0


def parse_override(text: str) -> tuple[str, Any]:
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


def import_user_module(module: str) -> str:
    """Import `--import MODULE` (a module name or a path to a .py file); returns its name."""
    from scalegym.core.registry import import_env_module

    try:
        return import_env_module(module)
    except ImportError as err:
        raise UsageError(f"--import {module}: {err}") from None


def env_id_error(err: ValueError) -> UsageError:
    """A resolver's error as a usage error; an unknown id also says how to load one's own env."""
    message = str(err)
    if message.startswith("unknown env id"):
        message += (
            "; an env of your own? pass --import MODULE (the module that registers it, or a "
            "path to its .py file)"
        )
    return UsageError(message)


def check_existing_dir(path: Path, flag: str = "") -> None:
    """UsageError unless `path` is a folder: a missing one is named as missing."""
    where = f"{flag} {path}" if flag else str(path)
    if not path.exists():
        raise UsageError(f"{where}: no such directory")
    if not path.is_dir():
        raise UsageError(f"{where}: not a directory")


def check_devices(devices: int | None) -> None:
    """--devices past the local devices there are: refused before any work."""
    from scalegym.agents.devices import local_devices

    try:
        local_devices(devices)
    except ValueError as err:
        raise UsageError(f"--devices: {err} (on a CPU: JAX_NUM_CPU_DEVICES=N)") from None


def check_writable_dir(path: Path, flag: str) -> None:
    """UsageError naming `path` unless files can be created in it, or where it would be created.

    Tried for real (a temporary file in the nearest existing folder), so read-only mounts and
    missing permissions are caught before any work, whoever runs the command.
    """
    existing = Path(path)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{flag} {path}: cannot write there ({existing} is not a folder)")
    try:
        fd, tmp = tempfile.mkstemp(dir=existing, prefix=".scalegym-write-check-")
    except OSError as err:
        raise UsageError(
            f"{flag} {path}: cannot write there ({err.strerror}: {existing})"
        ) from None
    os.close(fd)
    os.unlink(tmp)


def write_json(path: Path, obj: dict[str, Any]) -> None:
    """Write atomically so an interrupted run never leaves a truncated file behind."""
    write_text_atomic(path, json.dumps(obj, indent=2) + "\n")


def fail(message: str, code: int) -> int:
    print(f"scalegym: error: {message}", file=sys.stderr)
    return code
