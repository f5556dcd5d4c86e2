"""A trained PPO run's policy, read back from its checkpoint, as a plain `policy(obs, key)`.

Used where a trained agent is judged outside training (ThreeBody's evaluation on the paper's
instance seeds, the REBOUND transfer). Feed-forward networks only: the policy keeps no carry.
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
from scalegym.agents.ppo.config import default_config
from scalegym.agents.ppo.driver import ChunkedRun
from scalegym.agents.ppo.normalization import normalize
from scalegym.agents.ppo.policy import add_time
from scalegym.core.resolve import resolve_env

Policy = Callable[[jax.Array, jax.Array, Any], jax.Array]


def load_trained(
    env_id: str,
    checkpoint_dir: Path,
    *,
    total_steps: int,
    num_seeds: int,
    seed: int = 0,
    env_overrides: dict[str, Any] | None = None,
    agent_overrides: dict[str, Any] | None = None,
) -> tuple[PPO, RunnerState]:
    """The PPO pieces and the runner (all seeds, [K, ...]) saved by `train_agent` in a directory.

    The arguments must be the training run's: the checkpoint refuses another run's settings.
    """
    config = default_config(env_id).replace(
        total_timesteps=int(total_steps), **(agent_overrides or {})
    )
    resolved = resolve_env(env_id, **(env_overrides or {}))
    ppo = make_ppo(resolved.env, resolved.params, config)
    run = ChunkedRun(env_id, ppo, num_seeds, seed, checkpoint_dir)
    template = jax.jit(jax.vmap(ppo.init))(jax.random.split(jax.random.key(seed), num_seeds))
    runner, _ = load_checkpoint(Path(checkpoint_dir), template, run.identity())
    return ppo, runner


def seed_runner(runner: RunnerState, index: int) -> RunnerState:
    """Seed `index`'s runner out of the vmapped [K, ...] runner."""
    return jax.tree.map(lambda x: x[index], runner)


def ppo_policy(ppo: PPO, *, greedy: bool = True) -> Policy:
    """`policy(obs [B, ...], key, runner) → actions [B]` of one seed's runner (argmax if greedy).

    The runner is an argument, so one compiled evaluation serves every seed.
    """
    if ppo.config.recurrent:
        raise ValueError("ppo_policy: recurrent (GRU) policies need a carry; use an MLP or CNN")
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
