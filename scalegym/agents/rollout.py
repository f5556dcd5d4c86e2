"""A trained PPO policy played on one fresh env and written as an animated GIF.

`policy_rollout` plays one seed's policy under jit for a fixed number of frames (an episode's
first state, one frame per action, its last state, then the next episode), feeding a GRU its
carry and, with `prev_action_reward`, its previous action and reward, as evaluation does.
Actions are sampled, as in evaluation, so the pictures show the policy the report scores.
`write_policy_gif` reads a finished run's checkpoint and draws the rollout
(`scalegym.render.frames`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from scalegym.agents.ppo.algorithm import PPO, RunnerState, learner_reward, no_previous
from scalegym.agents.ppo.evaluation import EVAL_SEED_OFFSET
from scalegym.agents.ppo.networks import Previous
from scalegym.agents.ppo.normalization import normalize
from scalegym.agents.ppo.policy import add_time, sample_action
from scalegym.render.canvas import Trajectory

if TYPE_CHECKING:
    from scalegym.agents.train import TrainRequest

MAX_FRAMES = 64  # a GIF of a few seconds and well under 1 MB
ROLLOUT_KEY_OFFSET = 7  # the rollout's env and actions: not an evaluation's key, not training's


def policy_rollout(
    ppo: PPO, runner: RunnerState, key: jax.Array, *, frames: int = MAX_FRAMES
) -> Trajectory:
    """One env played by one seed's runner (unbatched, as `trained.seed_runner` gives it) for
    `frames` frames; host arrays."""
    env, config = ppo.env, ppo.config  # env: EpisodeStatistics around the family's env
    env_params, params = ppo.env_params, runner.train_state.params
    width = runner.carry.shape[-1]

    def fresh(key: jax.Array, episode: jax.Array) -> tuple:
        obs, state = env.reset_env(key, env_params)
        prev = no_previous(1) if config.prev_action_reward else None
        return obs, state, jnp.zeros((1, width), runner.carry.dtype), prev, True, False, episode

    def act(carry: tuple, key: jax.Array) -> tuple[tuple, tuple]:
        obs, state, memory, prev, start, _, episode = carry
        k_act, k_env = jax.random.split(key)
        x = add_time(normalize(runner.obs_norm, batch_of_one(obs), config.normalize_obs))
        starts = jnp.full((1, 1), start)
        memory, logits, _ = ppo.apply(params, memory, x, starts, add_time(prev))
        action, _ = sample_action(k_act, logits[0])  # [1]
        obs, state, reward, terminated, truncated, _ = env.transition(
            k_env, state, action[0], env_params
        )
        if prev is not None:
            prev = Previous(action, learner_reward(config, reward[None]))
        ended = terminated | truncated
        after = normalized((obs, state, memory, prev, False, ended, episode))
        return after, (action[0], jnp.asarray(reward, jnp.float32))

    def restart(carry: tuple, key: jax.Array) -> tuple[tuple, tuple]:
        return normalized(fresh(key, carry[-1] + 1)), (jnp.int32(-1), jnp.float32(0.0))

    def frame(carry: tuple, key: jax.Array) -> tuple[tuple, dict[str, Any]]:
        obs, state, _, _, start, ended, episode = carry
        carry = normalized(carry)
        after, (action, reward) = jax.lax.cond(ended, restart, act, carry, key)
        shown = {"state": state.env_state, "obs": obs, "start": start, "end": ended}
        shown |= {"episode": episode, "action": action, "reward": reward}
        return after, shown

    def play(key: jax.Array) -> dict[str, Any]:
        k_reset, k_run = jax.random.split(key)
        init = normalized(fresh(k_reset, jnp.int32(0)))
        return jax.lax.scan(frame, init, jax.random.split(k_run, frames))[1]

    out = jax.device_get(jax.jit(play)(key))
    return Trajectory(
        states=out["state"],
        obs=out["obs"],
        actions=np.asarray(out["action"], np.int32),
        rewards=np.asarray(out["reward"], np.float32),
        starts=np.asarray(out["start"], bool),
        ends=np.asarray(out["end"], bool),
        episodes=np.asarray(out["episode"], np.int32),
    )


def batch_of_one(tree: Any) -> Any:
    """A leading batch axis of 1 on every leaf: [...] -> [1, ...]."""
    return jax.tree.map(lambda x: x[None], tree)


def normalized(carry: tuple) -> tuple:
    """The loop's carry with the flags as bool arrays and the episode as int32 (both branches
    of the step and the scan's carry must agree on types)."""
    obs, state, memory, prev, start, ended, episode = carry
    flags = jnp.asarray(start, bool), jnp.asarray(ended, bool)
    return (obs, state, memory, prev, *flags, jnp.asarray(episode, jnp.int32))


def trained_rollout(
    request: TrainRequest, *, frames: int = MAX_FRAMES, seed_index: int = 0
) -> Trajectory:
    """Seed `seed_index`'s policy of the finished run `request` (read from its checkpoint),
    played on a fresh env."""
    from scalegym.agents.ppo.trained import seed_runner

    ppo, runner = load_runner(request)
    key = jax.random.key(request.seed + seed_index + EVAL_SEED_OFFSET + ROLLOUT_KEY_OFFSET)
    with request.env.precision():
        return policy_rollout(ppo, seed_runner(runner, seed_index), key, frames=frames)


def load_runner(request: TrainRequest) -> tuple[PPO, RunnerState]:
    """`trained.load_trained`, with the runner's template built from its shapes alone: compiling
    the runner's init for a template took longer than the rest of the GIF (17 s of 26 s for
    the smoke cell on a busy 2-core CPU)."""
    from scalegym.agents.ppo.algorithm import make_ppo
    from scalegym.agents.ppo.checkpoint import load_checkpoint
    from scalegym.agents.ppo.driver import ChunkedRun

    assert request.checkpoint_dir is not None
    env = request.env
    with env.precision():
        ppo = make_ppo(env.env, env.params, request.config)
        run = ChunkedRun(env.id, ppo, request.num_seeds, request.seed, devices=1)
        keys = jax.random.split(jax.random.key(request.seed), request.num_seeds)
        template = jax.tree.map(placeholder, jax.eval_shape(jax.vmap(ppo.init), keys))
        runner, _ = load_checkpoint(request.checkpoint_dir, template, run.identity())
    return ppo, runner


def placeholder(shape: jax.ShapeDtypeStruct) -> jax.Array:
    """An array of `shape`'s shape and dtype (keys of JAX's default kind), to be overwritten."""
    if jax.dtypes.issubdtype(shape.dtype, jax.dtypes.prng_key):
        count = int(np.prod(shape.shape, dtype=np.int64))
        return jax.random.split(jax.random.key(0), count).reshape(shape.shape)
    return jnp.zeros(shape.shape, shape.dtype)


def can_draw(request: TrainRequest) -> str | None:
    """Why the run's policy cannot be played here, or None: PPO on a JAX env, with a checkpoint."""
    if request.agent != "ppo":
        return f"agent {request.agent} keeps no policy to play"
    if request.env.kind != "jax":
        return "a host (gymnasium) env: no functional env to replay"
    if request.checkpoint_dir is None:
        return "the run kept no checkpoint"
    return None


def write_policy_gif(
    request: TrainRequest, path: str | Path, *, frames: int = MAX_FRAMES
) -> dict[str, Any]:
    """Play the finished run's first seed and write the GIF at `path`; what was drawn:
    {frames, width, height, fps, seed, episodes_ended, mean_return, bytes}."""
    from scalegym.render.frames import frame_rate, rollout_frames
    from scalegym.render.gif import write_gif

    reason = can_draw(request)
    if reason is not None:
        raise ValueError(f"no rollout GIF: {reason}")
    trajectory = trained_rollout(request, frames=frames)
    env, params = request.env.env, request.env.params
    pictures = rollout_frames(env, params, trajectory)
    fps = frame_rate(env)
    written = write_gif(path, pictures, fps)
    finished = trajectory.finished_returns()
    return {
        "frames": int(pictures.shape[0]),
        "height": int(pictures.shape[1]),
        "width": int(pictures.shape[2]),
        "fps": fps,
        "seed": request.seed,
        "episodes_ended": len(finished),
        "mean_return": float(np.mean(finished)) if finished else None,
        "bytes": written.stat().st_size,
    }
