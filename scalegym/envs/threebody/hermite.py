"""4th-order Hermite predictor-corrector for N gravitating bodies (G = 1), float64, jittable.

Shapes are for one system: positions and velocities [N, D], masses [N]; batch with `jax.vmap`
(every function is pure and traces once). Inside, a system is held as N×D separate scalars
(`Vectors`: a tuple over bodies of tuples over dimensions), so that under `vmap` every operation
is one SIMD-friendly [B] vector op instead of a loop over tiny [N, N, D] blocks (about 10× faster
on a CPU). Pairs are visited once each (Newton's third law).

The step is Makino & Aarseth's (1992) Hermite scheme, PEC form: predict with acceleration and
jerk, evaluate both at the prediction, correct with the interpolated snap and crackle; the
derivatives at the prediction serve the next step (one force evaluation per step). All bodies
share one step, chosen either as

- `mu` times the system's collision time (`collision_time`: the min over pairs of
  min(r/|v_ij|, sqrt(r³/(m_i + m_j)))), the paper's criterion; or
- Aarseth's criterion with accuracy `eta`, from the snap and crackle of the previous step.

`advance` is one substep of every lane, each lane masked once it is done: it has reached its end
time (the last step is shortened to land exactly on it: the remaining time becomes exactly 0), has
taken `max_substeps` (`capped`) or its state stopped being finite (`nonfinite`). `integrate_loop`
runs K such substeps per loop iteration until every lane is done. The public entry is
`integrator.integrate`, which also regroups lanes under `vmap`.

How XLA compiles a substep, and why it is written as it is: XLA:CPU fuses elementwise ops into
kernels with one output each, and copies cheap ops into every kernel that reads them. With 28
state arrays out of one substep, everything shared (the predicted state, 1/r per pair, the step)
would be recomputed many times over (written without barriers, a substep of 64 lanes took twice
as long), so `compute_once` makes each its own kernel: the lane mask, dt, the prediction, 1/r of
each pair and the new derivatives. The collision time takes one sqrt, of the minimum (sqrt is
monotone, so that is bitwise the minimum of the square roots), and finiteness is read off the
state a substep starts from instead of being recomputed from the corrector's formulas. A substep
is then ~64 kernels (80 and 27 copies before), and 64 lanes stepped in one compiled loop take
1.9 µs per substep against 2.7 µs (2-core CPU, `benchmarks/hermite_substeps.py`); the results are
bit for bit the same. XLA's multi-output fusion (a CPU backend option, off by default) merges
the kernels into ~23 but ran no faster, and a [component, lane] array layout (~21 kernels) ran
no faster for groups of 2–8 lanes, so neither is used.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from scalegym.core.fusion import compute_once

Vectors = tuple[tuple[jax.Array, ...], ...]  # [N][D] scalars


def split(x: jax.Array) -> Vectors:
    """[N, D] array → N×D scalars."""
    return tuple(tuple(x[i, d] for d in range(x.shape[1])) for i in range(x.shape[0]))


def stack(v: Vectors) -> jax.Array:
    """N×D scalars → [N, D] array."""
    return jnp.stack([jnp.stack(row) for row in v])


def combine(*terms: tuple[float | jax.Array, Vectors]) -> Vectors:
    """Σ_k c_k · v_k over vectors of one shape (the predictor and corrector polynomials)."""
    first = terms[0][1]
    return tuple(
        tuple(sum(c * v[i][d] for c, v in terms) for d in range(len(first[i])))
        for i in range(len(first))
    )


def pairs(n: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(n) for j in range(i + 1, n)]


class Derivatives(NamedTuple):
    acc: Vectors
    jerk: Vectors


def derivatives(pos: Vectors, vel: Vectors, mass: tuple[jax.Array, ...]) -> Derivatives:
    """a_i = Σ_j m_j r_ij/r³ and j_i = Σ_j m_j (v_ij/r³ − 3 (r·v) r_ij/r⁵), r_ij = x_j − x_i."""
    n, dims = len(pos), len(pos[0])
    acc = [[0.0] * dims for _ in range(n)]
    jerk = [[0.0] * dims for _ in range(n)]
    for i, j in pairs(n):  # written out pair by pair: no reduction over a tiny body axis
        dx = [pos[j][d] - pos[i][d] for d in range(dims)]
        dv = [vel[j][d] - vel[i][d] for d in range(dims)]
        r2 = sum(c * c for c in dx)
        inv_r = compute_once(jax.lax.rsqrt(r2))  # one rsqrt per pair, read by 4·D outputs
        inv_r3 = inv_r * inv_r * inv_r
        rv3 = 3.0 * sum(a * b for a, b in zip(dx, dv, strict=True)) * inv_r * inv_r
        for d in range(dims):
            a_pair = dx[d] * inv_r3
            j_pair = (dv[d] - rv3 * dx[d]) * inv_r3
            acc[i][d] = acc[i][d] + mass[j] * a_pair
            acc[j][d] = acc[j][d] - mass[i] * a_pair
            jerk[i][d] = jerk[i][d] + mass[j] * j_pair
            jerk[j][d] = jerk[j][d] - mass[i] * j_pair
    # Computed once: otherwise XLA's CPU fuser re-derives the forces inside every consumer.
    return compute_once(Derivatives(tuple(map(tuple, acc)), tuple(map(tuple, jerk))))


def acceleration_and_jerk(
    pos: jax.Array, vel: jax.Array, mass: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """(acceleration, jerk) [N, D] of a system given as arrays."""
    acc, jerk = derivatives(split(pos), split(vel), tuple(mass))
    return stack(acc), stack(jerk)


def energy(pos: jax.Array, vel: jax.Array, mass: jax.Array) -> jax.Array:
    """Total energy []: Σ ½ m v² − Σ_{i<j} m_i m_j / r_ij."""
    kinetic = 0.5 * jnp.sum(mass * jnp.sum(vel * vel, axis=-1))
    potential = sum(
        -mass[i] * mass[j] / jnp.sqrt(jnp.sum((pos[j] - pos[i]) ** 2)) for i, j in pairs(len(mass))
    )
    return kinetic + potential


def collision_time_squared(pos: Vectors, vel: Vectors, mass: tuple[jax.Array, ...]) -> jax.Array:
    """min over pairs of min(r²/|v_ij|², r³/(m_i + m_j)) [] (a pair at rest: free fall only)."""
    dims = len(pos[0])
    shortest = None
    for i, j in pairs(len(pos)):
        r2 = sum((pos[j][d] - pos[i][d]) ** 2 for d in range(dims))
        v2 = sum((vel[j][d] - vel[i][d]) ** 2 for d in range(dims))
        crossing = jnp.where(v2 > 0, r2 / jnp.where(v2 > 0, v2, 1.0), jnp.inf)
        free_fall = r2 * jnp.sqrt(r2) / (mass[i] + mass[j])
        pair = jnp.minimum(crossing, free_fall)
        shortest = pair if shortest is None else jnp.minimum(shortest, pair)
    assert shortest is not None, "collision time needs two bodies"
    return shortest


def collision_time_of(pos: Vectors, vel: Vectors, mass: tuple[jax.Array, ...]) -> jax.Array:
    """min over pairs of min(r/|v_ij|, sqrt(r³/(m_i + m_j))) []: one sqrt, of the minimum."""
    return jnp.sqrt(collision_time_squared(pos, vel, mass))


def collision_time(pos: jax.Array, vel: jax.Array, mass: jax.Array) -> jax.Array:
    """`collision_time_of` for a system given as arrays [N, D], [N, D], [N]."""
    return collision_time_of(split(pos), split(vel), tuple(mass))


class Step(NamedTuple):
    pos: Vectors
    vel: Vectors
    derivs: Derivatives  # at the prediction: the next step's starting derivatives
    snap: Vectors  # the Hermite interpolant's 2nd derivative of a at the new time
    crackle: Vectors  # and its 3rd


def hermite_step(
    pos: Vectors, vel: Vectors, derivs: Derivatives, mass: tuple[jax.Array, ...], dt: jax.Array
) -> Step:
    """One predictor-evaluate-corrector step of length dt."""
    a0, j0 = derivs
    pos_p = combine((1.0, pos), (dt, vel), (dt * dt / 2, a0), (dt * dt * dt / 6, j0))
    vel_p = combine((1.0, vel), (dt, a0), (dt * dt / 2, j0))
    pos_p, vel_p = compute_once((pos_p, vel_p))  # read by every pair
    a1, j1 = derivatives(pos_p, vel_p, mass)
    vel_c = combine((1.0, vel), (dt / 2, a0), (dt / 2, a1), (dt * dt / 12, j0), (-dt * dt / 12, j1))
    pos_c = combine(
        (1.0, pos), (dt / 2, vel), (dt / 2, vel_c), (dt * dt / 12, a0), (-dt * dt / 12, a1)
    )
    inv2, inv3 = 1.0 / (dt * dt), 1.0 / (dt * dt * dt)
    snap0 = combine((-6 * inv2, a0), (6 * inv2, a1), (-4 * dt * inv2, j0), (-2 * dt * inv2, j1))
    crackle = combine((12 * inv3, a0), (-12 * inv3, a1), (6 * dt * inv3, j0), (6 * dt * inv3, j1))
    snap1 = combine((1.0, snap0), (dt, crackle))
    return Step(pos_c, vel_c, Derivatives(a1, j1), snap1, crackle)


def norms(v: Vectors) -> list[jax.Array]:
    return [jnp.sqrt(sum(c * c for c in row)) for row in v]


def aarseth_step(derivs: Derivatives, snap: Vectors, crackle: Vectors, eta: jax.Array) -> jax.Array:
    """Aarseth's shared step []: η · min over bodies of sqrt((|a||s| + |j|²)/(|j||c| + |s|²))."""
    rows = zip(norms(derivs.acc), norms(derivs.jerk), norms(snap), norms(crackle), strict=True)
    steps = [jnp.sqrt((a * s + j * j) / (j * c + s * s)) for a, j, s, c in rows]
    return eta * jnp.min(jnp.stack(steps), axis=0)


def aarseth_start_step(derivs: Derivatives, eta: jax.Array) -> jax.Array:
    """The starting step before any snap is known: η · min over bodies of |a|/|j|."""
    steps = [a / j for a, j in zip(norms(derivs.acc), norms(derivs.jerk), strict=True)]
    return eta * jnp.min(jnp.stack(steps), axis=0)


class Loop(NamedTuple):
    """The integration loop's state; every leaf is one lane's scalar, or [S] for S lanes."""

    pos: Vectors
    vel: Vectors
    derivs: Derivatives
    remaining: jax.Array  # time left to the end of the call
    substeps: jax.Array  # int32
    next_dt: jax.Array  # Aarseth's next step (unused by the μ criterion)
    positive_dt: jax.Array  # bool: every step so far was longer than 0 (see `finite`)


# The step-size criteria below are named "mu" and "eta"; `rate` is μ or η accordingly.
def start_loop(
    pos: Vectors,
    vel: Vectors,
    mass: tuple[jax.Array, ...],
    duration: jax.Array,
    rate: jax.Array,
    next_dt: jax.Array,
    criterion: str,
) -> Loop:
    """The loop state before the first substep (elementwise in the lanes)."""
    derivs = derivatives(pos, vel, mass)
    if criterion == "eta":
        # Bounded by η · the collision time: bodies at rest have no jerk, so |a|/|j| is infinite.
        fresh = jnp.minimum(
            aarseth_start_step(derivs, rate), rate * collision_time_of(pos, vel, mass)
        )
        next_dt = jnp.where(next_dt > 0, next_dt, fresh)
    zero = jnp.zeros(jnp.shape(duration), jnp.int32)
    return Loop(pos, vel, derivs, duration, zero, next_dt, zero == 0)


def finite(loop: Loop) -> jax.Array:
    """A finite state, reached by steps longer than 0: what the next substep may start from."""
    ok = loop.positive_dt
    for v in (loop.pos, loop.vel):
        for row in v:
            for c in row:
                ok = ok & jnp.isfinite(c)
    return ok


def running(loop: Loop, max_substeps: jax.Array) -> jax.Array:
    """Lanes that still have time to integrate, substeps to spend and a finite state."""
    return (loop.remaining > 0) & (loop.substeps < max_substeps) & finite(loop)


def advance(
    loop: Loop,
    mass: tuple[jax.Array, ...],
    rate: jax.Array,
    max_substeps: jax.Array,
    criterion: str,
) -> Loop:
    """One shared Hermite step of every running lane, the last one shortened to land on the end;
    lanes that are done keep their state."""
    active = compute_once(running(loop, max_substeps))  # [S] read by every output
    # μ: a fraction of the current collision time; η: Aarseth's step from the previous one.
    want = rate * collision_time_of(loop.pos, loop.vel, mass) if criterion == "mu" else loop.next_dt
    last = want >= loop.remaining
    dt = compute_once(jnp.where(last, loop.remaining, want))
    step = hermite_step(loop.pos, loop.vel, loop.derivs, mass, dt)
    # Aarseth's criterion from this step (a shortened last step still gives the next one).
    next_dt = (
        loop.next_dt
        if criterion == "mu"
        else aarseth_step(step.derivs, step.snap, step.crackle, rate)
    )
    new = Loop(
        pos=step.pos,
        vel=step.vel,
        derivs=step.derivs,
        remaining=jnp.where(last, jnp.zeros_like(loop.remaining), loop.remaining - dt),
        substeps=loop.substeps + 1,
        next_dt=next_dt,
        positive_dt=loop.positive_dt & (dt > 0),
    )
    return jax.tree.map(lambda a, b: jnp.where(active, a, b), new, loop)


def integrate_loop(
    pos: Vectors,
    vel: Vectors,
    mass: tuple[jax.Array, ...],
    duration: jax.Array,
    rate: jax.Array,
    next_dt: jax.Array,
    max_substeps: jax.Array,
    criterion: str,
    substeps_per_iteration: int = 1,
) -> Loop:
    """The plain loop: substep until every lane is done (all lanes step together), K =
    `substeps_per_iteration` substeps per loop iteration."""
    loop = start_loop(pos, vel, mass, duration, rate, next_dt, criterion)
    return run_loop(loop, mass, rate, max_substeps, criterion, substeps_per_iteration)


def run_loop(
    loop: Loop,
    mass: tuple[jax.Array, ...],
    rate: jax.Array,
    max_substeps: jax.Array,
    criterion: str,
    substeps_per_iteration: int = 1,
) -> Loop:
    """`loop` advanced until every lane is done, K substeps per iteration."""

    def body(lp: Loop) -> Loop:
        for _ in range(substeps_per_iteration):
            lp = advance(lp, mass, rate, max_substeps, criterion)
        return lp

    return jax.lax.while_loop(lambda lp: jnp.any(running(lp, max_substeps)), body, loop)


def capped_of(loop: Loop, max_substeps: jax.Array) -> jax.Array:
    """Stopped by the substep cap with time left (and a finite state)."""
    return (loop.remaining > 0) & finite(loop) & (loop.substeps >= max_substeps)


def nonfinite_of(loop: Loop) -> jax.Array:
    """Stopped because the state stopped being finite (or a step of length 0 was asked for)."""
    return ~finite(loop)
