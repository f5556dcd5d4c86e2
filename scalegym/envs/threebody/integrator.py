"""`integrate`: one system's Hermite integration, and under `vmap` a batch that regroups lanes.

Over 400 lines: the schedule, its lane table and its measurements belong together here.

Under a plain `vmap` a while loop runs every lane until the slowest finishes: with substep counts
as heavy-tailed as the three-body problem's (median 90, max ≈ 22k per env step at μ = 1e-3), a
batch spends nearly all its time on a few systems in close encounters while the rest idle.

`schedule_lanes` runs the same substeps (`hermite.advance`, lane for lane the same arithmetic)
in rounds over a table of lanes ([R, B] floats and [4, B] ints, so that moving lanes costs two
gathers however many fields a lane has). Each round moves the lanes still running to the front
of the slots stepped last, then (`LaneSchedule`)

- while more than a tile's worth run, steps them tile by tile (`tile` lanes), each tile for at
  most `chunk` substeps or until at most `tile_exit` (a share) of its lanes still run: a
  finished lane waits at most until its tile stops, and the next round drops it (after the
  round's compaction every tile but the last is full, so each round advances);
- once a tile holds them all, steps only the smallest group holding them (`groups`, then the
  tile) until they fit the next smaller one; the smallest runs its lanes to the end.

Every loop is thus at most a tile wide, and a tile's loop is small enough that XLA:CPU compiles
it as one kernel (`scalegym.xla_cpu`). Measured on the 2-core CPU (`benchmarks/hermite_substeps.py`,
load 1–4): 64 lanes step at 1.9–2.0 µs per substep, where one loop over 1,024 lanes dispatches
~64 kernels per substep and takes 71–93 µs (32–33M lane-substeps/s against 11–14M). Tiles of 64
with one substep per loop iteration (K = 1) measured best: 80 lanes no longer fit one kernel
(10–15 µs per substep), and K = 2 (no state copies between iterations) fits 32 lanes (28–29M
lane-substeps/s) but not 64. Tile 32 or 64, chunk 32–128, other group sizes and K = 2 in the
groups were within noise of each other on the bench. A tile that stops once half its lanes are
done (`tile_exit` 0.5, against 0: run the chunk while any lane runs) took the idle lane-steps of
the bench's 16 env steps from 69% to 23% at one μ = 1e-2 (most lanes need ~13 substeps, a few
hundreds), 5.9M → 7.5M substeps/s at batch 1,024, 18.0M → 19.8M at 16,384 (random μ), and was
within noise at random μ and 1,024 (14.0M against 13.8M) and at μ = 1e-3 (14.4M against 14.1M).

Moving lanes takes prefix sums and a scatter (`running_first`, `inverse`), not sorts, and the
first sweep of an env step runs without a compaction (every lane may run then). Against two
sorts a round and a compaction before the first sweep, the integrator alone at one μ for every
lane (16 env steps, medians of 7, both alternated in one process, one device, load 1.4–1.7):
batch 1,024 at μ = 0.1 (~2 substeps a lane) 1.11 → 0.74 ms per env step, at 1e-2 2.39 → 1.76,
at 1e-3 8.11 → 7.03; batch 512 0.71 → 0.65, 1.47 → 1.30, 4.38 → 4.24. The results are the same
lane for lane. In the env bench at 1,024 over two devices (512 a device) the difference is within
the machine's noise.

What remains is the tail: fewer lanes than a tile, each substep of a group of 2–8 costing
0.24–0.6 µs (scalar code, about one scalar C implementation's speed per lane), and the slowest
lane's chain of tens of thousands of substeps in the group of 2. On a GPU, where a kernel launch
costs more than a tile's arithmetic, a tile as large as the batch and K > 1 are likely better
(`integrate(..., schedule=...)`, or ThreeBody's `lane_schedule` param); neither has been measured
there.

`integrate` reaches this through `jax.custom_batching.custom_vmap`: vmapping it (once,
or nested, e.g. seeds × envs: nested batches are flattened into one) calls `integrate_lanes`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.custom_batching import custom_vmap

from scalegym.envs.threebody import hermite


@dataclass(frozen=True)
class LaneSchedule:
    """How `integrate_lanes` steps a batch (module docstring); each lane's arithmetic is the
    same whatever it is. The defaults are the 2-core x86 CPU's best (measured); a GPU likely
    wants one tile for the whole batch."""

    tile: int = 64  # lanes stepped together while many run (one compiled kernel on a CPU)
    chunk: int = 64  # substeps a tile runs before the batch regroups
    groups: tuple[int, ...] = (2, 4, 8, 16, 32)  # smaller groups, ascending; the first runs out
    substeps_per_iteration: int = 1  # K substeps per loop iteration (tiles and groups)
    tile_exit: float = 0.5  # a tile stops once at most this share of its lanes runs (0..1)

    def __post_init__(self) -> None:
        if min(self.tile, self.chunk, self.substeps_per_iteration) < 1:
            raise ValueError(f"LaneSchedule: tile, chunk and substeps must be >= 1: {self}")
        if not 0 <= self.tile_exit < 1:
            raise ValueError(f"LaneSchedule: tile_exit must be in [0, 1): {self.tile_exit}")
        sizes = list(self.groups)
        if any(g < 1 for g in sizes) or sizes != sorted(set(sizes)):
            raise ValueError(f"LaneSchedule: groups must be ascending sizes >= 1: {self.groups}")

    def group_sizes(self, lanes: int) -> list[int]:
        """The groups of a batch of `lanes`, ascending: those below a tile, then the tile."""
        tile = min(self.tile, lanes)
        return [g for g in self.groups if g < tile] + [tile]


DEFAULT_SCHEDULE = LaneSchedule()


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
    schedule: LaneSchedule = DEFAULT_SCHEDULE,
) -> Integration:
    """Advance one system ([N, D] positions and velocities) by `duration`, landing exactly on it.

    Give `mu` (dt = μ · collision time, recomputed every step) or `eta` (Aarseth's criterion;
    `next_dt` carries its step between calls, ≤ 0 to start afresh). Under `jax.vmap` the batch
    runs through `integrate_lanes`, which regroups the lanes still running so that a few
    slow systems do not keep the whole batch busy (same results, lane for lane); `schedule`
    tunes how.
    """
    if (mu is None) == (eta is None):
        raise ValueError("integrate: give exactly one of mu (collision-time criterion) or eta")
    dtype = pos.dtype
    criterion = "mu" if eta is None else "eta"
    rate = jnp.asarray(mu if eta is None else eta, dtype)
    out = integrate_one(criterion, schedule)(
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


def prefix_sizes(lanes: int, tile: int) -> list[int]:
    """Ascending prefixes of a batch compacted while tiles sweep it: tile · 2^k below `lanes`,
    then `lanes`."""
    sizes, size = [], tile
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


class Table(NamedTuple):
    """Every lane's loop and constants, one column per slot (slot s holds lane `ints[3, s]`)."""

    real: jax.Array  # [4·N·D + N + 3, B]: pos, vel, acc, jerk, remaining, next_dt, mass, rate
    ints: jax.Array  # [4, B] int32: substeps, positive_dt, max_substeps, lane


class Lanes(NamedTuple):
    """A table's columns as named rows ([S] each)."""

    loop: hermite.Loop
    mass: tuple[jax.Array, ...]  # N × [S]
    rate: jax.Array  # [S]
    cap: jax.Array  # [S] int32 max_substeps
    lane: jax.Array  # [S] int32


def pack(lanes: Lanes) -> Table:
    loop = lanes.loop
    vectors = (loop.pos, loop.vel, loop.derivs.acc, loop.derivs.jerk)
    real = [c for v in vectors for row in v for c in row]
    real += [loop.remaining, loop.next_dt, *lanes.mass, lanes.rate]
    ints = [loop.substeps, loop.positive_dt.astype(jnp.int32), lanes.cap, lanes.lane]
    return Table(jnp.stack(real), jnp.stack(ints))


def unpack(table: Table, bodies: int, dims: int) -> Lanes:
    real, ints = table
    size = bodies * dims

    def vectors(start: int) -> hermite.Vectors:
        return tuple(tuple(real[start + i * dims + d] for d in range(dims)) for i in range(bodies))

    rest = 4 * size
    loop = hermite.Loop(
        pos=vectors(0),
        vel=vectors(size),
        derivs=hermite.Derivatives(vectors(2 * size), vectors(3 * size)),
        remaining=real[rest],
        substeps=ints[0],
        next_dt=real[rest + 1],
        positive_dt=ints[1] > 0,
    )
    mass = tuple(real[rest + 2 + i] for i in range(bodies))
    return Lanes(loop, mass, real[rest + 2 + bodies], ints[2], ints[3])


def columns(table: Table, start: jax.Array | int, size: int) -> Table:
    """`size` slots from `start` (clamped to fit, like `lax.dynamic_slice`)."""
    return Table(*(jax.lax.dynamic_slice_in_dim(x, start, size, axis=1) for x in table))


def put_columns(table: Table, part: Table, start: jax.Array | int) -> Table:
    pairs = zip(table, part, strict=True)
    return Table(*(jax.lax.dynamic_update_slice_in_dim(x, p, start, axis=1) for x, p in pairs))


def count_running(lanes: Lanes) -> jax.Array:
    return jnp.sum(hermite.running(lanes.loop, lanes.cap), dtype=jnp.int32)


def run_group(
    table: Table,
    fits: int,
    limit: jax.Array | int,
    shape: tuple[int, int],
    criterion: str,
    substeps: int,
) -> tuple[Table, jax.Array]:
    """Substep every lane of `table`, `substeps` per iteration, until at most `fits` run or after
    `limit` iterations; the table and the lane-steps taken (idle lanes included). The loop is
    `hermite.run_loop`'s, with a lane count and an iteration limit in its condition."""
    lanes = unpack(table, *shape)

    def going(carry: tuple[hermite.Loop, jax.Array]) -> jax.Array:
        loop, done = carry
        return (jnp.sum(hermite.running(loop, lanes.cap), dtype=jnp.int32) > fits) & (done < limit)

    def body(carry: tuple[hermite.Loop, jax.Array]) -> tuple[hermite.Loop, jax.Array]:
        loop, done = carry
        for _ in range(substeps):
            loop = hermite.advance(loop, lanes.mass, lanes.rate, lanes.cap, criterion)
        return loop, done + 1

    loop, done = jax.lax.while_loop(going, body, (lanes.loop, jnp.int32(0)))
    return pack(lanes._replace(loop=loop)), done * (table.real.shape[1] * substeps)


def inverse(permutation: jax.Array) -> jax.Array:
    """int32 [S]: the permutation that undoes `permutation` ([S], each of 0..S-1 once); a scatter,
    which on a CPU costs less than a sort."""
    size = permutation.shape[0]
    slots = jnp.arange(size, dtype=jnp.int32)
    return jnp.zeros(size, jnp.int32).at[permutation].set(slots, unique_indices=True)


def running_first(active: jax.Array) -> jax.Array:
    """int32 [S]: the slots of `active` ([S] bool) reordered running first, each part in its
    order (`argsort(~active, stable=True)`, from prefix sums instead of a sort)."""
    count = jnp.sum(active, dtype=jnp.int32)
    ahead = jnp.cumsum(active, dtype=jnp.int32) - 1
    behind = count + jnp.cumsum(~active, dtype=jnp.int32) - 1
    return inverse(jnp.where(active, ahead, behind))  # slot s goes to place target[s]


def compact(table: Table, size: int, shape: tuple[int, int]) -> tuple[Table, jax.Array]:
    """The running lanes of the first `size` slots moved to their front; how many run."""
    group = columns(table, 0, size)
    lanes = unpack(group, *shape)
    active = hermite.running(lanes.loop, lanes.cap)
    order = running_first(active)
    group = Table(*(x[:, order] for x in group))
    return put_columns(table, group, 0), jnp.sum(active, dtype=jnp.int32)


def scheduled_table(
    table: Table, shape: tuple[int, int], criterion: str, schedule: LaneSchedule
) -> tuple[Table, jax.Array]:
    """Every lane of `table` run to its end in rounds (module docstring), slots in any order;
    and the lane-steps taken (int32 [])."""
    lanes = table.real.shape[1]
    tile = min(schedule.tile, lanes)
    small = schedule.group_sizes(lanes)  # groups up to one tile
    sizes = small + prefix_sizes(lanes, tile)[1:]  # every prefix compacted
    k = schedule.substeps_per_iteration
    iterations = -(-schedule.chunk // k)
    # A tile stops once at most `exit_at` of its lanes run (< tile: a full tile always steps).
    exit_at = int(tile * schedule.tile_exit)
    Work = tuple[Table, jax.Array]

    def sweep(table: Table, count: jax.Array) -> Work:
        """Tile after tile over the slots holding the `count` running lanes."""

        def one(t: jax.Array, carry: Work) -> Work:
            table, work = carry
            start = jnp.minimum(t * tile, lanes - tile)
            part = columns(table, start, tile)
            part, steps = run_group(part, exit_at, iterations, shape, criterion, k)
            return put_columns(table, part, start), work + steps

        return jax.lax.fori_loop(0, (count + tile - 1) // tile, one, (table, jnp.int32(0)))

    def group(index: int, table: Table) -> Work:
        """The smallest group until its runners fit the next smaller one (or are done)."""
        fits = 0 if index == 0 else small[index - 1]
        part, steps = run_group(
            columns(table, 0, small[index]), fits, 2**31 - 1, shape, criterion, k
        )
        return put_columns(table, part, 0), steps

    def round_(carry: tuple[Table, jax.Array, jax.Array, jax.Array]) -> tuple:
        table, last, _, work = carry  # last: the prefix that holds every running lane
        compactions = [functools.partial(compact, size=size, shape=shape) for size in sizes]
        table, count = jax.lax.switch(last, compactions, table)
        held = jnp.minimum((count + tile - 1) // tile * tile, lanes)  # slots a sweep steps
        index = jnp.searchsorted(jnp.asarray(sizes), jnp.where(count > tile, held, count))
        index = index.astype(jnp.int32)
        groups = [functools.partial(group, i) for i in range(len(small))]
        table, steps = jax.lax.cond(
            count > tile,
            lambda t: sweep(t, count),
            lambda t: jax.lax.switch(jnp.minimum(index, len(small) - 1), groups, t),
            table,
        )
        return table, index, count == 0, work + steps

    work = jnp.int32(0)
    if lanes > tile:  # every lane may run at the start: the first sweep needs no compaction
        table, work = sweep(table, jnp.int32(lanes))
    start = (table, jnp.int32(len(sizes) - 1), jnp.bool_(False), work)
    table, _, _, work = jax.lax.while_loop(lambda carry: ~carry[2], round_, start)
    return table, work


def schedule_lanes(
    pos: jax.Array,
    vel: jax.Array,
    mass: jax.Array,
    duration: jax.Array,
    rate: jax.Array,
    next_dt: jax.Array,
    max_substeps: jax.Array,
    criterion: str,
    schedule: LaneSchedule = DEFAULT_SCHEDULE,
) -> tuple[Outputs, jax.Array]:
    """Integrate B systems ([B, N, D], [B, N], [B] ...) with regrouping: outputs batched [B],
    and the lane-steps taken (int32 []: Σ substeps over lanes, plus what idle lanes waited)."""
    lanes, bodies, dims = pos.shape
    masses = tuple(mass[:, i] for i in range(bodies))
    loop = hermite.start_loop(
        lanes_of(pos), lanes_of(vel), masses, duration, rate, next_dt, criterion
    )
    ids = jnp.arange(lanes, dtype=jnp.int32)
    table = pack(Lanes(loop, masses, rate, max_substeps, ids))
    table, work = scheduled_table(table, (bodies, dims), criterion, schedule)
    order = inverse(table.ints[3])  # back to lane order (slot s holds lane ints[3, s])
    done = unpack(Table(*(x[:, order] for x in table)), bodies, dims)
    return outputs(done.loop, max_substeps, stack_lanes), work


def outputs(
    loop: hermite.Loop, max_substeps: jax.Array, to_array: Callable[[hermite.Vectors], jax.Array]
) -> Outputs:
    """The finished loop as `Integration`'s fields (positions and velocities as arrays)."""
    return (
        to_array(loop.pos),
        to_array(loop.vel),
        loop.substeps,
        hermite.capped_of(loop, max_substeps),
        hermite.nonfinite_of(loop),
        loop.next_dt,
    )


def broadcast_args(axis_size: int, in_batched: list[bool], args: tuple) -> list[jax.Array]:
    return [
        x if batched else jnp.broadcast_to(x, (axis_size, *jnp.shape(x)))
        for x, batched in zip(args, in_batched, strict=True)
    ]


@functools.cache
def integrate_lanes(criterion: str, schedule: LaneSchedule) -> Callable[..., Outputs]:
    """The batched integrator of `criterion` (custom_vmap: a further vmap flattens into it)."""

    @custom_vmap
    def lanes(*args: jax.Array) -> Outputs:
        return schedule_lanes(*args, criterion=criterion, schedule=schedule)[0]

    @lanes.def_vmap
    def lanes_vmap(axis_size: int, in_batched: list[bool], *args: jax.Array) -> Any:
        full = broadcast_args(axis_size, in_batched, args)
        inner = full[0].shape[1]  # [A, B, ...] → [A·B, ...]
        flat = [x.reshape(axis_size * inner, *x.shape[2:]) for x in full]
        out = lanes(*flat)
        return tuple(y.reshape(axis_size, inner, *y.shape[1:]) for y in out), (True,) * 6

    return lanes


@functools.cache
def integrate_one(criterion: str, schedule: LaneSchedule) -> Callable[..., Outputs]:
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
            schedule.substeps_per_iteration,
        )
        return outputs(loop, max_substeps, hermite.stack)

    @one.def_vmap
    def one_vmap(axis_size: int, in_batched: list[bool], *args: jax.Array) -> Any:
        out = integrate_lanes(criterion, schedule)(*broadcast_args(axis_size, in_batched, args))
        return out, (True,) * 6

    return one
