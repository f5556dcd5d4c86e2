"""Hermite substeps per second of the integrator alone: the lane schedule, and its parts.

    .venv/bin/python benchmarks/hermite_substeps.py [--batch-sizes 64,1024,16384] [--steps 16]

1. The schedule (`integrator.LaneSchedule`) on the bench's kind of work: the paper's training
   systems 0..B-1 (`initial_conditions.py`), each integrated for `--steps` env steps (0.1 yr
   each) with a μ drawn at random for every lane and step, as `scalegym bench ThreeBody-v0` does
   (but without the env around it: no resets, observations or rewards). Reported: substeps per
   second, the idle-lane fraction (lane-steps stepped for lanes already done, over all
   lane-steps, counted by `integrator.schedule_lanes`) and the share of substeps taken while the
   lanes still running fit a group smaller than a tile (the tail, where a substep's latency
   rather than its throughput sets the time).
   `--schedules` compares several schedules back to back in one process; `--action A` fixes
   μ = rules.MU_ACTIONS[A] for every lane and step (e.g. 9, μ = 0.1: a few substeps a lane,
   so the schedule's own cost shows).
2. One substep by the number of lanes stepped together (a plain vmap of the Hermite loop, 2,000
   substeps at μ = 1e-4 with nothing finishing): what a tile or a group of the schedule costs,
   and whether XLA:CPU compiled the loop as one kernel (`scalegym.xla_cpu`).

Medians of `--repeats` runs, compile excluded; the load average is printed beside them, since
other work on the machine moves these numbers.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import re
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

from scalegym.envs.threebody import hermite, integrator, rules  # noqa: E402
from scalegym.envs.threebody import initial_conditions as ic  # noqa: E402

CAP = 50_000  # ThreeBody-v0's default max_substeps


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    jax.block_until_ready(fn())  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def random_mu_run(
    batch: int, steps: int, schedule: integrator.LaneSchedule
) -> Callable[[jax.Array, jax.Array, jax.Array], tuple[jax.Array, jax.Array]]:
    """`run(pos, vel, actions [steps, B])` → (substeps [steps, B], lane-steps [steps])."""
    mass = jnp.broadcast_to(jnp.asarray(ic.MASSES), (batch, 3))
    mus = jnp.asarray(rules.MU_ACTIONS)
    duration = jnp.full(batch, ic.ENV_STEP_TIME)
    no_step = jnp.full(batch, -1.0)
    cap = jnp.full(batch, CAP, jnp.int32)

    @jax.jit
    def run(pos: jax.Array, vel: jax.Array, actions: jax.Array) -> tuple[jax.Array, jax.Array]:
        def env_step(carry: tuple, action: jax.Array) -> tuple:
            pos, vel = carry
            out, work = integrator.schedule_lanes(
                pos, vel, mass, duration, mus[action], no_step, cap, "mu", schedule
            )
            return (out[0], out[1]), (out[2], work)

        _, (substeps, work) = jax.lax.scan(env_step, (pos, vel), actions)
        return substeps, work

    return run


def schedule_table(args: argparse.Namespace, schedules: list[integrator.LaneSchedule]) -> None:
    print("| batch | schedule | substeps/s | idle lanes | tail share | ms per env step | load |")
    print("|---|---|---|---|---|---|---|")
    for batch in args.batch_sizes:
        table = jnp.asarray(ic.initial_condition_table(batch))
        pos, vel = table[:, 0], table[:, 1]
        shape = (args.steps, batch)
        if args.action is None:
            actions = jnp.asarray(np.random.default_rng(0).integers(0, 10, shape))
        else:  # one μ for every lane and step (rules.MU_ACTIONS[action])
            actions = jnp.full(shape, args.action)
        runs = [random_mu_run(batch, args.steps, s) for s in schedules]
        results = [jax.block_until_ready(run(pos, vel, actions)) for run in runs]  # compile
        times: list[list[float]] = [[] for _ in runs]
        for _ in range(args.repeats):  # alternating, so that load changes hit each alike
            for i, run in enumerate(runs):
                start = time.perf_counter()
                jax.block_until_ready(run(pos, vel, actions))
                times[i].append(time.perf_counter() - start)
        for schedule, (substeps, work), seconds in zip(schedules, results, times, strict=True):
            counts = np.asarray(substeps, np.int64)
            np.testing.assert_array_equal(counts, np.asarray(results[0][0]))  # same lanes
            total, offered = counts.sum(), np.asarray(work, np.int64).sum()
            # The tail: substeps taken while the lanes fit a group smaller than a tile.
            ordered = -np.sort(-counts, axis=1)
            fits = [0, *schedule.group_sizes(batch)][-2]  # the largest group below the tile
            tail = np.maximum(ordered - ordered[:, fits : fits + 1], 0).sum() if fits else 0
            med = statistics.median(seconds)
            print(
                f"| {batch:,} | tile {schedule.tile}, chunk {schedule.chunk}, groups "
                f"{schedule.groups}, K {schedule.substeps_per_iteration} | "
                f"{total / med / 1e6:.2f}M | {1 - total / offered:.0%} | {tail / total:.0%} | "
                f"{med / args.steps * 1e3:.1f} | {load()} |"
            )


def plain_loop(pos: jax.Array, vel: jax.Array, mass: jax.Array, substeps: int, k: int) -> jax.Array:
    """One system's Hermite loop without regrouping (a vmap steps every lane together)."""
    loop = hermite.integrate_loop(
        hermite.split(pos),
        hermite.split(vel),
        tuple(mass),
        jnp.float64(1e9),  # nothing finishes: every lane runs `substeps`
        jnp.float64(1e-4),
        jnp.float64(-1.0),
        jnp.int32(substeps),
        "mu",
        k,
    )
    return loop.substeps


def latency_table(args: argparse.Namespace) -> None:
    print("| lanes stepped together | K | µs per substep | lane-substeps/s | one kernel | load |")
    print("|---|---|---|---|---|---|")
    table = jnp.asarray(ic.initial_condition_table(max(args.lanes)))
    for lanes in args.lanes:
        for k in args.k:
            pos, vel = table[:lanes, 0], table[:lanes, 1]
            mass = jnp.broadcast_to(jnp.asarray(ic.MASSES), (lanes, 3))
            loop = jax.jit(jax.vmap(lambda p, v, m, k=k: plain_loop(p, v, m, 2000, k)))
            hoisted = "xla_cpu_small_call" in loop.lower(pos, vel, mass).compile().as_text()
            call = functools.partial(loop, pos, vel, mass)
            seconds = median_seconds(call, args.repeats) / 2000
            print(
                f"| {lanes} | {k} | {seconds * 1e6:.2f} | {lanes / seconds / 1e6:.1f}M | "
                f"{'yes' if hoisted else 'no'} | {load()} |"
            )


def lane_schedule(spec: str) -> integrator.LaneSchedule:
    """'tile=64,chunk=32,groups=2/4/8' → LaneSchedule."""
    fields: dict[str, object] = {}
    for item in spec.split(","):
        key, value = (part.strip() for part in item.split("="))
        fields[key] = tuple(ints(value.replace("/", ","))) if key == "groups" else int(value)
    return integrator.LaneSchedule(**fields)  # type: ignore[arg-type]


def ints(text: str) -> list[int]:
    return [int(x) for x in re.split(r"[,\s]+", text.strip()) if x]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=ints, default=[64, 1024, 16384])
    parser.add_argument("--steps", type=int, default=16, help="env steps per timed run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--schedules",
        default="",
        help="';'-separated LaneSchedule fields, e.g. 'tile=64;tile=32,chunk=128,groups=2/8' "
        "(default: the default schedule)",
    )
    parser.add_argument(
        "--action",
        type=int,
        choices=range(len(rules.MU_ACTIONS)),
        help="one μ (rules.MU_ACTIONS[A]) for every lane and step instead of random ones",
    )
    parser.add_argument("--lanes", type=ints, default=[1, 2, 4, 8, 16, 32, 64, 128, 1024])
    parser.add_argument("--k", type=ints, default=[1], help="substeps per loop iteration")
    parser.add_argument("--skip", choices=["schedule", "latency"], action="append", default=[])
    args = parser.parse_args()
    schedules = [lane_schedule(spec) for spec in args.schedules.split(";") if spec.strip()] or [
        integrator.DEFAULT_SCHEDULE
    ]
    backend = f"{jax.device_count()} {jax.default_backend()} device(s)"
    print(f"{platform.machine()}, {os.cpu_count()} CPUs, {backend}, jax {jax.__version__}")
    print(f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')}")
    if "schedule" not in args.skip:
        schedule_table(args, schedules)
        print()
    if "latency" not in args.skip:
        latency_table(args)


if __name__ == "__main__":
    main()
