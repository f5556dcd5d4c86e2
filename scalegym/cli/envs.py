"""`scalegym list` and `scalegym bench`: what is registered and how fast an env steps."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scalegym.cli.common import (
    DEFAULT_BATCH_SIZES,
    EXIT_FAILURE,
    EXIT_OK,
    UsageError,
    add_import,
    add_overrides,
    add_progress,
    batch_sizes,
    check_devices,
    check_writable_dir,
    env_id_error,
    fail,
    import_user_module,
    positive_int,
    write_json,
)

if TYPE_CHECKING:
    from scalegym.core.resolve import ResolvedEnv

# -------------------------------------------------------------------------------------------- list


def add_list_command(commands: Any) -> None:
    cmd = commands.add_parser(
        "list",
        help="list envs, shipped suites, agents and planners",
        description=(
            "List what scalegym has: every registered env (JAX envs, float64 ones probed under "
            "x64, and host envs such as scalegym/ThreeBodyRebound-v0) with its observation and "
            "action spaces; the shipped suites (scalegym run NAME) with a one-line description "
            "and the wall time of their reference run under results/reference/ ('not measured' "
            "when there is none); and the agents (scalegym train) and planners (scalegym plan)."
        ),
    )
    add_import(cmd)
    cmd.add_argument("--json", action="store_true", help="print one JSON object to stdout")
    cmd.set_defaults(handler=_list)


def _list(args: argparse.Namespace) -> int:
    from scalegym.agents import registry
    from scalegym.cli.catalog import env_rows, suite_rows

    for module in args.imports:
        import_user_module(module)
    listing = {"envs": env_rows(), "suites": suite_rows(), "agents": registry.describe()}
    if args.json:
        print(json.dumps(listing))
        return EXIT_OK
    from rich.console import Console

    console = Console()
    console.print(env_table(listing["envs"]))
    console.print(suite_table(listing["suites"]))
    console.print(agent_table(listing["agents"]))
    return EXIT_OK


def env_table(rows: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table(title="scalegym envs")
    for column in ("id", "kind", "observation space", "action space"):
        table.add_column(column)
    for row in rows:
        if "error" in row:
            table.add_row(row["id"], "", f"[red]unavailable: {row['error']}[/red]", "")
            continue
        kind = row["kind"] + (" (float64)" if row["x64"] else "")
        table.add_row(row["id"], kind, row["observation_space"], row["action_space"])
    return table


def suite_table(rows: list[dict[str, Any]]) -> Any:
    """The shipped suites; the "reference run" column is their measured wall time."""
    from rich.table import Table

    from scalegym.cli.catalog import measured_text

    table = Table(title="shipped suites (scalegym run NAME)")
    for column in ("name", "what", "reference run"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["name"], row["description"], measured_text(row["measured"]))
    return table


def agent_table(agents: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table(title="agents and planners")
    for column in ("name", "roles", "what", "needs"):
        table.add_column(column)
    for agent in agents:
        table.add_row(
            agent["name"], ", ".join(agent["roles"]), agent["summary"], agent["needs"] or ""
        )
    return table


# ------------------------------------------------------------------------------------------- bench


def add_bench_command(commands: Any) -> None:
    cmd = commands.add_parser(
        "bench",
        help="env-only steps per second over batch sizes",
        description=(
            "Measure env-only steps per second (random actions, or --action, pre-sampled; "
            "compilation timed apart, median over repeats; every observation leaf, the reward "
            "and the done flags "
            "feed the result, as an agent reads them) for a scalegym, gymnax:, xminigrid:, "
            "navix:, module: or gymnasium env id."
        ),
    )
    cmd.add_argument("env_id", metavar="ENV_ID", help="e.g. Rearrange-v1, gymnax:CartPole-v1")
    cmd.add_argument(
        "--batch-sizes",
        type=batch_sizes,
        default=list(DEFAULT_BATCH_SIZES),
        metavar="B1,B2,...",
        help=f"comma-separated batch sizes (default {','.join(map(str, DEFAULT_BATCH_SIZES))})",
    )
    cmd.add_argument("--steps", type=positive_int, default=256, help="steps per timed run")
    cmd.add_argument("--repeats", type=positive_int, default=5, help="timed runs per batch size")
    cmd.add_argument("--seed", type=int, default=0, help="seed for actions and resets")
    cmd.add_argument(
        "--action",
        type=int,
        metavar="A",
        help="take action A in every step instead of random actions (a Discrete space's index; "
        "e.g. ThreeBody's 6 is mu = 1e-2, 3 is mu = 1e-3)",
    )
    add_overrides(cmd, "--set", "overrides", "env param override (repeatable)")
    add_import(cmd)
    cmd.add_argument(
        "--no-obs",
        dest="consume_obs",
        action="store_false",
        help="diagnostic: leave the observation out of what each step must produce (XLA then "
        "drops it); the difference to the default is what the observation costs",
    )
    cmd.add_argument(
        "--devices",
        type=positive_int,
        default=None,
        metavar="N",
        help="split each batch over the first N local devices, each stepping its share on its "
        "own (default: the most devices the batch divides evenly over; scalegym gives the CPU "
        "one device per core unless JAX_NUM_CPU_DEVICES is set)",
    )
    cmd.add_argument("--out", type=Path, metavar="PATH", help="also write the JSON to PATH")
    cmd.add_argument("--json", action="store_true", help="print one JSON object to stdout")
    add_progress(cmd)
    cmd.set_defaults(handler=_bench)


def _bench(args: argparse.Namespace) -> int:
    from scalegym.core.resolve import resolve_env

    for module in args.imports:
        import_user_module(module)
    if args.out is not None:  # before measuring: a result that cannot be written is lost work
        check_writable_dir(args.out.parent, "--out")
    overrides = dict(args.overrides)
    try:
        resolved = resolve_env(args.env_id, **overrides)
    except ValueError as err:
        raise env_id_error(err) from None
    if args.devices is not None and args.devices > 1 and resolved.kind != "jax":
        raise UsageError(f"--devices {args.devices}: {args.env_id} is a host env")
    check_devices(args.devices)
    with resolved.precision():  # x64 only for an env that declares float64 physics
        report = _measure(resolved, args)
    if args.json:
        print(json.dumps(report))
    else:
        _print_bench_table(report)
    if args.out is not None:
        write_json(args.out, report)
        print(f"results: {args.out}", file=sys.stderr if args.json else sys.stdout)
    for failure in report["failed"]:
        print(
            f"scalegym: batch size {failure['batch_size']:,} failed: {failure['error']}",
            file=sys.stderr,
        )
    if report["failed"]:
        sizes = ", ".join(f"{f['batch_size']:,}" for f in report["failed"])
        return fail(f"bench {args.env_id}: batch size(s) {sizes} failed", EXIT_FAILURE)
    return EXIT_OK


def _measure(resolved: ResolvedEnv, args: argparse.Namespace) -> dict[str, Any]:
    from scalegym.suites.measures import bench_report

    # Failures at one batch size are kept in the report; what escapes is a bad argument.
    try:
        return bench_report(
            resolved,
            args.batch_sizes,
            args.steps,
            args.repeats,
            args.seed,
            overrides=dict(resolved.overrides),
            progress=args.progress,
            consume_obs=args.consume_obs,
            devices=args.devices,
            action=args.action,
        )
    except ValueError as err:
        raise UsageError(str(err)) from None


def split_label(rows: list[dict[str, Any]]) -> str:
    """The device counts the rows' batches were split over: `2`, or `1 (B = 1), 2 (B = 64)`."""
    from scalegym.suites.measures import sizes_by_split

    sizes = sizes_by_split(rows)
    if len(sizes) <= 1:
        return str(next(iter(sizes), 1))
    listed = {n: ", ".join(f"{b:,}" for b in found) for n, found in sizes.items()}
    return ", ".join(f"{n} (B = {found})" for n, found in listed.items())


def actions_label(action: int | None) -> str:
    return "random" if action is None else f"{action} in every step"


def _print_bench_table(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{report['env']} ({report['kind']}): env steps per second")
    table.add_column("batch size", justify="right")
    table.add_column("median SPS", justify="right")
    table.add_column("min – max SPS", justify="right")
    table.add_column("compile s", justify="right")
    # An integrator env (ThreeBody) also reports its substeps and the lanes vmap left idle.
    substeps = any("substeps_per_s" in row for row in report["results"])
    if substeps:
        table.add_column("substeps/s", justify="right")
        table.add_column("idle lanes", justify="right")
    for row in report["results"]:
        cells = [
            f"{row['batch_size']:,}",
            f"{row['sps']:,.0f}",
            f"{row['sps_min']:,.0f} – {row['sps_max']:,.0f}",
            f"{row['compile_s']:.2f}",
        ]
        if substeps:
            idle = row.get("idle_lanes")  # a host env's integrator has no lanes
            cells += [
                f"{row.get('substeps_per_s', 0):,.0f}",
                "–" if idle is None else f"{idle:.0%}",
            ]
        table.add_row(*cells)
    for failure in report.get("failed", []):
        table.add_row(f"{failure['batch_size']:,}", "failed", "see below", "–")
    console = Console()
    console.print(table)
    if substeps:
        console.print(
            "idle lanes: the share of lane-steps left waiting. Under vmap a batch's env step "
            "lasts as many integrator substeps as its slowest env needs; the other envs idle "
            "until it is done (1 − substeps done ÷ (batch size × the slowest env's substeps))."
        )
    device = report["device"]
    console.print(
        f"device: {device['backend']} ({device['device_kind']}) x{device['num_devices']}, "
        f"{device['cpu_count']} CPUs, {device['processor']}; jax {report['jax']}; "
        f"{report['num_steps']} steps x {report['repeats']} repeats; "
        f"batch split over {split_label(report['results'])} device(s); "
        f"actions: {actions_label(report.get('action'))}; "
        f"each step consumes: {report['consumes']}"
    )
