"""Evaluation on fresh envs: each seed's sampled policy, the first episode of every env counted.

Counting only each env's first episode keeps the estimate unbiased by episode length (a rollout
cut at a fixed length would over-count short episodes). `evaluate_policy` runs under jit on a
functional env; `evaluate_host_policy` steps a gymnasium vector env on the host.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from scalegym.agents.ppo.algorithm import PPO, RunnerState, learner_reward, no_previous
from scalegym.agents.ppo.networks import Previous
from scalegym.agents.ppo.normalization import normalize
from scalegym.agents.ppo.policy import add_time, sample_action

EVAL_ENVS = 64  # fresh envs per seed and evaluation (PPOConfig.eval_envs sets it for a run)
EVAL_SEED_OFFSET = 1_000_003  # evaluation seeds never coincide with a training seed


def evaluate_policy(
    ppo: PPO, runner: RunnerState, key: jax.Array, env_params: Any, num_envs: int = EVAL_ENVS
) -> dict[str, jax.Array]:
    """Sums and counts over the first episode of `num_envs` fresh envs, for one seed."""
    env, config = ppo.env, ppo.config
    limit = int(getattr(env_params, "max_steps_in_episode", 500))
    k_reset, k_run = jax.random.split(key)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(k_reset, num_envs), env_params
    )
    carry0 = jnp.zeros((num_envs, runner.carry.shape[-1]), runner.carry.dtype)
    prev0 = no_previous(num_envs) if config.prev_action_reward else None
    params = runner.train_state.params

    def body(c: tuple, key: jax.Array) -> tuple[tuple, dict[str, jax.Array]]:
        obs, state, carry, prev, starts, first = c
        k_act, k_env = jax.random.split(key)
        x = add_time(normalize(runner.obs_norm, obs, config.normalize_obs))
        carry, logits, _ = ppo.apply(params, carry, x, starts[None], add_time(prev))
        action, _ = sample_action(k_act, logits[0])
        # No auto-reset: only first episodes count, so a finished lane's later steps are never
        # read, and the program holds no reset. The keys are the ones `step` would pass on.
        k_step = jax.vmap(lambda k: jax.random.split(k)[0])(jax.random.split(k_env, num_envs))
        obs, state, reward, term, trunc, info = jax.vmap(env.transition, in_axes=(0, 0, 0, None))(
            k_step, state, action, env_params
        )
        if prev is not None:  # this step as the next takes it in, as in training's rollout
            prev = Previous(action, learner_reward(config, reward))
        done = term | trunc
        counted = done & first
        out = {
            "episodes": counted.sum(),
            "return_sum": (info["returned_episode_returns"] * counted).sum(),
        }
        if "returned_episode_success" in info:
            out["success_sum"] = (info["returned_episode_success"] * counted).sum()
        return (obs, state, carry, prev, done, first & ~done), out

    init = (obs, state, carry0, prev0, jnp.ones(num_envs, bool), jnp.ones(num_envs, bool))
    _, out = jax.lax.scan(body, init, jax.random.split(k_run, limit + 1))
    return {k: v.sum() for k, v in out.items()}


def eval_scalars(out: dict[str, Any]) -> dict[str, Any]:
    """Per-seed means of evaluation sums [K]: `eval/return` (and `eval/success`), per seed too."""
    m = {k: np.atleast_1d(np.asarray(v, np.float64)) for k, v in out.items()}
    episodes = np.maximum(m["episodes"], 1)
    per_seed_return = m["return_sum"] / episodes
    scalars: dict[str, Any] = {
        "eval/return": float(per_seed_return.mean()),
        "eval/episodes": float(m["episodes"].sum()),
        "per_seed_return": per_seed_return.tolist(),
    }
    if "success_sum" in m:
        per_seed_success = m["success_sum"] / episodes
        scalars["eval/success"] = float(per_seed_success.mean())
        scalars["per_seed_success"] = per_seed_success.tolist()
    return scalars


def evaluate_host_policy(
    act: Callable[[Any, jax.Array], tuple[np.ndarray, jax.Array]],
    make_vector: Callable[[int], gymnasium.vector.VectorEnv],
    seed: int,
    *,
    num_envs: int = EVAL_ENVS,
    max_steps: int = 100_000,
) -> dict[str, float]:
    """Sums over the first episode of `num_envs` fresh host envs; `act(obs, key)` returns the
    actions [E] and the key for the next step.

    `info["success"]` of a lane's final step counts as its success when the env reports it.
    Lanes still running after `max_steps` are left out of the sums.
    """
    envs = make_vector(num_envs)
    try:
        obs, _ = envs.reset(seed=seed)
        key = jax.random.key(seed)
        first = np.ones(num_envs, bool)
        returns = np.zeros(num_envs)
        sums = {"episodes": 0.0, "return_sum": 0.0}
        for _ in range(max_steps):
            action, key = act(obs, key)
            obs, reward, terminated, truncated, info = envs.step(action)
            returns += np.where(first, reward, 0.0)
            ended = (terminated | truncated) & first
            if ended.any():
                sums["episodes"] += float(ended.sum())
                sums["return_sum"] += float(returns[ended].sum())
                final_info = info.get("final_info", {})
                if "success" in final_info:
                    success = np.asarray(final_info["success"], np.float64)
                    sums["success_sum"] = sums.get("success_sum", 0.0) + float(success[ended].sum())
                first &= ~ended
            if not first.any():
                break
    finally:
        envs.close()
    return sums
