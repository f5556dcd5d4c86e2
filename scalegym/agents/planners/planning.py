"""What every search agent shares: the model, the planner protocol and the episode runner.

- **Model**: an env's own `step_env` on a copy of a state (states are immutable pytrees, so a
  copy is the state itself). A planner draws its model keys from its own key, which is split off
  before the real env's keys: it never sees a key the real env will use later.
- **Planner**: `init(obs, state, key) → memory` at an episode's start, then per decision
  `act(memory, obs, state, key) → (Decision, memory)`, and `observe(memory, action, obs) →
  memory` after the real step. A planner for a partially observed env may read `state` only as a
  model to copy (its hidden parts: never), unless it says `oracle = True`.
- **Budget** = simulated env steps per decision (`Decision.sim_steps` reports what was spent).
  Where an env reports the work inside a step (`info["substeps"]`: ThreeBody's Hermite
  substeps), `Decision.sim_work` sums it over the simulated steps, so a planner's own compute can
  be charged beside the real env's; planners that do not count it leave it None.
- `run_episodes` plays whole episodes of one planner, episodes vmapped, under one jit;
  `planner_summary` reduces them to what `scalegym plan` reports.

Shapes: one env (no batch axis) inside a planner; `run_episodes` adds [E] episodes.
"""

from __future__ import annotations

import functools
import time
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct


@struct.dataclass
class Decision:
    action: jax.Array  # [] int32 the action to take
    sim_steps: jax.Array  # [] int32 env steps simulated to choose it
    sim_work: jax.Array | None = None  # [] int32 their work (`step_work`); None: not counted


class Planner(Protocol):
    """A search agent (see the module); planners are hashable frozen dataclasses."""

    name: str
    oracle: bool  # True: reads the hidden state (POMDPs); labelled so in every report

    def init(self, env: Any, params: Any, obs: Any, state: Any, key: jax.Array) -> Any: ...

    def act(
        self, env: Any, params: Any, memory: Any, obs: Any, state: Any, key: jax.Array
    ) -> tuple[Decision, Any]: ...

    def observe(self, env: Any, params: Any, memory: Any, action: jax.Array, obs: Any) -> Any: ...


def step_work(info: Any) -> jax.Array:
    """The work inside one env step, [] int32: `info["substeps"]` where the env reports it
    (ThreeBody's Hermite substeps), else 1 (the step itself)."""
    if isinstance(info, dict) and "substeps" in info:
        return jnp.asarray(info["substeps"], jnp.int32)
    return jnp.int32(1)


def model_step(
    env: Any, params: Any, state: Any, action: jax.Array, key: jax.Array
) -> tuple[Any, jax.Array, jax.Array, jax.Array]:
    """One simulated step on a copy of `state`: (next state, reward [], done [] bool, work [])."""
    _, nxt, reward, terminated, info = env.step_env(key, state, action, params)
    done = terminated | env.is_truncated(nxt, params)
    return nxt, jnp.asarray(reward, jnp.float32), done, step_work(info)


def rollout(
    env: Any,
    params: Any,
    state: Any,
    actions: jax.Array,
    key: jax.Array,
    discount: float = 1.0,
    unroll: bool | int = 1,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(return [] float32, live steps [] int32, work [] int32) of the action sequence `actions`
    [H] from `state` in the model, one key per step.

    Rewards after the first done are not counted (the model is not reset); live steps are the
    steps up to and including that done; work sums `step_work` over all H steps computed.
    """

    def body(carry: tuple, inputs: tuple) -> tuple[tuple, None]:
        state, total, scale, steps, work, done = carry
        action, k = inputs
        nxt, reward, now_done, step_cost = model_step(env, params, state, action, k)
        total = total + jnp.where(done, 0.0, scale * reward)
        steps = steps + (~done).astype(jnp.int32)
        return (nxt, total, scale * discount, steps, work + step_cost, done | now_done), None

    keys = jax.random.split(key, actions.shape[0])
    zero = jnp.int32(0)
    init = (state, jnp.float32(0.0), jnp.float32(1.0), zero, zero, jnp.bool_(False))
    (_, total, _, steps, work, _), _ = jax.lax.scan(body, init, (actions, keys), unroll=unroll)
    return total, steps, work


def run_episodes(
    env: Any,
    params: Any,
    planner: Any,
    num_episodes: int,
    key: jax.Array,
    max_steps: int | None = None,
) -> dict[str, jax.Array]:
    """Play `num_episodes` episodes with `planner`; per-episode arrays [E].

    Keys `return`, `length` (decisions taken), `sim_steps` (all decisions' simulated steps) and
    `success` (the env's info["success"] at the end where it has one, else whether the episode
    terminated). Fresh keys: reset, env steps and the planner's are disjoint.
    """
    limit = int(max_steps or getattr(params, "max_steps_in_episode", 100))
    return _episodes(env, planner, limit)(params, jax.random.split(key, num_episodes))


@functools.lru_cache(maxsize=32)
def _episodes(env: Any, planner: Any, limit: int) -> Any:
    def one(params: Any, key: jax.Array) -> dict[str, jax.Array]:
        k_reset, k_env, k_init, k_plan = jax.random.split(key, 4)
        obs, state = env.reset_env(k_reset, params)
        memory = planner.init(env, params, obs, state, k_init)

        def body(carry: tuple, t: jax.Array) -> tuple[tuple, None]:
            obs, state, memory, done, total, length, sims, success = carry
            decision, memory_next = planner.act(
                env, params, memory, obs, state, jax.random.fold_in(k_plan, t)
            )
            obs2, state2, reward, terminated, info = env.step_env(
                jax.random.fold_in(k_env, t), state, decision.action, params
            )
            ended = terminated | env.is_truncated(state2, params)
            memory2 = planner.observe(env, params, memory_next, decision.action, obs2)
            live = ~done
            keep = functools.partial(jax.tree.map, lambda new, old: jnp.where(live, new, old))
            won = info.get("success", terminated) if isinstance(info, dict) else terminated
            carry = (
                keep(obs2, obs),
                keep(state2, state),
                keep(memory2, memory),
                done | ended,
                total + jnp.where(live, reward, 0.0),
                length + live.astype(jnp.int32),
                sims + jnp.where(live, decision.sim_steps, 0),
                jnp.where(live & ended, jnp.asarray(won, bool), success),
            )
            return carry, None

        init = (
            obs,
            state,
            memory,
            jnp.bool_(False),
            jnp.float32(0.0),
            jnp.int32(0),
            jnp.int32(0),
            jnp.bool_(False),
        )
        (_, _, _, _, total, length, sims, success), _ = jax.lax.scan(body, init, jnp.arange(limit))
        return {
            "return": total,
            "length": length,
            "sim_steps": sims,
            "success": success,
        }

    return jax.jit(jax.vmap(one, in_axes=(None, 0)))


def planner_summary(
    env: Any, params: Any, planner: Any, num_episodes: int, seed: int
) -> dict[str, Any]:
    """`num_episodes` episodes of `planner` in one compiled call (`wall_s` includes compiling):
    mean return with its standard error, success, simulated steps per decision, oracle label."""
    start = time.perf_counter()
    out = jax.block_until_ready(
        run_episodes(env, params, planner, num_episodes, jax.random.key(seed))
    )
    wall = time.perf_counter() - start
    out = {k: np.asarray(v) for k, v in out.items()}  # each [E]
    decisions = max(1, int(out["length"].sum()))
    sem = float(out["return"].std(ddof=1) / np.sqrt(num_episodes)) if num_episodes > 1 else None
    return {
        "episodes": num_episodes,
        "return": float(out["return"].mean()),
        "return_sem": sem,
        "success": float(out["success"].mean()),
        "sim_steps_per_decision": float(out["sim_steps"].sum() / decisions),
        "wall_s": wall,
        "oracle": bool(getattr(planner, "oracle", False)),
    }
