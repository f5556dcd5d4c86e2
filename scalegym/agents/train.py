"""Training runs: a `TrainRequest` (built and checked once by `training_request`) and
`train_agent`, which hands it to the agent's trainer (`scalegym.agents.registry`).

PPO trains a functional JAX env under jit in chunks over vmapped seeds
(`scalegym.agents.ppo.driver`) and a plain gymnasium env on the host
(`scalegym.agents.ppo.host`); both return a `TrainResult`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scalegym.agents import registry
from scalegym.agents.devices import env_mesh
from scalegym.agents.ppo.algorithm import make_ppo
from scalegym.agents.ppo.config import PPOConfig, default_config, override_problems
from scalegym.agents.ppo.driver import ChunkedRun
from scalegym.agents.result import Logger, TrainResult
from scalegym.core.fields import is_int
from scalegym.core.resolve import ResolvedEnv


@dataclass(frozen=True)
class TrainRequest:
    """One training run: the env, the agent and its whole config, the seeds and where it saves."""

    env: ResolvedEnv
    agent: str
    config: PPOConfig  # the family's defaults, the overrides and total_timesteps, validated
    num_seeds: int
    seed: int
    devices: int | None = None  # a JAX env's batch split over this many local devices (None: all)
    checkpoint_dir: Path | None = None
    resume: bool = False  # continue from the checkpoint in checkpoint_dir when it holds one


def training_request(
    env: ResolvedEnv,
    agent: str,
    *,
    steps: int,
    agent_params: dict[str, Any],
    num_seeds: int,
    seed: int,
    devices: int | None = None,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
) -> TrainRequest:
    """The request to train `agent` on `env` for `steps` env steps per seed (rounded down to
    whole updates of num_envs × num_steps, at least one).

    Raises ValueError naming any value the run would refuse — the agent, the counts, a PPOConfig
    override (name, kind, a num_minibatches that does not split the batch), a network the host
    path cannot train, devices past the local ones or that do not split num_envs — before any
    work.
    """
    registry.lookup(agent, "train")
    for name, value in (("steps", steps), ("num_seeds", num_seeds)):
        if not is_int(value, 1):
            raise ValueError(f"{name}={value!r}; allowed: integers >= 1")
    problems = override_problems(agent_params)
    if problems:
        raise ValueError("; ".join(problems))
    config = default_config(env).replace(total_timesteps=int(steps), **agent_params)
    if env.kind == "host" and config.recurrent:
        raise ValueError("the host path trains feed-forward networks only (network: mlp, cnn)")
    if env.kind == "jax":
        env_mesh(devices, config.num_envs)  # the split the run makes
    return TrainRequest(
        env=env,
        agent=agent,
        config=config,
        num_seeds=int(num_seeds),
        seed=int(seed),
        devices=devices,
        checkpoint_dir=None if checkpoint_dir is None else Path(checkpoint_dir),
        resume=resume,
    )


def train_agent(
    request: TrainRequest, *, log: Logger | None = None, progress: bool = True
) -> TrainResult:
    """Run `request` with its agent's trainer; `log(env_steps, scalars)` after every chunk."""
    trainer = registry.trainer(request.agent)
    with request.env.precision():
        return trainer(request, log=log, progress=progress)


def train_ppo(request: TrainRequest, *, log: Logger | None, progress: bool) -> TrainResult:
    """PPO: under jit in chunks for a JAX env, on the host for a gymnasium env."""
    env = request.env
    if env.kind == "host":
        from scalegym.agents.ppo.host import train_host

        assert env.make_vector is not None
        return train_host(
            env.id,
            env.make_vector,
            request.config,
            num_seeds=request.num_seeds,
            seed=request.seed,
            log=log,
            progress=progress,
        )
    ppo = make_ppo(env.env, env.params, request.config)
    run = ChunkedRun(
        env.id,
        ppo,
        request.num_seeds,
        request.seed,
        request.checkpoint_dir,
        devices=request.devices,
    )
    return run.run(log=log, resume=request.resume, progress=progress)
