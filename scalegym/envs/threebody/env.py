"""ThreeBody-v0 / ThreeBodyAarseth-v0: an agent picks the Hermite step parameter every 0.1 yr.

One env step integrates the three bodies for 0.1 yr (`ENV_STEP_TIME` N-body units) with the
float64 Hermite integrator (`integrator.integrate`), landing exactly on the step's end time; the
action picks μ (ThreeBody-v0: dt = μ · collision time) or η (ThreeBodyAarseth-v0: Aarseth's
criterion). Observation and reward are `rules.py`'s, shared with the REBOUND env.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from scalegym.core import spaces
from scalegym.core.environment import Environment
from scalegym.envs.threebody import hermite, integrator, rules
from scalegym.envs.threebody import initial_conditions as ic

ON_CAP = ("truncate", "terminate")  # what a step that hits max_substeps does

X64_HELP = (
    "{name} integrates in float64 and needs JAX's x64 mode, which is off here: build and run it "
    "inside `with scalegym.env_precision('{name}-v0'):` (make, reset, step and any jitted code "
    "that steps it), or turn x64 on for the whole process with "
    "jax.config.update('jax_enable_x64', True) or JAX_ENABLE_X64=1; "
    "gymnasium.make('scalegym/{name}-v0') and the scalegym CLI do this for you"
)


@struct.dataclass
class ThreeBodyState:
    pos: jax.Array  # [3, 2] float64 positions (N-body units, centre-of-mass frame)
    vel: jax.Array  # [3, 2] float64 velocities
    energy0: jax.Array  # [] float64 E₀ of the episode
    delta_e: jax.Array  # [] float64 ΔE after the last step
    next_dt: jax.Array  # [] float64 Aarseth's step for the next substep (≤ 0: start afresh)
    capped: jax.Array  # [] bool: the last step hit the substep cap (truncates)
    instance: jax.Array  # [] int32 the instance seed being integrated
    time: jax.Array  # [] int32 env steps taken


@struct.dataclass
class ThreeBodyParams:
    initial_conditions: jax.Array  # [K, 2, 3, 2] float64: (positions, velocities) of seeds 0..K−1
    mass: jax.Array  # [3] float64
    instance: int | jax.Array = -1  # −1: each reset draws a seed from 0..K−1; else this seed
    max_steps_in_episode: int | jax.Array = 100  # 100 to train, 300 to evaluate (the paper's)
    max_substeps: int | jax.Array = 50_000  # Hermite steps per env step before `capped`
    step_time: float | jax.Array = ic.ENV_STEP_TIME  # N-body time units per env step (0.1 yr)
    reward: str = struct.field(pytree_node=False, default="paper")  # "paper" | "cost"
    # A capped step: "truncate" (the spec; evaluation) or "terminate" with reward −400 (to
    # train: a truncation bootstraps, so a capped step would cost a learner nothing).
    on_cap: str = struct.field(pytree_node=False, default="truncate")
    num_instances: int = struct.field(pytree_node=False, default=ic.TRAIN_SEEDS)  # K (recompiles)
    # How a batch of envs is integrated (tiles, groups, substeps per loop iteration: see
    # `integrator.LaneSchedule`; a dict of its fields is accepted). Results are the same; the
    # default is the 2-core CPU's best, a GPU may want one tile for the batch (recompiles).
    lane_schedule: integrator.LaneSchedule = struct.field(
        pytree_node=False, default=integrator.DEFAULT_SCHEDULE
    )


class ThreeBody(Environment[ThreeBodyState, ThreeBodyParams]):
    """Choose the Hermite time-step parameter μ of a chaotic three-body system, 0.1 yr at a time.

    | item         | value                                                                    |
    |--------------|--------------------------------------------------------------------------|
    | physics      | three 1 M_sun bodies in a plane, G = 1, float64 4th-order Hermite (PEC)  |
    |              | with a shared step dt = μ · collision time, landing exactly on each     |
    |              | env step's end (0.1 yr = 1.0884 units)                                   |
    | instances    | the paper's initial conditions, seeds 0..K−1 (`initial_conditions.py`);  |
    |              | reset draws one uniformly (train: K = 1000) or uses `instance`          |
    | action       | Discrete(10): μ = logspace(−4, −1, 10)[a]                                |
    | observation  | [13] float32: positions/10, velocities, −log10|ΔE| (`rules.observation`) |
    | reward       | "paper" (W = 3000, 4) or "cost" (substeps charged), `rules.py`          |
    | terminated   | |ΔE| > 0.1, or a non-finite state (`info["nonfinite"]`, reward −27,000,  |
    |              | the last finite observation returned)                                    |
    | truncated    | max_steps_in_episode (100 train / 300 eval), or a step that hit         |
    |              | max_substeps (`info["capped"]`); with on_cap = "terminate" a capped     |
    |              | step terminates instead and pays −400 (for training under a low cap)    |
    | info         | energy_error (|ΔE|), substeps (Hermite steps this env step), capped,    |
    |              | nonfinite                                                                |

    Under `vmap` a step costs the slowest lane's substeps: `max_substeps` bounds that.
    """

    requires_x64 = True
    obs_from_state = False  # a non-finite step returns the previous observation
    actions: tuple[float, ...] = rules.MU_ACTIONS
    criterion = "mu"  # the keyword of `integrator.integrate` the action's value goes to

    def __init__(self, num_instances: int = ic.TRAIN_SEEDS) -> None:
        self._num_instances = num_instances
        self._default: ThreeBodyParams | None = None

    @property
    def default_params(self) -> ThreeBodyParams:
        if self._default is None:
            self._default = self.make_params()
        return self._default

    def make_params(self, **overrides: Any) -> ThreeBodyParams:
        require_x64(self.name)
        num = int(overrides.pop("num_instances", self._num_instances))
        if num < 1:
            raise ValueError(f"{self.name} params: num_instances must be >= 1, got {num}")
        base = ThreeBodyParams(
            initial_conditions=jnp.asarray(ic.initial_condition_table(num), jnp.float64),
            mass=jnp.asarray(ic.MASSES, jnp.float64),
            num_instances=num,
        )
        fields = {
            "instance",
            "max_steps_in_episode",
            "max_substeps",
            "reward",
            "on_cap",
            "lane_schedule",
        }
        unknown = set(overrides) - fields
        if unknown:
            allowed = ", ".join(sorted(fields | {"num_instances"}))
            raise ValueError(
                f"{self.name} params: unknown field(s) {', '.join(sorted(unknown))}; "
                f"allowed: {allowed}"
            )
        schedule = overrides.get("lane_schedule")
        if isinstance(schedule, dict):  # e.g. `--set lane_schedule="{'tile': 4096}"`
            groups = tuple(schedule.get("groups", integrator.DEFAULT_SCHEDULE.groups))
            try:
                schedule = integrator.LaneSchedule(**{**schedule, "groups": groups})
            except TypeError as error:  # an unknown field
                raise ValueError(f"{self.name} params: lane_schedule: {error}") from None
            overrides["lane_schedule"] = schedule
        params = base.replace(**overrides)
        self.validate_params(params)
        return params

    def validate_params(self, params: ThreeBodyParams) -> None:
        name = f"{self.name} params"
        if params.reward not in rules.REWARDS:
            raise ValueError(
                f"{name}: reward must be one of {rules.REWARDS}, got {params.reward!r}"
            )
        if params.on_cap not in ON_CAP:
            raise ValueError(f"{name}: on_cap must be one of {ON_CAP}, got {params.on_cap!r}")
        instance = int(params.instance)
        if not -1 <= instance < params.num_instances:
            raise ValueError(
                f"{name}: instance must be -1 (draw) or a seed in 0..{params.num_instances - 1}, "
                f"got {instance}"
            )
        if int(params.max_steps_in_episode) < 1:
            raise ValueError(f"{name}: max_steps_in_episode must be >= 1")
        if int(params.max_substeps) < 1:
            raise ValueError(f"{name}: max_substeps must be >= 1")
        if not isinstance(params.lane_schedule, integrator.LaneSchedule):
            raise ValueError(f"{name}: lane_schedule must be an integrator.LaneSchedule or a dict")

    @property
    def num_actions(self) -> int:
        return len(self.actions)

    def action_space(self, params: ThreeBodyParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(self.num_actions)

    def observation_space(self, params: ThreeBodyParams | None = None) -> spaces.Box:
        return spaces.Box(-np.inf, np.inf, (rules.OBS_SIZE,), jnp.float32)

    def get_obs(
        self, state: ThreeBodyState, params: ThreeBodyParams, key: jax.Array | None = None
    ) -> jax.Array:
        return rules.observation(state.pos, state.vel, state.delta_e, jnp)

    def reset_env(
        self, key: jax.Array, params: ThreeBodyParams
    ) -> tuple[jax.Array, ThreeBodyState]:
        require_x64(self.name)  # at trace time: float32 here would break the integrator's loop
        drawn = jax.random.randint(key, (), 0, params.num_instances)
        instance = jnp.where(params.instance >= 0, params.instance, drawn).astype(jnp.int32)
        pos, vel = params.initial_conditions[instance]
        zero = jnp.zeros((), jnp.float64)
        state = ThreeBodyState(
            pos=pos,
            vel=vel,
            energy0=hermite.energy(pos, vel, params.mass),
            delta_e=zero,
            next_dt=zero - 1.0,
            capped=jnp.bool_(False),
            instance=instance,
            time=jnp.int32(0),
        )
        return self.get_obs(state, params), state

    def integrate(
        self, state: ThreeBodyState, action: jax.Array, params: ThreeBodyParams
    ) -> integrator.Integration:
        """One env step of integration with the action's μ (or η: `criterion`)."""
        rate = jnp.asarray(self.actions, jnp.float64)[action]
        return integrator.integrate(
            state.pos,
            state.vel,
            params.mass,
            params.step_time,
            **{self.criterion: rate},
            next_dt=state.next_dt,  # carried for Aarseth's criterion; the μ criterion ignores it
            max_substeps=params.max_substeps,
            schedule=params.lane_schedule,
        )

    def step_env(
        self, key: jax.Array, state: ThreeBodyState, action: Any, params: ThreeBodyParams
    ) -> tuple[jax.Array, ThreeBodyState, jax.Array, jax.Array, dict[str, Any]]:
        require_x64(self.name)  # at trace time, before the integrator's float64 loop
        action = jnp.asarray(action, jnp.int32)
        run = self.integrate(state, action, params)
        delta_e = rules.energy_error(hermite.energy(run.pos, run.vel, params.mass), state.energy0)
        nonfinite = run.nonfinite | ~jnp.isfinite(delta_e)
        t = state.time + 1
        moved = ThreeBodyState(
            pos=run.pos,
            vel=run.vel,
            energy0=state.energy0,
            delta_e=delta_e,
            next_dt=run.next_dt,
            capped=run.capped,
            instance=state.instance,
            time=t,
        )
        # Never hand an agent NaN: a non-finite step keeps the last finite state's numbers.
        kept = state.replace(time=t, capped=jnp.bool_(False))
        new = jax.tree.map(lambda a, b: jnp.where(nonfinite, a, b), kept, moved)
        reward = rules.step_reward(
            params.reward,
            jnp.where(nonfinite, state.delta_e, delta_e),
            jnp.asarray(self.actions, jnp.float64)[action],
            run.substeps,
            t,
            nonfinite,
            jnp,
        )
        terminated = nonfinite | (jnp.abs(new.delta_e) > rules.ENERGY_LIMIT)
        if params.on_cap == "terminate":
            reward = jnp.where(new.capped, jnp.float32(rules.CAPPED_PENALTY), reward)
            terminated = terminated | new.capped
        info = {
            "energy_error": jnp.abs(new.delta_e).astype(jnp.float32),
            "substeps": run.substeps,
            "capped": new.capped,
            "nonfinite": nonfinite,
        }
        return self.get_obs(new, params), new, reward, terminated, info

    def is_truncated(self, state: ThreeBodyState, params: ThreeBodyParams) -> jax.Array:
        out_of_time = state.time >= params.max_steps_in_episode
        return out_of_time | state.capped if params.on_cap == "truncate" else out_of_time


class ThreeBodyAarseth(ThreeBody):
    """ThreeBody with Aarseth's step criterion: the action picks η = logspace(−3, −0.5, 10)[a].

    Everything else (instances, observation, rewards, limits, info) is ThreeBody-v0's; the
    "paper" reward's compute term reads W₂/|log10 η|. Aarseth's step carries over between env
    steps in the state (`next_dt`), as it would in a running simulation.
    """

    actions = rules.ETA_ACTIONS
    criterion = "eta"


def require_x64(name: str) -> None:
    """Raise, saying how to enable it, when JAX's x64 mode is off."""
    if not jax.config.jax_enable_x64:
        raise RuntimeError(X64_HELP.format(name=name))
