"""`train_agent`: resolve an env id, pick the agent's settings, and run the right training path.

Functional JAX envs train under jit in chunks over vmapped seeds (`scalegym.agents.ppo.driver`);
plain gymnasium ids train on the host (`scalegym.agents.ppo.host`). Both return a `TrainResult`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scalegym.agents import AGENTS
from scalegym.agents.ppo.algorithm import make_ppo
from scalegym.agents.ppo.config import default_config
from scalegym.agents.ppo.driver import ChunkedRun
from scalegym.agents.result import Logger, TrainResult
from scalegym.core.resolve import resolve_env


def train_agent(
    env_id: str,
    agent: str = "ppo",
    *,
    total_steps: int,
    num_seeds: int = 1,
    seed: int = 0,
    env_overrides: dict[str, Any] | None = None,
    agent_overrides: dict[str, Any] | None = None,
    log: Logger | None = None,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    progress: bool = True,
    devices: int | None = None,
) -> TrainResult:
    """Train `agent` on `env_id` for `total_steps` env steps per seed (rounded down to whole
    updates of num_envs × num_steps, at least one). A JAX env's batch is split over `devices`
    local devices (None: all of them; `scalegym.agents.devices`)."""
    if agent not in AGENTS:
        raise ValueError(f"unknown agent {agent!r}; allowed: {', '.join(AGENTS)}")
    if total_steps < 1 or num_seeds < 1:
        raise ValueError("total_steps and num_seeds must be >= 1")
    config = default_config(env_id).replace(
        total_timesteps=int(total_steps), **(agent_overrides or {})
    )
    resolved = resolve_env(env_id, **(env_overrides or {}))
    if resolved.kind == "host":
        from scalegym.agents.ppo.host import train_host

        assert resolved.make_vector is not None
        return train_host(
            env_id,
            resolved.make_vector,
            config,
            num_seeds=num_seeds,
            seed=seed,
            log=log,
            progress=progress,
        )
    ppo = make_ppo(resolved.env, resolved.params, config)
    run = ChunkedRun(env_id, ppo, num_seeds, seed, checkpoint_dir, devices=devices)
    return run.run(log=log, resume=resume, progress=progress)
