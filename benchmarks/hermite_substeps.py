"""Hermite substeps per second of the integrator alone: regrouped lanes against a plain vmap.

    .venv/bin/python benchmarks/hermite_substeps.py [--batch 1024]

The paper's training systems 0..B-1 (`initial_conditions.py`), each integrated from its initial
condition for 1 and for 10 env steps (0.1 yr each) at one fixed μ for every lane. Medians of 7
repeats, compile excluded. "useful" counts the substeps the lanes needed; a plain vmap also
steps every finished lane until the slowest is done, which its "lane-steps" column counts. The
last table is one substep's latency by the number of lanes stepped together (a plain vmap of
the Hermite loop, 2,000 substeps at μ = 1e-4): what the slowest lane of a batch costs.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

from scalegym.envs.threebody import hermite, integrator  # noqa: E402
from scalegym.envs.threebody import initial_conditions as ic  # noqa: E402

MUS = (1e-3, 1e-2)
ENV_STEPS = (1, 10)


def median_seconds(fn: Callable[[], object], repeats: int = 7) -> float:
    jax.block_until_ready(fn())  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def plain_loop(
    pos: jax.Array, vel: jax.Array, mass: jax.Array, duration: float, mu: float, cap: int
) -> hermite.Loop:
    """One system's Hermite loop without the regrouping rule (a vmap steps every lane)."""
    return hermite.integrate_loop(
        hermite.split(pos),
        hermite.split(vel),
        tuple(mass),
        jnp.float64(duration),
        jnp.float64(mu),
        jnp.float64(-1.0),
        jnp.int32(cap),
        "mu",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1024)
    batch = parser.parse_args().batch
    table = jnp.asarray(ic.initial_condition_table(batch))  # [B, 2, 3, 2]
    pos, vel = table[:, 0], table[:, 1]
    mass = jnp.broadcast_to(jnp.asarray(ic.MASSES), (batch, 3))
    backend = f"{jax.device_count()} {jax.default_backend()} device(s)"
    print(f"{platform.machine()}, {backend}, jax {jax.__version__}")
    print(f"batch {batch}; Mss = million substeps per second")
    columns = ["μ", "env steps", "substeps per lane: mean / max", "regrouped Mss"]
    columns += ["plain vmap useful Mss", "plain lane-steps Mss"]
    print("| " + " | ".join(columns) + " |")
    print("|---|---|---|---|---|---|")
    for mu in MUS:
        for steps in ENV_STEPS:
            duration = steps * ic.ENV_STEP_TIME

            def regrouped(p, v, m, duration=duration, mu=mu):
                return integrator.integrate(p, v, m, duration, mu=mu, max_substeps=50_000).substeps

            def plain(p, v, m, duration=duration, mu=mu):
                return plain_loop(p, v, m, duration, mu, 50_000).substeps

            fast, slow = jax.jit(jax.vmap(regrouped)), jax.jit(jax.vmap(plain))
            counts = np.asarray(fast(pos, vel, mass))
            np.testing.assert_array_equal(counts, np.asarray(slow(pos, vel, mass)))
            t_fast = median_seconds(lambda f=fast: f(pos, vel, mass))
            t_slow = median_seconds(lambda f=slow: f(pos, vel, mass))
            total = counts.sum()
            print(
                f"| {mu:g} | {steps} | {counts.mean():.0f} / {counts.max()} | "
                f"{total / t_fast / 1e6:.2f} | {total / t_slow / 1e6:.2f} | "
                f"{batch * counts.max() / t_slow / 1e6:.2f} |"
            )
    print()
    print("| lanes stepped together | µs per substep | lane-substeps per second |")
    print("|---|---|---|")
    for lanes in (1, 2, 4, 8, 16, 64, 256, batch):
        loop = jax.jit(jax.vmap(lambda p, v, m: plain_loop(p, v, m, 50.0, 1e-4, 2000).substeps))
        args = (pos[:lanes], vel[:lanes], mass[:lanes])
        iterations = int(np.asarray(loop(*args)).max())
        seconds = median_seconds(lambda loop=loop, args=args: loop(*args)) / iterations
        print(f"| {lanes} | {seconds * 1e6:.2f} | {lanes / seconds / 1e6:.2f}M |")


if __name__ == "__main__":
    main()
