"""ThreeBodyRebound-v0: ThreeBody-v0's task on the host, integrated by REBOUND.

A `gymnasium.Env` (NumPy, one system per env) with ThreeBody-v0's instances, observation, action
space, rewards and episode rules (`rules.py` computes the observation and the reward for both),
where REBOUND's integrator replaces the JAX Hermite integrator. It runs on the host path of
`scalegym bench` and `scalegym train` (`gymnasium.make("scalegym/ThreeBodyRebound-v0")`).

| item         | value                                                                    |
|--------------|--------------------------------------------------------------------------|
| physics      | three 1 M_sun bodies in a plane (z = 0), G = 1, float64 REBOUND:         |
|              | "ias15" (default), "whfast" or "leapfrog"; each env step integrates     |
|              | 0.1 yr (`ENV_STEP_TIME` = 1.0884 units), landing exactly on its end      |
| instances    | the paper's initial conditions, seeds 0..num_instances−1; reset draws  |
|              | one uniformly with `np_random` (instance = −1) or uses `instance`        |
| action       | Discrete(10): μ = logspace(−4, −1, 10)[a] (`rules.MU_ACTIONS`)          |
| μ → IAS15    | `sim.integrator.epsilon = μ` (IAS15's accuracy parameter; IAS15 picks   |
|              | its own steps, carrying its step size over from one env step to the next) |
| μ → WHFast,  | one fixed dt = μ · collision time of the state at the env step's start   |
| leapfrog     | (`collision_time`, as `hermite.collision_time`); REBOUND shortens the  |
|              | last step to land on the end time (`exact_finish_time=1`)                |
| observation  | [13] float32: positions/10, velocities, −log10|ΔE| (`rules.observation`) |
| reward       | "paper" (W = 3000, 4) or "cost" (REBOUND steps charged), `rules.py`     |
| terminated   | |ΔE| > 0.1, or a non-finite state (`info["nonfinite"]`, reward −27,000,  |
|              | the last finite observation returned)                                    |
| truncated    | max_steps_in_episode (100 train / 300 eval), or a step that hit         |
|              | max_substeps (`info["capped"]`), never together with terminated          |
| info         | energy_error (|ΔE|), substeps (REBOUND steps this env step: IAS15's      |
|              | accepted steps, or the fixed-dt steps), capped, nonfinite                |

The substep cap is exact for every integrator: a heartbeat (REBOUND calls it before each step)
stops the integration once `max_substeps` steps are done. A Python heartbeat costs about 4 µs a
step, so the fixed-step integrators install it only for an env step whose step count (known in
advance from dt) could reach the cap; IAS15's count is not known in advance, so it always has one
(IAS15 takes a few steps per env step, so that costs little). Env step t ends at t · 0.1 yr on
the simulation's clock, so a step after a capped one (past the truncation) also makes up the rest.
`info["energy_error"]` is a Python float of the float64 |ΔE| (ThreeBody-v0 reports float32).
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium
import numpy as np
import rebound

from scalegym.core.fields import is_int
from scalegym.envs.threebody import initial_conditions as ic
from scalegym.envs.threebody import rules

__all__ = ["INTEGRATORS", "ThreeBodyRebound", "collision_time"]

INTEGRATORS = ("ias15", "whfast", "leapfrog")


def collision_time(pos: np.ndarray, vel: np.ndarray, mass: np.ndarray) -> float:
    """min over pairs of min(r/|v_ij|, sqrt(r³/(m_i + m_j))): `hermite.collision_time` in NumPy.

    Plain Python floats: for three bodies that is several times faster than array operations.
    A pair at rest relative to each other has no crossing time and counts its free fall only.
    """
    p, v, m = pos.tolist(), vel.tolist(), mass.tolist()
    best = math.inf
    for i in range(len(p)):
        for j in range(i + 1, len(p)):
            r2 = sum((a - b) ** 2 for a, b in zip(p[j], p[i], strict=True))
            v2 = sum((a - b) ** 2 for a, b in zip(v[j], v[i], strict=True))
            crossing = math.sqrt(r2 / v2) if v2 > 0 else math.inf
            free_fall = math.sqrt(r2 * math.sqrt(r2) / (m[i] + m[j]))
            best = min(best, crossing, free_fall)
    return best


class _StepLimit:
    """REBOUND heartbeat: stop the integration once `sim.steps_done` reaches `limit`.

    `stopped` records that it did: that is the cap, not `sim.t < end` (REBOUND's exact finish
    lands within an ulp or so of the end time, on either side).
    """

    def __init__(self) -> None:
        self.limit = 0
        self.stopped = False

    def __call__(self, sim_pointer: Any) -> None:
        sim = sim_pointer.contents
        if sim.steps_done >= self.limit:
            self.stopped = True
            sim.stop()


class ThreeBodyRebound(gymnasium.Env[np.ndarray, np.int64]):
    """ThreeBody-v0 on the host with REBOUND's IAS15, WHFast or leapfrog (module docstring)."""

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium's class attribute)

    def __init__(
        self,
        integrator: str = "ias15",
        reward: str = "paper",
        max_steps_in_episode: int = 100,
        instance: int = -1,
        num_instances: int = ic.TRAIN_SEEDS,
        max_substeps: int = 50_000,
        render_mode: str | None = None,
    ) -> None:
        name = "ThreeBodyRebound"
        if integrator not in INTEGRATORS:
            raise ValueError(f"{name}: integrator must be one of {INTEGRATORS}, got {integrator!r}")
        if reward not in rules.REWARDS:
            raise ValueError(f"{name}: reward must be one of {rules.REWARDS}, got {reward!r}")
        for field, value in (
            ("max_steps_in_episode", max_steps_in_episode),
            ("num_instances", num_instances),
            ("max_substeps", max_substeps),
        ):
            if not is_int(value, 1):
                raise ValueError(f"{name}: {field} must be an integer >= 1, got {value!r}")
        if not is_int(instance) or not -1 <= instance < num_instances:
            raise ValueError(
                f"{name}: instance must be -1 (draw) or a seed in 0..{num_instances - 1}, "
                f"got {instance!r}"
            )
        if render_mode is not None:
            raise ValueError(
                f"{name}: render_mode must be None (no rendering), got {render_mode!r}"
            )
        self.integrator = integrator
        self.reward_kind = reward
        self.max_steps_in_episode = int(max_steps_in_episode)
        self.instance = int(instance)
        self.num_instances = int(num_instances)
        self.max_substeps = int(max_substeps)
        self.render_mode = render_mode
        self.action_space = gymnasium.spaces.Discrete(len(rules.MU_ACTIONS))
        self.observation_space = gymnasium.spaces.Box(
            -np.inf, np.inf, (rules.OBS_SIZE,), np.float32
        )
        self._limit = _StepLimit()
        self._buffer = np.zeros((ic.NUM_BODIES, 6))  # x, y, z, vx, vy, vz of each body
        self._sim: rebound.Simulation | None = None
        self._instance_seed = -1

    @property
    def simulation(self) -> rebound.Simulation:
        """The episode's REBOUND simulation (after `reset`), e.g. to inspect or perturb it."""
        if self._sim is None:
            raise RuntimeError("ThreeBodyRebound: call reset() before using the simulation")
        return self._sim

    @property
    def instance_seed(self) -> int:
        """The instance seed of the current episode (−1 before the first reset)."""
        return self._instance_seed

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if self.instance >= 0:
            instance = self.instance
        else:
            instance = int(self.np_random.integers(self.num_instances))
        pos, vel = ic.paper_initial_condition(instance)
        # A fresh simulation per episode: IAS15 keeps state between steps (its step size and
        # predictor), and reusing it would make an episode depend on the one before.
        sim = rebound.Simulation()
        sim.G = 1.0
        for m, p, v in zip(ic.MASSES, pos, vel, strict=True):
            sim.add(m=float(m), x=p[0], y=p[1], z=0.0, vx=v[0], vy=v[1], vz=0.0)
        sim.integrator = self.integrator
        sim.heartbeat = self._limit
        self._heartbeat_on = sim._hb  # installed in C; swapped with a NULL pointer when unneeded
        self._heartbeat_off = type(sim._hb)()
        if self.integrator != "ias15":
            sim._heartbeat = self._heartbeat_off
        self._sim = sim
        self._instance_seed = instance
        self._energy0 = sim.energy()
        self._delta_e = 0.0
        self._time = 0
        self._obs = rules.observation(pos, vel, np.float64(0.0), np)
        return self._obs.copy(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        sim = self.simulation
        a = int(action)
        if not 0 <= a < len(rules.MU_ACTIONS):
            raise ValueError(f"ThreeBodyRebound: action must be in 0..9, got {action!r}")
        mu = rules.MU_ACTIONS[a]
        t = self._time + 1
        end_time = t * ic.ENV_STEP_TIME
        substeps, capped, finite = self._integrate(sim, mu, end_time)
        sim.serialize_particle_data(xyzvxvyvz=self._buffer)
        pos, vel = self._buffer[:, 0:2].copy(), self._buffer[:, 3:5].copy()
        delta_e = float(rules.energy_error(sim.energy(), self._energy0))
        nonfinite = not (finite and np.isfinite(self._buffer).all() and math.isfinite(delta_e))
        if nonfinite:
            # Never hand an agent NaN: keep the last finite observation and ΔE (as ThreeBody-v0).
            delta_e, capped = self._delta_e, False
        else:
            self._obs = rules.observation(pos, vel, np.float64(delta_e), np)
            self._delta_e = delta_e
        self._time = t
        reward = rules.step_reward(self.reward_kind, delta_e, mu, substeps, t, nonfinite, np)
        terminated = nonfinite or abs(delta_e) > rules.ENERGY_LIMIT
        truncated = (t >= self.max_steps_in_episode or capped) and not terminated
        info = {
            "energy_error": abs(delta_e),
            "substeps": substeps,
            "capped": capped,
            "nonfinite": nonfinite,
        }
        return self._obs.copy(), float(reward), terminated, truncated, info

    def _integrate(
        self, sim: rebound.Simulation, mu: float, end_time: float
    ) -> tuple[int, bool, bool]:
        """Advance `sim` to `end_time`: (steps taken, capped, state still finite)."""
        start_steps = sim.steps_done
        self._limit.limit = start_steps + self.max_substeps
        self._limit.stopped = False
        if self.integrator == "ias15":
            sim.integrator.epsilon = mu
        else:
            sim.serialize_particle_data(xyzvxvyvz=self._buffer)
            dt = mu * collision_time(self._buffer[:, 0:2], self._buffer[:, 3:5], ic.MASSES)
            if not (math.isfinite(dt) and dt > 0):
                return 0, False, False  # coinciding bodies: no step can be taken
            sim.dt = dt
            # Whole steps of dt and one shortened last one; +1 for rounding at the end time.
            needed = math.ceil((end_time - sim.t) / dt) + 1
            sim._heartbeat = (
                self._heartbeat_on if needed >= self.max_substeps else self._heartbeat_off
            )
        sim.integrate(end_time, exact_finish_time=1)
        substeps = sim.steps_done - start_steps
        finite = math.isfinite(sim.t)
        return substeps, finite and self._limit.stopped, finite
