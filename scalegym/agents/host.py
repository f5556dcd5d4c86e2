"""PPO on any gymnasium env: the env steps on the host, the policy and the learner are jitted.

This is the path for environments that are not functional JAX envs (e.g. gymnasium's CartPole or a
user's own Python env). Rollouts are collected from a gymnasium vector env with same-step
autoreset; the last observation of each finished episode (`info["final_obs"]`) is valued for the
truncation bootstrap exactly as on the jitted path, and the update is `ppo.make_learn`'s.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from flax.training.train_state import TrainState

from scalegym.agents.ppo import (
    PPOConfig,
    Transition,
    build_network,
    init_obs_norm,
    make_apply,
    make_learn,
    make_optimizer,
    normalize,
    update_obs_norm,
)

Logger = Callable[[int, dict[str, float]], None]
LOG_POINTS = 40


def _with_final_obs(next_obs: Any, info: dict[str, Any], done: np.ndarray) -> Any:
    """next_obs with each finished lane's entry replaced by its last real observation."""
    if not done.any():
        return next_obs
    final = info["final_obs"]
    lanes = np.flatnonzero(done)
    if isinstance(next_obs, dict):
        out = {k: v.copy() for k, v in next_obs.items()}
        for i in lanes:
            for k in out:
                out[k][i] = final[i][k]
        return out
    out = next_obs.copy()
    for i in lanes:
        out[i] = final[i]
    return out


def train_host(
    env_id: str,
    make_vector: Callable[[int], gymnasium.vector.VectorEnv],
    config: PPOConfig,
    *,
    num_seeds: int = 1,
    seed: int = 0,
    log: Logger | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train PPO on a host gymnasium env, seed after seed; the same record as the JAX path."""
    if config.recurrent:
        raise ValueError("the host path trains feed-forward networks only (network: mlp, cnn)")
    runs = [
        _train_one(env_id, make_vector, config, seed + i, log if i == 0 else None)
        for i in range(num_seeds)
    ]
    steps = config.num_updates * config.batch_size
    run_s = sum(r["run_s"] for r in runs)
    returns = [r["final_return"] for r in runs]
    return {
        "env": env_id,
        "agent": "ppo",
        "path": "host",
        "steps": steps,
        "seeds": num_seeds,
        "sps": steps * num_seeds / run_s if run_s else None,
        "compile_s": sum(r["compile_s"] for r in runs),
        "wall_s": sum(r["wall_s"] for r in runs),
        "config": config.as_dict(),
        "final": {
            "return": float(np.mean(returns)),
            "success": None,
            "train_return": float(np.mean(returns)),
            "train_success": None,
            "per_seed_return": returns,
            "per_seed_success": None,
        },
        "curve": runs[0]["curve"],
    }


def _train_one(
    env_id: str,
    make_vector: Callable[[int], gymnasium.vector.VectorEnv],
    config: PPOConfig,
    seed: int,
    log: Logger | None,
) -> dict[str, Any]:
    start = time.perf_counter()
    envs = make_vector(config.num_envs)
    if not isinstance(envs.single_action_space, gymnasium.spaces.Discrete):
        raise ValueError(f"{env_id}: PPO here needs a Discrete action space")
    key = jax.random.key(seed)
    obs, _ = envs.reset(seed=seed)
    network = build_network(config, int(envs.single_action_space.n))
    apply = make_apply(network, recurrent=False)
    key, k_init = jax.random.split(key)
    state = TrainState.create(
        apply_fn=network.apply, params=network.init(k_init, obs), tx=make_optimizer(config)
    )
    obs_norm = init_obs_norm(jax.tree.map(jnp.asarray, obs))
    learn = jax.jit(make_learn(config, apply))
    carry0 = jnp.zeros((config.num_envs, 1), jnp.float32)

    @jax.jit
    def act(params: Any, norm: Any, obs: Any, key: jax.Array) -> tuple[jax.Array, ...]:
        x = jax.tree.map(lambda o: o[None], normalize(norm, obs, config.normalize_obs))
        _, logits, value = apply(params, carry0, x, jnp.zeros((1, config.num_envs), bool))
        action = jax.random.categorical(key, logits[0]).astype(jnp.int32)
        log_prob = jnp.take_along_axis(jax.nn.log_softmax(logits[0]), action[:, None], -1)[:, 0]
        return action, log_prob, value[0]

    @jax.jit
    def values(params: Any, norm: Any, obs: Any) -> jax.Array:
        x = normalize(norm, obs, config.normalize_obs)
        starts = jnp.zeros(jax.tree.leaves(x)[0].shape[:2], bool)
        return apply(params, carry0, x, starts)[2]

    episode_return = np.zeros(config.num_envs)
    finished: list[float] = []
    curve: list[dict[str, Any]] = []
    chunk = max(1, config.num_updates // LOG_POINTS)
    compile_s = run_s = 0.0
    for update in range(config.num_updates):
        t0 = time.perf_counter()
        rows: dict[str, list[Any]] = {
            k: [] for k in ("obs", "act", "logp", "val", "rew", "term", "trunc", "final")
        }
        for _ in range(config.num_steps):
            key, k_act = jax.random.split(key)
            action, log_prob, value = act(state.params, obs_norm, obs, k_act)
            next_obs, reward, terminated, truncated, info = envs.step(np.asarray(action))
            done = terminated | truncated
            episode_return += reward
            finished.extend(episode_return[done].tolist())
            episode_return[done] = 0.0
            for name, item in (
                ("obs", obs),
                ("act", action),
                ("logp", log_prob),
                ("val", value),
                ("rew", reward),
                ("term", terminated),
                ("trunc", truncated),
                ("final", _with_final_obs(next_obs, info, done)),
            ):
                rows[name].append(item)
            obs = next_obs
        stack = lambda items: jax.tree.map(
            lambda *x: jnp.stack([jnp.asarray(v) for v in x]), *items
        )
        final_obs = stack(rows["final"])
        traj = Transition(
            obs=stack(rows["obs"]),
            starts=jnp.zeros((config.num_steps, config.num_envs), bool),
            action=stack(rows["act"]),
            log_prob=stack(rows["logp"]),
            value=stack(rows["val"]),
            reward=stack(rows["rew"]).astype(jnp.float32),
            terminated=stack(rows["term"]),
            truncated=stack(rows["trunc"]),
            final_value=values(state.params, obs_norm, final_obs),
        )
        key, k_learn = jax.random.split(key)
        state, losses = learn(state, traj, carry0, obs_norm, k_learn)
        if config.normalize_obs:
            obs_norm = update_obs_norm(obs_norm, traj.obs)
        jax.block_until_ready(state.params)
        elapsed = time.perf_counter() - t0
        if update == 0:
            compile_s = elapsed  # the first update compiles act, values and learn
        else:
            run_s += elapsed
        if (update + 1) % chunk == 0 or update + 1 == config.num_updates:
            steps = (update + 1) * config.batch_size
            scalars = {f"train/{k}": float(v) for k, v in losses.items()}
            if finished:
                scalars["train/return"] = float(np.mean(finished[-100:]))
            scalars["perf/sps"] = config.batch_size / elapsed
            curve.append({"step": steps, **scalars})
            if log is not None:
                log(steps, scalars)
    envs.close()
    final_return = float(np.mean(finished[-100:])) if finished else float("nan")
    return {
        "run_s": run_s,
        "compile_s": compile_s,
        "wall_s": time.perf_counter() - start,
        "final_return": final_return,
        "curve": curve,
    }
