"""A trained PPO run's policy, read back from its checkpoint, as a plain `policy(obs, key)`.

Used where a trained agent is judged outside training (ThreeBody's evaluation on the paper's
instance seeds, the REBOUND transfer). Feed-forward networks only: the policy keeps no carry, and
no previous action or reward (what a GRU with `prev_action_reward` also takes in).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from scalegym.agents.ppo.algorithm import PPO, RunnerState, make_ppo
from scalegym.agents.ppo.checkpoint import load_checkpoint
from scalegym.agents.ppo.driver import ChunkedRun
from scalegym.agents.ppo.normalization import normalize
from scalegym.agents.ppo.policy import add_time
from scalegym.agents.train import TrainRequest, training_request
from scalegym.core.resolve import resolve_env

Policy = Callable[[jax.Array, jax.Array, Any], jax.Array]


def load_trained(request: TrainRequest) -> tuple[PPO, RunnerState]:
    """The PPO pieces and the runner (all seeds, [K, ...]) that `train_agent(request)` saved in
    `request.checkpoint_dir`; the checkpoint refuses the request of another run."""
    if request.checkpoint_dir is None:
        raise ValueError("load_trained: the request names no checkpoint_dir")
    env = request.env
    with env.precision():
        ppo = make_ppo(env.env, env.params, request.config)
        # One device: loading needs no split (the checkpoint holds whole arrays).
        run = ChunkedRun(env.id, ppo, request.num_seeds, request.seed, devices=1)
        keys = jax.random.split(jax.random.key(request.seed), request.num_seeds)
        template = jax.jit(jax.vmap(ppo.init))(keys)
        runner, _ = load_checkpoint(request.checkpoint_dir, template, run.identity())
    return ppo, runner


def _legacy_request(
    env_id: str,
    checkpoint_dir: Path | None,
    *,
    total_steps: int,
    num_seeds: int,
    seed: int = 0,
    env_overrides: dict[str, Any] | None = None,
    agent_overrides: dict[str, Any] | None = None,
) -> TrainRequest:
    """The request of the old `load_trained(env_id, checkpoint_dir, total_steps=..., ...)`."""
    return training_request(
        resolve_env(env_id, **(env_overrides or {})),
        "ppo",
        steps=total_steps,
        agent_params=dict(agent_overrides or {}),
        num_seeds=num_seeds,
        seed=seed,
        devices=1,
        checkpoint_dir=checkpoint_dir,
    )


def seed_runner(runner: RunnerState, index: int) -> RunnerState:
    """Seed `index`'s runner out of the vmapped [K, ...] runner."""
    return jax.tree.map(lambda x: x[index], runner)


def ppo_policy(ppo: PPO, *, greedy: bool = True) -> Policy:
    """`policy(obs [B, ...], key, runner) → actions [B]` of one seed's runner (argmax if greedy).

    The runner is an argument, so one compiled evaluation serves every seed.
    """
    if ppo.config.recurrent:
        raise ValueError(
            "ppo_policy: recurrent (GRU) policies need a carry, and with prev_action_reward their "
            "previous action and reward, from step to step; use an MLP or CNN"
        )
    config = ppo.config

    def policy(obs: Any, key: jax.Array, runner: RunnerState) -> jax.Array:
        x = add_time(normalize(runner.obs_norm, obs, config.normalize_obs))
        batch = jax.tree.leaves(obs)[0].shape[0]
        starts = jnp.ones((1, batch), bool)
        carry = jnp.zeros((batch, 1), jnp.float32)
        _, logits, _ = ppo.apply(runner.train_state.params, carry, x, starts)
        if greedy:
            return jnp.argmax(logits[0], axis=-1).astype(jnp.int32)
        return jax.random.categorical(key, logits[0]).astype(jnp.int32)

    return policy


def host_policy(policy: Policy, theta: Any, seed: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """The policy with parameters `theta` on NumPy observations [B, ...] (host envs), jitted."""
    act = jax.jit(policy)
    key = jax.random.key(seed)

    def step(obs: np.ndarray) -> np.ndarray:
        nonlocal key
        key, now = jax.random.split(key)
        return np.asarray(act(jnp.asarray(obs), now, theta))

    return step
