"""PPO on any gymnasium env: the env steps on the host, the policy and the learner are jitted.

This is the path for environments that are not functional JAX envs (e.g. gymnasium's CartPole or
a user's own Python env). Each seed is a loop of named steps: `collect_host_rollout` (T steps of
a same-step-autoreset vector env; each finished episode's last observation, `info["final_obs"]`,
is valued for the truncation bootstrap exactly as on the jitted path), `learn` (the jitted path's
`ppo_loss.make_learn`), and `chunk_log` between chunks of the same length as the jitted path's.
Seeds run one after another; the curve and the live log are the first seed's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from flax.training.train_state import TrainState

from scalegym.agents.ppo.config import PPOConfig
from scalegym.agents.ppo.evaluation import EVAL_SEED_OFFSET, eval_scalars, evaluate_host_policy
from scalegym.agents.ppo.loss import Transition, make_learn, make_optimizer
from scalegym.agents.ppo.normalization import ObsNorm, init_obs_norm, normalize, update_obs_norm
from scalegym.agents.ppo.policy import add_time, build_network, make_apply, sample_action
from scalegym.agents.result import (
    FinalMetrics,
    Logger,
    TrainResult,
    evaluates_at,
    updates_per_log,
)
from scalegym.progress import TrainingBar, training_bar

VectorFactory = Callable[[int], gymnasium.vector.VectorEnv]


class HostPolicy(NamedTuple):
    """The jitted pieces the host loop calls."""

    # (params, norm, obs [E], key) -> (action [E], log_prob [E], value [E], the next key)
    act: Callable[..., tuple[jax.Array, jax.Array, jax.Array, jax.Array]]
    values: Callable[..., jax.Array]  # (params, norm, obs [T, E, ...]) -> [T, E]
    learn: Callable[..., tuple[TrainState, dict[str, jax.Array]]]  # (state, traj, norm, key)


class EpisodeTracker:
    """Returns and lengths of the episodes that finish while stepping, per env lane."""

    def __init__(self, num_envs: int) -> None:
        self.running_return = np.zeros(num_envs)
        self.running_length = np.zeros(num_envs, np.int64)
        self.returns: list[float] = []
        self.lengths: list[int] = []

    def record(self, reward: np.ndarray, done: np.ndarray) -> None:
        self.running_return += reward
        self.running_length += 1
        self.returns.extend(self.running_return[done].tolist())
        self.lengths.extend(self.running_length[done].tolist())
        self.running_return[done] = 0.0
        self.running_length[done] = 0

    def take(self) -> tuple[list[float], list[int]]:
        """The episodes finished since the last call."""
        out = (self.returns, self.lengths)
        self.returns, self.lengths = [], []
        return out


def make_host_policy(config: PPOConfig, network: Any) -> HostPolicy:
    apply = make_apply(network, recurrent=False)
    carry0 = jnp.zeros((config.num_envs, 1), jnp.float32)  # feed-forward: an unused carry

    @jax.jit
    def act(params: Any, norm: ObsNorm, obs: Any, key: jax.Array) -> tuple[jax.Array, ...]:
        # The key is split here, not on the host: one dispatch per step instead of two.
        key, k_act = jax.random.split(key)
        x = add_time(normalize(norm, obs, config.normalize_obs))
        starts = jnp.zeros((1, jax.tree.leaves(obs)[0].shape[0]), bool)
        _, logits, value = apply(params, carry0, x, starts)
        action, log_prob = sample_action(k_act, logits[0])
        return action, log_prob, value[0], key

    @jax.jit
    def values(params: Any, norm: ObsNorm, obs: Any) -> jax.Array:
        x = normalize(norm, obs, config.normalize_obs)
        starts = jnp.zeros(jax.tree.leaves(x)[0].shape[:2], bool)
        return apply(params, carry0, x, starts)[2]

    learn = jax.jit(make_learn(config, apply))
    return HostPolicy(
        act, values, lambda state, traj, norm, key: learn(state, traj, carry0, norm, key)
    )


def train_host(
    env_id: str,
    make_vector: VectorFactory,
    config: PPOConfig,
    *,
    num_seeds: int = 1,
    seed: int = 0,
    log: Logger | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train PPO on a host gymnasium env, seed after seed; the same result as the JAX path."""
    if config.recurrent:
        raise ValueError("the host path trains feed-forward networks only (network: mlp, cnn)")
    start = time.perf_counter()
    total = config.num_updates * config.batch_size
    with training_bar(progress, f"ppo {env_id} (host)", total * num_seeds) as bar:
        runs = [
            _train_one(
                env_id,
                make_vector,
                config,
                seed + i,
                log if i == 0 else None,
                bar,
                done_before=i * total,
            )
            for i in range(num_seeds)
        ]
    # The first update of each seed compiles; its steps are left out of the rate too.
    timed_steps = (config.num_updates - 1) * config.batch_size * num_seeds
    run_s = sum(r["run_s"] for r in runs)
    evaluation = eval_scalars(
        {k: np.array([r["eval"].get(k, 0.0) for r in runs]) for k in runs[0]["eval"]}
    )
    last_chunks = [r["curve"][-1] for r in runs]
    return TrainResult(
        env=env_id,
        agent="ppo",
        path="host",
        steps=total,
        seeds=num_seeds,
        sps=timed_steps / run_s if run_s and timed_steps else None,
        compile_s=sum(r["compile_s"] for r in runs),
        wall_s=time.perf_counter() - start,
        config=config.as_dict(),
        final=FinalMetrics.from_scalars(
            {
                **evaluation,
                "train/return": _mean_of(last_chunks, "train/return"),
                "train/success": _mean_of(last_chunks, "train/success"),
            }
        ),
        curve=runs[0]["curve"],
    )


def collect_host_rollout(
    envs: gymnasium.vector.VectorEnv,
    policy: HostPolicy,
    state: TrainState,
    obs_norm: ObsNorm,
    obs: Any,
    key: jax.Array,
    tracker: EpisodeTracker,
    num_steps: int,
) -> tuple[Transition, Any, jax.Array]:
    """`num_steps` (T) steps of E host envs: (rollout [T, E] with final values, next obs, key)."""
    rows: dict[str, list[Any]] = {
        k: [] for k in ("obs", "act", "logp", "val", "rew", "term", "trunc", "final")
    }
    for _ in range(num_steps):
        action, log_prob, value, key = policy.act(state.params, obs_norm, obs, key)
        action = np.asarray(action)
        next_obs, reward, terminated, truncated, info = envs.step(action)
        done = terminated | truncated
        tracker.record(reward, done)
        for name, item in (
            ("obs", obs),
            ("act", action),
            ("logp", log_prob),
            ("val", value),
            ("rew", reward),
            ("term", terminated),
            ("trunc", truncated),
            ("final", with_final_obs(next_obs, info, done)),
        ):
            rows[name].append(item)
        obs = next_obs
    # Stacked on the host: an eager jnp.stack of T arrays compiles a program per leaf and shape.
    stack = lambda items: jax.tree.map(lambda *x: np.stack([np.asarray(v) for v in x]), *items)
    traj = Transition(
        obs=stack(rows["obs"]),
        starts=jnp.zeros((num_steps, envs.num_envs), bool),
        action=stack(rows["act"]),
        log_prob=stack(rows["logp"]),
        value=stack(rows["val"]),
        reward=stack(rows["rew"]).astype(jnp.float32),
        terminated=stack(rows["term"]),
        truncated=stack(rows["trunc"]),
        final_value=policy.values(state.params, obs_norm, stack(rows["final"])),
    )
    return traj, obs, key


def chunk_log(
    losses: dict[str, jax.Array], tracker: EpisodeTracker, seconds: float, steps: int
) -> dict[str, float]:
    """Scalars of one chunk: its finished episodes, the last update's losses, and its SPS."""
    scalars = {f"train/{k}": float(v) for k, v in losses.items()}
    returns, lengths = tracker.take()
    scalars["train/episodes"] = float(len(returns))  # the count train/return is a mean over
    if returns:
        scalars["train/return"] = float(np.mean(returns))
        scalars["train/episode_length"] = float(np.mean(lengths))
    scalars["perf/sps"] = steps / seconds if seconds > 0 else float("nan")
    return scalars


def _train_one(
    env_id: str,
    make_vector: VectorFactory,
    config: PPOConfig,
    seed: int,
    log: Logger | None,
    bar: TrainingBar | None,
    done_before: int,
) -> dict[str, Any]:
    envs = make_vector(config.num_envs)
    if not isinstance(envs.single_action_space, gymnasium.spaces.Discrete):
        raise ValueError(f"{env_id}: PPO here needs a Discrete action space")
    key = jax.random.key(seed)
    obs, _ = envs.reset(seed=seed)
    network = build_network(config, int(envs.single_action_space.n))
    policy = make_host_policy(config, network)
    key, k_init = jax.random.split(key)
    state = TrainState.create(
        apply_fn=network.apply, params=network.init(k_init, obs), tx=make_optimizer(config)
    )
    obs_norm = init_obs_norm(jax.tree.map(jnp.asarray, obs))
    tracker = EpisodeTracker(config.num_envs)
    chunk = updates_per_log(config.num_updates)
    curve: list[dict[str, Any]] = []
    compile_s = run_s = chunk_s = 0.0
    chunk_steps = 0
    evaluation: dict[str, float] = {}

    def act(obs: Any, key: jax.Array) -> tuple[np.ndarray, jax.Array]:
        action, _, _, key = policy.act(state.params, obs_norm, obs, key)
        return np.asarray(action), key

    def evaluate() -> dict[str, float]:
        return evaluate_host_policy(
            act, make_vector, seed + EVAL_SEED_OFFSET, num_envs=config.eval_envs
        )

    try:
        for update in range(config.num_updates):
            t0 = time.perf_counter()
            traj, obs, key = collect_host_rollout(
                envs, policy, state, obs_norm, obs, key, tracker, config.num_steps
            )
            key, k_learn = jax.random.split(key)
            state, losses = policy.learn(state, traj, obs_norm, k_learn)
            if config.normalize_obs:
                obs_norm = update_obs_norm(obs_norm, traj.obs)
            jax.block_until_ready(state.params)
            elapsed = time.perf_counter() - t0
            if update == 0:
                compile_s = elapsed  # the first update compiles act, values and learn
            else:
                run_s += elapsed
                chunk_s += elapsed
                chunk_steps += config.batch_size
            last = update + 1 == config.num_updates
            if (update + 1) % chunk and not last:
                continue
            steps = (update + 1) * config.batch_size
            scalars = chunk_log(losses, tracker, chunk_s, chunk_steps)
            if evaluates_at(len(curve), last):
                evaluation = evaluate()
                scalars.update({k: v for k, v in eval_scalars(evaluation).items() if "/" in k})
            curve.append({"step": steps, **scalars})
            chunk_s, chunk_steps = 0.0, 0
            if log is not None:
                log(steps, scalars)
            if bar is not None:
                bar.update(done_before + steps, scalars)
    finally:
        envs.close()
    return {"run_s": run_s, "compile_s": compile_s, "eval": evaluation, "curve": curve}


def with_final_obs(next_obs: Any, info: dict[str, Any], done: np.ndarray) -> Any:
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


def _mean_of(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [row[key] for row in rows if row.get(key) is not None]
    return float(np.mean(values)) if values else None
