"""Judge a time-step policy like the paper: fixed instance seeds, long episodes, error vs compute.

`evaluate_instances` runs one episode per instance seed (0–99 and 300 steps by default: the
paper's evaluation set) under one jit, all seeds vmapped, and returns per-episode arrays:

- `final_log10_error`: log10 |ΔE| when the episode ended (at the last step, or when |ΔE| > 0.1
  or the state went non-finite: then the error that ended it, or 0 for non-finite),
- `substeps`: Hermite substeps the episode took in all,
- `mean_reward`: the mean of the paper's per-step reward over the steps taken,
- `steps`: env steps taken, `capped`/`nonfinite`: how it ended.

A finished episode's lane integrates for zero time afterwards, so it costs nothing. A policy is
`policy(obs [B, 13] float32, key, theta) → actions [B] int32` with its parameters `theta` passed
as data, so every fixed μ (or every PPO seed) shares one compiled evaluation.

`evaluate_planner_instances` judges a search planner (`agents.planners.search`) the same way: it
chooses μ by simulating steps on a copy of each lane's state, and the Hermite substeps of those
simulations are returned apart (`planner_substeps`), to be charged beside the real ones.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from scalegym.envs.threebody import rules
from scalegym.envs.threebody.env import ThreeBody, ThreeBodyParams

Policy = Callable[[jax.Array, jax.Array, Any], jax.Array]
EVAL_INSTANCES = tuple(range(100))
EVAL_STEPS = 300


def evaluate_instances(
    env: ThreeBody,
    params: ThreeBodyParams,
    policy: Policy,
    theta: Any,
    instances: tuple[int, ...] = EVAL_INSTANCES,
    steps: int = EVAL_STEPS,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """One episode per instance seed; per-episode arrays [len(instances)] (see the module)."""
    run = _run(env, policy, None, steps)
    return jax.tree.map(np.asarray, run(_lanes(params, instances), theta, jax.random.key(seed)))


def evaluate_planner_instances(
    env: ThreeBody,
    params: ThreeBodyParams,
    planner: Any,
    instances: tuple[int, ...] = EVAL_INSTANCES,
    steps: int = EVAL_STEPS,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """`evaluate_instances` for a planner that counts its work (`Decision.sim_work`), plus
    `planner_substeps` [len(instances)]: the Hermite substeps its simulations took."""
    run = _run(env, None, planner, steps)
    return jax.tree.map(np.asarray, run(_lanes(params, instances), None, jax.random.key(seed)))


def _lanes(params: ThreeBodyParams, instances: tuple[int, ...]) -> ThreeBodyParams:
    """Params [L], one lane per instance seed, judged by the paper's reward."""
    seeds = jnp.asarray(instances, jnp.int32)
    return jax.vmap(lambda s: params.replace(instance=s, reward="paper"))(seeds)


@functools.lru_cache(maxsize=16)
def _run(
    env: ThreeBody, policy: Policy | None, planner: Any, steps: int
) -> Callable[..., dict[str, jax.Array]]:
    """The jitted evaluation of `policy` (batched, theta as data) or else of `planner` (per lane,
    vmapped; its memory carried, its simulated substeps summed)."""
    step_env = jax.vmap(env.step_env)
    reset = jax.vmap(env.reset_env)
    if planner is not None:
        plan_init = jax.vmap(functools.partial(planner.init, env))
        plan_act = jax.vmap(functools.partial(planner.act, env))
        plan_observe = jax.vmap(functools.partial(planner.observe, env))

    @jax.jit
    def run(params: ThreeBodyParams, theta: Any, key: jax.Array) -> dict[str, jax.Array]:
        lanes = params.instance.shape[0]
        obs, state = reset(jax.random.split(key, lanes), params)
        memory = None
        if planner is not None:  # its keys derive from the step keys' k_act, or from this one
            k_init = jax.random.fold_in(key, steps)
            memory = plan_init(params, obs, state, jax.random.split(k_init, lanes))
        zeros = jnp.zeros(lanes)
        init = (obs, state, memory, jnp.zeros(lanes, bool), zeros, zeros, zeros, zeros, zeros)

        def body(carry: tuple, key: jax.Array) -> tuple[tuple, None]:
            obs, state, memory, done, substeps, planned, reward_sum, taken, final_err = carry
            k_act, k_env = jax.random.split(key)
            # A finished lane integrates for no time: its loop does not run (nor its planner's).
            live = params.replace(step_time=jnp.where(done, 0.0, params.step_time))
            going = ~done
            if planner is None:
                action = policy(obs, k_act, theta)
            else:
                decision, memory = plan_act(
                    live, memory, obs, state, jax.random.split(k_act, lanes)
                )
                if decision.sim_work is None:
                    raise ValueError(
                        f"planner {planner.name!r} does not count its simulated substeps "
                        "(Decision.sim_work); use random-shooting, cem or beam"
                    )
                action = decision.action
                planned = planned + jnp.where(going, decision.sim_work, 0)
            obs2, state2, reward, terminated, info = step_env(
                jax.random.split(k_env, lanes), state, action, live
            )
            if planner is not None:
                memory = plan_observe(live, memory, action, obs2)
            ended = terminated | info["capped"]
            substeps = substeps + jnp.where(going, info["substeps"], 0)
            reward_sum = reward_sum + jnp.where(going, reward, 0.0)
            taken = taken + going
            err = jnp.where(info["nonfinite"], 1.0, jnp.abs(state2.delta_e))
            final_err = jnp.where(going, err, final_err)
            keep = lambda new, old: jnp.where(going.reshape(-1, *([1] * (new.ndim - 1))), new, old)
            obs, state = jax.tree.map(keep, (obs2, state2), (obs, state))
            carry = (obs, state, memory, done | ended, substeps, planned, reward_sum, taken)
            return (*carry, final_err), None

        carry, _ = jax.lax.scan(body, init, jax.random.split(key, steps))
        _, state, _, done, substeps, planned, reward_sum, taken, final_err = carry
        extra = {} if planner is None else {"planner_substeps": planned}
        return {
            **extra,
            "instance": params.instance,
            "final_log10_error": jnp.log10(jnp.maximum(final_err, rules.ENERGY_FLOOR)),
            "substeps": substeps,
            "mean_reward": reward_sum / jnp.maximum(taken, 1),
            "steps": taken,
            "capped": state.capped,
            "ended_early": done & (taken < steps),
        }

    return run


def evaluate_host_instances(
    integrator: str,
    act: Callable[[np.ndarray], np.ndarray],
    instances: tuple[int, ...] = EVAL_INSTANCES,
    steps: int = EVAL_STEPS,
) -> dict[str, np.ndarray]:
    """`evaluate_instances`' arrays on `ThreeBodyRebound-v0` (REBOUND, host, one at a time).

    `act(obs [1, 13]) → actions [1]`; substeps are the REBOUND integrator's own steps.
    """
    from scalegym.envs.threebody.rebound_env import ThreeBodyRebound

    rows = []
    for seed in instances:
        env = ThreeBodyRebound(
            integrator=integrator,
            instance=seed,
            num_instances=max(instances) + 1,
            max_steps_in_episode=steps,
        )
        obs, _ = env.reset(seed=0)
        substeps, reward_sum, taken, err, capped = 0, 0.0, 0, 0.0, False
        while taken < steps:
            obs, reward, terminated, truncated, info = env.step(int(act(obs[None])[0]))
            substeps, reward_sum, taken = (
                substeps + int(info["substeps"]),
                reward_sum + reward,
                taken + 1,
            )
            err = 1.0 if info["nonfinite"] else float(info["energy_error"])
            capped = bool(info["capped"])
            if terminated or truncated:
                break
        rows.append((seed, err, substeps, reward_sum / max(taken, 1), taken, capped))
    seed, err, substeps, mean_reward, taken, capped = (
        np.asarray(c) for c in zip(*rows, strict=True)
    )
    return {
        "instance": seed,
        "final_log10_error": np.log10(np.maximum(err, rules.ENERGY_FLOOR)),
        "substeps": substeps,
        "mean_reward": mean_reward,
        "steps": taken,
        "capped": capped,
        "ended_early": taken < steps,
    }


def episode_substeps(result: dict[str, np.ndarray]) -> np.ndarray:
    """Hermite substeps per episode, a planner's simulated ones included; [episodes]."""
    return result["substeps"] + result.get("planner_substeps", 0)


def summarize(result: dict[str, np.ndarray]) -> dict[str, Any]:
    """Median and IQR of final log10|ΔE|, total substeps (a planner's own included, and then
    also apart), mean paper reward: the report's row."""
    err = result["final_log10_error"]
    q25, q50, q75 = np.percentile(err, [25, 50, 75])
    substeps = episode_substeps(result)
    planned = {}
    if "planner_substeps" in result:
        planned = {
            "env_substeps": int(result["substeps"].sum()),
            "planner_substeps": int(result["planner_substeps"].sum()),
        }
    return {
        "median_log10_error": float(q50),
        "iqr_log10_error": [float(q25), float(q75)],
        "total_substeps": int(substeps.sum()),
        **planned,
        "median_substeps": float(np.median(substeps)),
        "mean_paper_reward": float(result["mean_reward"].mean()),
        "ended_early": int(result["ended_early"].sum()),
        "episodes": len(err),
    }
