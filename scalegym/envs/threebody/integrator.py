"""`integrate`: one system's Hermite integration, and under `vmap` a batch that regroups lanes.

Under a plain `vmap` a while loop runs every lane until the slowest finishes: with substep counts
as heavy-tailed as the three-body problem's (median 90, max ≈ 22k per env step at μ = 1e-3), a
batch spends nearly all its time on a few systems in close encounters while the rest idle.

`integrate_lanes` runs the same substeps (`hermite.advance`, lane for lane the same arithmetic)
in phases. Lanes live in slots; before each phase the running lanes are moved to the front of the
group stepped last (only that prefix is sorted and copied), and only the smallest bucket (a power
of two, at least `MIN_BUCKET`) that holds them is stepped, until its runners fit the next smaller
bucket; the rest wait without cost. Every bucket stepped is thus more than half busy, a batch of
B lanes regroups about log2(B) times per call, and the smallest bucket runs its lanes to the
end. A batch then costs about its total work plus the slowest lane's latency, instead of B times
the slowest lane. That latency is a chain of substeps of one or two lanes; `scalegym.xla_cpu`
lets XLA:CPU compile such a loop into one kernel (0.2 µs per substep of 2 lanes, against 1.5 µs
as a series of ~110 kernels).

`integrate` reaches this through `jax.custom_batching.custom_vmap`: vmapping it (once,
or nested, e.g. seeds × envs: nested batches are flattened into one) calls `integrate_lanes`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.custom_batching import custom_vmap

from scalegym.envs.threebody import hermite

# The smallest group, run to its end without regrouping. Measured on the 2-core x86 CPU with
# `scalegym.xla_cpu`'s threshold (`benchmarks/hermite_substeps.py`): a substep of 1 lane costs
# 0.45 µs, of 2 lanes 0.20 µs, of 4 lanes 0.47 µs, of 8 lanes 0.88 µs.
MIN_BUCKET = 2


class Integration(NamedTuple):
    pos: jax.Array  # [N, D] at the end (or where the loop stopped)
    vel: jax.Array  # [N, D]
    substeps: jax.Array  # [] int32 Hermite steps taken
    capped: jax.Array  # [] bool: stopped at max_substeps before the end time
    nonfinite: jax.Array  # [] bool: the state stopped being finite
    next_dt: jax.Array  # [] Aarseth's step for the next call (the input's under the μ criterion)


def integrate(
    pos: jax.Array,
    vel: jax.Array,
    mass: jax.Array,
    duration: float | jax.Array,
    *,
    mu: float | jax.Array | None = None,
    eta: float | jax.Array | None = None,
    next_dt: float | jax.Array | None = None,
    max_substeps: int | jax.Array = 100_000,
) -> Integration:
    """Advance one system ([N, D] positions and velocities) by `duration`, landing exactly on it.

    Give `mu` (dt = μ · collision time, recomputed every step) or `eta` (Aarseth's criterion;
    `next_dt` carries its step between calls, ≤ 0 to start afresh). Under `jax.vmap` the batch
    runs through `integrate_lanes`, which regroups the lanes still running so that a few
    slow systems do not keep the whole batch busy (same results, lane for lane).
    """
    if (mu is None) == (eta is None):
        raise ValueError("integrate: give exactly one of mu (collision-time criterion) or eta")
    dtype = pos.dtype
    criterion = "mu" if eta is None else "eta"
    rate = jnp.asarray(mu if eta is None else eta, dtype)
    out = integrate_one(criterion)(
        pos,
        vel,
        jnp.asarray(mass, dtype),
        jnp.asarray(duration, dtype),
        rate,
        jnp.asarray(-1.0 if next_dt is None else next_dt, dtype),
        jnp.asarray(max_substeps, jnp.int32),
    )
    return Integration(*out)


Outputs = tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]


def bucket_sizes(lanes: int) -> list[int]:
    """Ascending group sizes: powers of two from MIN_BUCKET below `lanes`, then `lanes`."""
    sizes, size = [], MIN_BUCKET
    while size < lanes:
        sizes.append(size)
        size *= 2
    return [*sizes, lanes]


def lanes_of(x: jax.Array) -> hermite.Vectors:
    """[B, N, D] → N×D arrays [B]."""
    return tuple(tuple(x[:, i, d] for d in range(x.shape[2])) for i in range(x.shape[1]))


def stack_lanes(v: hermite.Vectors) -> jax.Array:
    """N×D arrays [B] → [B, N, D]."""
    return jnp.stack([jnp.stack(row, axis=-1) for row in v], axis=-2)


def take(tree: Any, idx: jax.Array) -> Any:
    return jax.tree.map(lambda x: x[idx], tree)


class Slots(NamedTuple):
    """Every lane's loop and constants, held in slot order: slot s holds lane `lane[s]`."""

    loop: hermite.Loop  # [B] leaves
    mass: tuple[jax.Array, ...]  # N × [B]
    rate: jax.Array  # [B]
    cap: jax.Array  # [B] int32 max_substeps
    lane: jax.Array  # [B] int32 the lane in each slot


def head(slots: Slots, size: int) -> Slots:
    """The first `size` slots (a static slice)."""
    return jax.tree.map(lambda x: x[:size], slots)


def put_head(slots: Slots, part: Slots) -> Slots:
    """`slots` with its first slots replaced by `part`."""
    return jax.tree.map(
        lambda full, p: jax.lax.dynamic_update_slice_in_dim(full, p, 0, 0), slots, part
    )


def compacted_loop(
    loop: hermite.Loop,
    mass: tuple[jax.Array, ...],
    rate: jax.Array,
    max_substeps: jax.Array,
    criterion: str,
) -> hermite.Loop:
    """Run every lane ([B] leaves) to its end, stepping only the group that holds the runners.

    Lanes live in slots. A phase moves the running lanes to the front of the group stepped last
    (nothing outside it still runs), then steps the smallest bucket that holds them until they fit
    the next smaller one; the smallest bucket instead runs until its lanes are done. Slots go
    back to lane order at the end.
    """
    lanes = loop.remaining.shape[0]
    sizes = bucket_sizes(lanes)

    def substep(group: Slots) -> Slots:
        active = hermite.running(group.loop, group.cap)
        new = hermite.advance(group.loop, group.mass, group.rate, criterion)
        return group._replace(loop=hermite.keep_where(active, new, group.loop))

    def count_running(group: Slots) -> jax.Array:
        return jnp.sum(hermite.running(group.loop, group.cap), dtype=jnp.int32)

    def compact(size: int, slots: Slots) -> tuple[Slots, jax.Array]:
        group = head(slots, size)
        active = hermite.running(group.loop, group.cap)
        group = take(group, jnp.argsort(~active, stable=True))  # running lanes first
        return put_head(slots, group), jnp.sum(active, dtype=jnp.int32)

    def step(index: int, slots: Slots) -> Slots:
        group = head(slots, sizes[index])
        # Until the runners fit the next smaller bucket (the smallest runs them out).
        fits = 0 if index == 0 else sizes[index - 1]
        group = jax.lax.while_loop(lambda g: count_running(g) > fits, substep, group)
        return put_head(slots, group)

    def phase(carry: tuple[Slots, jax.Array, jax.Array]) -> tuple[Slots, jax.Array, jax.Array]:
        slots, last, _ = carry  # last: the bucket stepped before, which holds every runner
        compactions = [functools.partial(compact, size) for size in sizes]
        slots, count = jax.lax.switch(last, compactions, slots)
        index = jnp.searchsorted(jnp.asarray(sizes), count).astype(jnp.int32)  # fits `count`
        steps = [functools.partial(step, i) for i in range(len(sizes))]
        return jax.lax.switch(index, steps, slots), index, index == 0  # the last bucket: done

    slots = Slots(loop, mass, rate, max_substeps, jnp.arange(lanes, dtype=jnp.int32))
    slots = step(len(sizes) - 1, slots)  # every lane runs at first: nothing to regroup yet
    start = (slots, jnp.asarray(len(sizes) - 1, jnp.int32), count_running(slots) == 0)
    slots, _, _ = jax.lax.while_loop(lambda carry: ~carry[2], phase, start)
    return take(slots.loop, jnp.argsort(slots.lane))  # back to lane order


def run_lanes(
    pos: jax.Array,
    vel: jax.Array,
    mass: jax.Array,
    duration: jax.Array,
    rate: jax.Array,
    next_dt: jax.Array,
    max_substeps: jax.Array,
    criterion: str,
) -> Outputs:
    """Integrate B systems ([B, N, D], [B, N], [B] ...) with regrouping; outputs batched [B]."""
    masses = tuple(mass[:, i] for i in range(mass.shape[1]))
    loop = hermite.start_loop(
        lanes_of(pos), lanes_of(vel), masses, duration, rate, next_dt, criterion
    )
    loop = compacted_loop(loop, masses, rate, max_substeps, criterion)
    return outputs(loop, max_substeps, stack_lanes)


def outputs(
    loop: hermite.Loop, max_substeps: jax.Array, to_array: Callable[[hermite.Vectors], jax.Array]
) -> Outputs:
    """The finished loop as `Integration`'s fields (positions and velocities as arrays)."""
    return (
        to_array(loop.pos),
        to_array(loop.vel),
        loop.substeps,
        hermite.capped_of(loop, max_substeps),
        ~loop.finite,
        loop.next_dt,
    )


def broadcast_args(axis_size: int, in_batched: list[bool], args: tuple) -> list[jax.Array]:
    return [
        x if batched else jnp.broadcast_to(x, (axis_size, *jnp.shape(x)))
        for x, batched in zip(args, in_batched, strict=True)
    ]


@functools.cache
def integrate_lanes(criterion: str) -> Callable[..., Outputs]:
    """The batched integrator of `criterion` (custom_vmap: a further vmap flattens into it)."""

    @custom_vmap
    def lanes(*args: jax.Array) -> Outputs:
        return run_lanes(*args, criterion=criterion)

    @lanes.def_vmap
    def lanes_vmap(axis_size: int, in_batched: list[bool], *args: jax.Array) -> Any:
        full = broadcast_args(axis_size, in_batched, args)
        inner = full[0].shape[1]  # [A, B, ...] → [A·B, ...]
        flat = [x.reshape(axis_size * inner, *x.shape[2:]) for x in full]
        out = lanes(*flat)
        return tuple(y.reshape(axis_size, inner, *y.shape[1:]) for y in out), (True,) * 6

    return lanes


@functools.cache
def integrate_one(criterion: str) -> Callable[..., Outputs]:
    """One system's integrator of `criterion`; its vmap runs `integrate_lanes`."""

    @custom_vmap
    def one(
        pos: jax.Array,
        vel: jax.Array,
        mass: jax.Array,
        duration: jax.Array,
        rate: jax.Array,
        next_dt: jax.Array,
        max_substeps: jax.Array,
    ) -> Outputs:
        masses = tuple(mass)
        loop = hermite.integrate_loop(
            hermite.split(pos),
            hermite.split(vel),
            masses,
            duration,
            rate,
            next_dt,
            max_substeps,
            criterion,
        )
        return outputs(loop, max_substeps, hermite.stack)

    @one.def_vmap
    def one_vmap(axis_size: int, in_batched: list[bool], *args: jax.Array) -> Any:
        out = integrate_lanes(criterion)(*broadcast_args(axis_size, in_batched, args))
        return out, (True,) * 6

    return one
