"""Known-answer tests for ThreeBody's float64 Hermite integrator and initial conditions."""

from __future__ import annotations

from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import rebound
from jax.typing import ArrayLike

from scalegym.envs.threebody import hermite, integrator
from scalegym.envs.threebody import initial_conditions as ic

PYTHAGOREAN_ENERGY = -769.0 / 60.0


@pytest.fixture(autouse=True)
def x64() -> Iterator[None]:
    # float64 for these tests only: the global flag stays as other modules expect it.
    with jax.enable_x64(True):
        yield


def f64(*arrays: np.ndarray) -> tuple[jax.Array, ...]:
    return tuple(jnp.asarray(a, jnp.float64) for a in arrays)


def rebound_positions(
    pos: np.ndarray, vel: np.ndarray, mass: np.ndarray, times: list[float]
) -> np.ndarray:
    """[len(times), N, 2] IAS15 positions, stopping exactly at each time in turn."""
    sim = rebound.Simulation()
    sim.G = 1.0
    sim.integrator = "ias15"
    for p, v, m in zip(pos, vel, mass, strict=True):
        sim.add(m=float(m), x=float(p[0]), y=float(p[1]), vx=float(v[0]), vy=float(v[1]))
    out = []
    for t in times:
        sim.integrate(t, exact_finish_time=1)
        out.append([[q.x, q.y] for q in sim.particles])
    return np.array(out)


# ----------------------------------------------------------------------------------------------
# Plain NumPy references: [N, D] arrays, a double loop over pairs, nothing shared with hermite.py.


def np_acc_jerk(x: np.ndarray, v: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    acc, jerk = np.zeros_like(x), np.zeros_like(x)
    for i in range(len(m)):
        for j in range(len(m)):
            if i != j:
                dx, dv = x[j] - x[i], v[j] - v[i]
                r = np.linalg.norm(dx)
                acc[i] += m[j] * dx / r**3
                jerk[i] += m[j] * (dv / r**3 - 3 * np.dot(dx, dv) * dx / r**5)
    return acc, jerk


def np_energy(x: np.ndarray, v: np.ndarray, m: np.ndarray) -> float:
    kinetic = sum(0.5 * m[i] * np.dot(v[i], v[i]) for i in range(len(m)))
    potential = sum(
        -m[i] * m[j] / np.linalg.norm(x[j] - x[i])
        for i in range(len(m))
        for j in range(i + 1, len(m))
    )
    return kinetic + potential


def np_collision_time(x: np.ndarray, v: np.ndarray, m: np.ndarray) -> float:
    times = []
    for i in range(len(m)):
        for j in range(i + 1, len(m)):
            r, u = np.linalg.norm(x[j] - x[i]), np.linalg.norm(v[j] - v[i])
            times.append(min(r / u if u > 0 else np.inf, np.sqrt(r**3 / (m[i] + m[j]))))
    return min(times)


def np_integrate(
    x: np.ndarray, v: np.ndarray, m: np.ndarray, duration: float, mu: float
) -> tuple[np.ndarray, np.ndarray, int]:
    """Hermite PEC with dt = μ · collision time, the last step shortened to land on `duration`."""
    a, j = np_acc_jerk(x, v, m)
    remaining, steps = duration, 0
    while remaining > 0:
        dt = min(mu * np_collision_time(x, v, m), remaining)
        xp = x + v * dt + a * dt**2 / 2 + j * dt**3 / 6
        vp = v + a * dt + j * dt**2 / 2
        a1, j1 = np_acc_jerk(xp, vp, m)
        v1 = v + (a + a1) * dt / 2 + (j - j1) * dt**2 / 12
        x = x + (v + v1) * dt / 2 + (a - a1) * dt**2 / 12
        v, a, j = v1, a1, j1
        remaining = 0.0 if dt == remaining else remaining - dt
        steps += 1
    return x, v, steps


# ----------------------------------------------------------------------------------------------
# Hermite scheme: order and agreement with IAS15.


@jax.jit
def fixed_steps(
    pos: jax.Array, vel: jax.Array, mass: jax.Array, steps: jax.Array, dt: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """`steps` Hermite steps of constant length dt (traced, so one compile serves every dt)."""
    masses = tuple(mass)
    carry = (hermite.split(pos), hermite.split(vel))
    carry = (*carry, hermite.derivatives(*carry, masses))

    def body(_: jax.Array, carry: tuple) -> tuple:
        step = hermite.hermite_step(*carry, masses, dt)
        return step.pos, step.vel, step.derivs

    p, v, _ = jax.lax.fori_loop(0, steps, body, carry)
    return hermite.stack(p), hermite.stack(v)


def test_hermite_step_is_fourth_order() -> None:
    # Pythagorean problem to t = 1 (before the first close encounter, so smooth). Measured for
    # dt = 1/32 … 1/256: energy errors 1.2e-7, 7.9e-9, 5.1e-10, 3.2e-11 (slopes 3.94-3.98); below
    # dt = 1/1024 roundoff (1e-13) takes over, hence this range.
    pos, vel, mass = f64(*ic.pythagorean_problem())
    fine_pos, _ = fixed_steps(pos, vel, mass, 4096, 1.0 / 4096)
    counts = np.array([32, 64, 128, 256])
    energy_errors, position_errors = [], []
    for n in counts:
        p, v = fixed_steps(pos, vel, mass, int(n), 1.0 / n)
        energy_errors.append(abs(float(hermite.energy(p, v, mass)) - PYTHAGOREAN_ENERGY))
        position_errors.append(float(jnp.max(jnp.abs(p - fine_pos))))
    for errors in (energy_errors, position_errors):
        slope = np.polyfit(np.log(1.0 / counts), np.log(errors), 1)[0]
        assert 3.5 <= slope <= 4.5, (slope, errors)
        local = np.diff(np.log2(errors)) / np.diff(np.log2(1.0 / counts))
        assert np.all((local >= 3.5) & (local <= 4.5)), (local, errors)


_integrate = jax.jit(integrator.integrate)


def integrate(
    pos: ArrayLike,
    vel: ArrayLike,
    mass: ArrayLike,
    duration: ArrayLike,
    *,
    mu: ArrayLike | None = None,
    eta: ArrayLike | None = None,
    next_dt: ArrayLike = -1.0,
    max_substeps: ArrayLike = 1_000_000,
) -> integrator.Integration:
    """`integrator.integrate`, jitted, every argument a strong-typed array (one compile each)."""
    criterion = {"mu": mu} if eta is None else {"eta": eta}
    return _integrate(
        *(jnp.asarray(a, jnp.float64) for a in (pos, vel, mass, duration)),
        **{name: jnp.asarray(value, jnp.float64) for name, value in criterion.items()},
        next_dt=jnp.asarray(next_dt, jnp.float64),
        max_substeps=jnp.asarray(max_substeps, jnp.int32),
    )


@jax.jit
def integrate_batch(
    pos: jax.Array, vel: jax.Array, mass: jax.Array, duration: jax.Array
) -> integrator.Integration:
    """Systems [B, N, D] of one mass vector, batched as the env batches them, μ = 1e-3."""
    return jax.vmap(lambda p, v: integrate(p, v, mass, duration, mu=1e-3))(pos, vel)


def test_pythagorean_problem_matches_ias15_at_t10() -> None:
    pos, vel, mass = ic.pythagorean_problem()
    assert float(hermite.energy(*f64(pos, vel, mass))) == pytest.approx(
        PYTHAGOREAN_ENERGY, abs=1e-12
    )
    run = integrate(*f64(pos, vel, mass), 10.0, mu=1e-3)
    assert not run.capped and not run.nonfinite
    reference = rebound_positions(pos, vel, mass, [10.0])[0]
    # Measured max |Δx| = 1.9e-9 (56 176 substeps); the requirement is 1e-6.
    np.testing.assert_allclose(np.asarray(run.pos), reference, rtol=0, atol=1e-6)


def test_paper_seeds_match_ias15_over_ten_env_steps() -> None:
    seeds = range(5)
    table = ic.initial_condition_table(len(seeds))
    pos, vel = f64(table[:, 0], table[:, 1])
    mass = jnp.asarray(ic.MASSES)
    # Batched as the env runs them: one `integrate` call per env step, lanes finishing apart.
    times = [ic.ENV_STEP_TIME * (k + 1) for k in range(10)]
    substeps = np.zeros(len(seeds), int)
    for _ in times:
        run = integrate_batch(pos, vel, mass, ic.ENV_STEP_TIME)
        assert not np.any(run.capped) and not np.any(run.nonfinite)
        pos, vel, substeps = run.pos, run.vel, substeps + np.asarray(run.substeps)
    assert np.all(substeps > 0)
    for s in seeds:
        reference = rebound_positions(table[s, 0], table[s, 1], ic.MASSES, times)[-1]
        # Measured max |Δx| over seeds 0-4: 3.7e-13 (seed 1; 169-386 substeps per seed); the
        # tolerance is about 10× that.
        np.testing.assert_allclose(np.asarray(pos[s]), reference, rtol=0, atol=4e-12)


def test_batched_lanes_match_single_runs() -> None:
    # Under vmap a finished lane idles: same state and substep count as when run alone.
    table = ic.initial_condition_table(5)
    pos, vel = f64(table[:, 0], table[:, 1])
    mass = jnp.asarray(ic.MASSES)
    batched = integrate_batch(pos, vel, mass, 3.0)
    assert len(set(np.asarray(batched.substeps).tolist())) > 1  # the lanes do finish apart
    for s in range(5):
        single = integrate(pos[s], vel[s], mass, 3.0, mu=1e-3)
        assert int(batched.substeps[s]) == int(single.substeps)
        np.testing.assert_allclose(batched.pos[s], single.pos, rtol=0, atol=1e-14)


# ----------------------------------------------------------------------------------------------
# integrate: the step-size rules, exact landing, cap and non-finite stop.


@pytest.mark.parametrize(("seed", "duration"), [(None, 1.0), (0, ic.ENV_STEP_TIME), (3, 5.0)])
def test_collision_time_rule_matches_numpy_reimplementation(
    seed: int | None, duration: float
) -> None:
    if seed is None:
        pos, vel, mass = ic.pythagorean_problem()
    else:
        pos, vel, mass = (*ic.paper_initial_condition(seed), ic.MASSES)
    expected_pos, expected_vel, expected_steps = np_integrate(pos, vel, mass, duration, mu=1e-3)
    run = integrate(*f64(pos, vel, mass), duration, mu=1e-3)
    # Measured: the same step counts (640, 21, 100) and max |Δx|, |Δv| ≤ 5.3e-15 (roundoff).
    assert int(run.substeps) == expected_steps
    np.testing.assert_allclose(run.pos, expected_pos, rtol=0, atol=1e-12)
    np.testing.assert_allclose(run.vel, expected_vel, rtol=0, atol=1e-12)
    # The μ criterion leaves the carried Aarseth step as given (here: none).
    assert float(run.next_dt) == -1.0


def test_halving_mu_doubles_substeps() -> None:
    pos, vel = f64(*ic.paper_initial_condition(2))
    mass = jnp.asarray(ic.MASSES)
    coarse = int(integrate(pos, vel, mass, ic.ENV_STEP_TIME, mu=2e-3).substeps)
    fine = int(integrate(pos, vel, mass, ic.ENV_STEP_TIME, mu=1e-3).substeps)
    assert coarse > 0
    assert fine == pytest.approx(2 * coarse, abs=2)


def test_aarseth_criterion_conserves_energy() -> None:
    # Pythagorean problem to t = 1. Measured |ΔE|: 4.4e-9 at η = 0.02 (63 substeps), 2.6e-10
    # at η = 0.01 (126): 4th order in the step. (Starting at rest the jerk is 0, so the start
    # step must come from the collision time: |a|/|j| alone would take t = 1 in one step.)
    pos, vel, mass = f64(*ic.pythagorean_problem())
    runs = {eta: integrate(pos, vel, mass, 1.0, eta=eta) for eta in (0.02, 0.01)}
    errors = {
        eta: abs(float(hermite.energy(run.pos, run.vel, mass)) - PYTHAGOREAN_ENERGY)
        for eta, run in runs.items()
    }
    for run in runs.values():
        assert not run.capped and not run.nonfinite
        assert float(run.next_dt) > 0
    assert errors[0.02] < 5e-8
    assert errors[0.01] < errors[0.02] / 4
    assert int(runs[0.01].substeps) > int(runs[0.02].substeps) > 10


def test_aarseth_step_carries_between_calls() -> None:
    # Two halves with `next_dt` carried reproduce one whole run closely, as an env's steps would
    # (the split shortens one step, so not exactly: measured max |Δx| = 3.6e-12).
    pos, vel, mass = f64(*ic.paper_initial_condition(1), ic.MASSES)
    whole = integrate(pos, vel, mass, 2 * ic.ENV_STEP_TIME, eta=0.02)
    half = integrate(pos, vel, mass, ic.ENV_STEP_TIME, eta=0.02)
    rest = integrate(half.pos, half.vel, mass, ic.ENV_STEP_TIME, eta=0.02, next_dt=half.next_dt)
    assert float(half.next_dt) > 0
    np.testing.assert_allclose(rest.pos, whole.pos, rtol=0, atol=5e-11)


def test_max_substeps_caps_a_long_run() -> None:
    pos, vel, mass = f64(*ic.pythagorean_problem())
    run = integrate(pos, vel, mass, 100.0, mu=1e-3, max_substeps=5)
    assert bool(run.capped) and not bool(run.nonfinite)
    assert int(run.substeps) == 5
    # A cap that the run just fits under is not hit: the last allowed step lands on the end.
    needed = int(integrate(pos, vel, mass, 0.05, mu=1e-3, max_substeps=1000).substeps)
    exact = integrate(pos, vel, mass, 0.05, mu=1e-3, max_substeps=needed)
    assert not bool(exact.capped) and int(exact.substeps) == needed


@pytest.mark.parametrize("criterion", [{"mu": 1e-3}, {"eta": 0.02}])
@pytest.mark.parametrize("defect", ["coincident", "nan_velocity"])
def test_nonfinite_state_stops_the_run(criterion: dict[str, float], defect: str) -> None:
    pos, vel, mass = f64(*ic.pythagorean_problem())
    if defect == "coincident":
        pos = pos.at[1].set(pos[0])  # r = 0: infinite forces
    else:
        vel = vel.at[0, 0].set(jnp.nan)
    run = integrate(pos, vel, mass, 100.0, max_substeps=1000, **criterion)
    assert bool(run.nonfinite) and not bool(run.capped)
    assert int(run.substeps) <= 2


def test_integrate_needs_exactly_one_criterion() -> None:
    pos, vel, mass = f64(*ic.pythagorean_problem())
    with pytest.raises(ValueError, match="exactly one"):
        integrator.integrate(pos, vel, mass, 1.0)
    with pytest.raises(ValueError, match="exactly one"):
        integrator.integrate(pos, vel, mass, 1.0, mu=1e-3, eta=0.02)


# ----------------------------------------------------------------------------------------------
# Building blocks against hand and NumPy computations.


def test_collision_time_by_hand() -> None:
    # Masses 1, 1, 2 at (0, 0), (4, 0), (0, 3). At rest every pair free-falls: sqrt(r³/M) is
    # sqrt(64/2) = 5.66 (0-1), sqrt(27/3) = 3 (0-2), sqrt(125/3) = 6.45 (1-2), so 3.
    pos = jnp.array([[0.0, 0.0], [4.0, 0.0], [0.0, 3.0]])
    mass = jnp.array([1.0, 1.0, 2.0])
    assert float(hermite.collision_time(pos, jnp.zeros_like(pos), mass)) == pytest.approx(3.0)
    # Body 2 moving (0, 2): pair 0-2 crosses in r/|v| = 3/2 = 1.5, pair 1-2 in 5/2 = 2.5.
    vel = jnp.array([[0.0, 0.0], [0.0, 0.0], [0.0, 2.0]])
    assert float(hermite.collision_time(pos, vel, mass)) == pytest.approx(1.5)
    # Bodies 0 and 1 closing at (1, 0) each: 4/2 = 2 > 1.5 still; at (3, 0) each: 4/6 < 1.5.
    vel = vel.at[0].set([3.0, 0.0]).at[1].set([-3.0, 0.0])
    assert float(hermite.collision_time(pos, vel, mass)) == pytest.approx(4.0 / 6.0)


def random_system(n: int = 4, dims: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # N = 4 bodies in 3-D: nothing in the module may assume three bodies or a plane.
    rng = np.random.default_rng(7)
    return rng.normal(size=(n, dims)), rng.normal(size=(n, dims)), rng.uniform(0.5, 2.0, n)


def test_energy_and_acceleration_match_numpy() -> None:
    pos, vel, mass = random_system()
    acc, jerk = hermite.acceleration_and_jerk(*f64(pos, vel, mass))
    expected_acc, expected_jerk = np_acc_jerk(pos, vel, mass)
    np.testing.assert_allclose(acc, expected_acc, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(jerk, expected_jerk, rtol=1e-12, atol=1e-12)
    assert float(hermite.energy(*f64(pos, vel, mass))) == pytest.approx(
        np_energy(pos, vel, mass), rel=1e-13
    )
    assert float(hermite.collision_time(*f64(pos, vel, mass))) == pytest.approx(
        np_collision_time(pos, vel, mass), rel=1e-13
    )
    # Newton's third law: no net force.
    np.testing.assert_allclose((mass[:, None] * np.asarray(acc)).sum(0), 0.0, atol=1e-12)


def test_jerk_is_the_time_derivative_of_acceleration() -> None:
    # da/dt along straight-line motion x + t v, by central differences (error ~h²: measured
    # relative error 6.9e-10).
    pos, vel, mass = f64(*random_system())
    _, jerk = hermite.acceleration_and_jerk(pos, vel, mass)
    h = 1e-5
    plus, _ = hermite.acceleration_and_jerk(pos + h * vel, vel, mass)
    minus, _ = hermite.acceleration_and_jerk(pos - h * vel, vel, mass)
    difference = (plus - minus) / (2 * h)
    assert float(jnp.linalg.norm(difference - jerk) / jnp.linalg.norm(jerk)) < 1e-6


def test_split_and_stack_round_trip() -> None:
    pos = jnp.arange(12.0).reshape(4, 3)
    vectors = hermite.split(pos)
    assert len(vectors) == 4 and all(len(row) == 3 for row in vectors)
    np.testing.assert_array_equal(hermite.stack(vectors), pos)


# ----------------------------------------------------------------------------------------------
# Initial conditions and units.


def test_units_are_the_papers() -> None:
    assert abs(ic.TIME_UNIT_YR - 0.09188) <= 1e-5
    assert abs(ic.VELOCITY_UNIT_KM_S - 51.595) <= 1e-3
    assert abs(ic.ENV_STEP_TIME - 1.0884) <= 1e-4
    # G = 1 in these units: time unit = sqrt(au³ / (G · 3 M_sun)).
    time_unit_s = np.sqrt(ic.AU_M**3 / (ic.G_SI * 3 * ic.M_SUN_KG))
    np.testing.assert_allclose(ic.TIME_UNIT_YR, time_unit_s / ic.YEAR_S, rtol=1e-12)
    np.testing.assert_allclose(ic.MASSES, 1 / 3)  # one solar mass each


@pytest.mark.parametrize("seed", [0, 1, 7, 42, 999])
def test_paper_initial_condition_follows_the_docstring(seed: int) -> None:
    x1, y1, x2, y2 = np.random.RandomState(seed).uniform(low=[5, 0, 0, 5], high=[20, 10, -10, 20])
    speed = 10.0 / ic.VELOCITY_UNIT_KM_S
    pos = np.array([[0.0, 0.0], [x1, y1], [x2, y2]])
    vel = np.array([[0.0, speed], [-speed, 0.0], [0.0, 0.0]])
    pos, vel = pos - pos.mean(0), vel - vel.mean(0)  # equal masses: the plain mean
    got_pos, got_vel = ic.paper_initial_condition(seed)
    assert got_pos.dtype == got_vel.dtype == np.float64
    np.testing.assert_allclose(got_pos, pos, rtol=0, atol=1e-13)
    np.testing.assert_allclose(got_vel, vel, rtol=0, atol=1e-15)
    assert -10 < x2 <= 0  # NumPy draws low + (high − low)·u with high < low
    np.testing.assert_allclose((ic.MASSES[:, None] * got_pos).sum(0), 0.0, atol=1e-13)
    np.testing.assert_allclose((ic.MASSES[:, None] * got_vel).sum(0), 0.0, atol=1e-15)


def test_initial_condition_table() -> None:
    table = ic.initial_condition_table(6)
    assert table.shape == (6, 2, 3, 2) and table.dtype == np.float64
    np.testing.assert_array_equal(table[4], np.stack(ic.paper_initial_condition(4)))
    with pytest.raises(ValueError):
        ic.initial_condition_table(0)


@pytest.mark.parametrize("seed", [-1, 2.0, "3", None])
def test_bad_seeds_raise(seed: object) -> None:
    with pytest.raises(ValueError):
        ic.paper_initial_condition(seed)  # type: ignore[arg-type]


def test_pythagorean_problem() -> None:
    pos, vel, mass = ic.pythagorean_problem()
    np.testing.assert_array_equal(mass, [3.0, 4.0, 5.0])
    np.testing.assert_array_equal(vel, 0.0)
    assert np_energy(pos, vel, mass) == pytest.approx(PYTHAGOREAN_ENERGY, abs=1e-12)


@pytest.mark.parametrize("criterion", ["mu", "eta"])
def test_regrouped_lanes_match_lane_by_lane_runs(criterion: str) -> None:
    # 16 systems with rates a factor 100 apart, scheduled in tiles of 4 lanes (at most 8
    # substeps a sweep) and groups of 2: the slow six sweep in two tiles, then finish in the
    # group of 4 and the group of 2 that runs to the end (integrator.py), and each lane must
    # still end as it does alone (lax.map: no vmap rule), also when the batch is vmapped twice
    # (seeds × envs flatten into one batch).
    table = ic.initial_condition_table(16)
    pos, vel = f64(table[:, 0], table[:, 1])
    mass = jnp.asarray(ic.MASSES)
    rates = jnp.asarray(np.where(np.arange(16) % 3 == 0, 1e-3, 1e-1))
    if criterion == "eta":
        rates = rates * 20.0
    schedule = integrator.LaneSchedule(tile=4, chunk=8, groups=(2,))

    def one(p: jax.Array, v: jax.Array, rate: jax.Array) -> integrator.Integration:
        return integrator.integrate(
            p, v, mass, 2.0, **{criterion: rate}, max_substeps=20_000, schedule=schedule
        )

    batched = jax.jit(jax.vmap(one))(pos, vel, rates)
    alone = jax.jit(lambda *a: jax.lax.map(lambda x: one(*x), a))(pos, vel, rates)
    nested = jax.jit(jax.vmap(jax.vmap(one)))(
        pos.reshape(2, 8, 3, 2), vel.reshape(2, 8, 3, 2), rates.reshape(2, 8)
    )
    few = jax.jit(jax.vmap(one))(pos[:2], vel[:2], rates[:2])  # one group: run to the end
    assert schedule.group_sizes(16) == [2, 4] and schedule.group_sizes(2) == [2]
    steps = np.asarray(alone.substeps)
    np.testing.assert_array_equal(np.asarray(few.substeps), steps[:2])
    np.testing.assert_allclose(few.pos, alone.pos[:2], rtol=0, atol=1e-12)
    assert steps.max() > 10 * steps.min()  # the lanes finish far apart
    np.testing.assert_array_equal(np.asarray(batched.substeps), steps)
    np.testing.assert_array_equal(np.asarray(nested.substeps).ravel(), steps)
    # The same arithmetic, up to the order XLA fuses it in (and the tests' unoptimised LLVM).
    np.testing.assert_allclose(batched.pos, alone.pos, rtol=0, atol=1e-12)
    np.testing.assert_allclose(nested.pos.reshape(16, 3, 2), alone.pos, rtol=0, atol=1e-12)
    # Aarseth's next step divides differences of derivatives by dt² and dt³ (snap, crackle), so
    # the last bits above come back larger: measured 4e-7 relative at most.
    np.testing.assert_allclose(batched.next_dt, alone.next_dt, rtol=1e-5)
