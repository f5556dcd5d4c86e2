"""Short PPO learning tests, one per registered env family, plus PureJaxRL's CartPole.

Bars were set from measured runs on a 2-core CPU (seeds 0-7), with margin, and each is checked
against the same env's untrained policy so that a learner that does nothing fails them:

| run                                 | steps | final eval (seeds)           | untrained | bar   |
|-------------------------------------|-------|------------------------------|-----------|-------|
| Rearrange-v1 5x5, no walls, success | 200k  | 1.00 (smoke cell, seed 0)    | ~0.03     | ≥ 0.9 |
| gymnax:CartPole-v1, return          | 100k  | 226-305 (8 seeds)            | ~20       | > 150 |

Rearrange's learning test is the shipped smoke suite's PPO cell, trained once and checked in
test_suite_runner.py::test_smoke_train_cell_with_real_ppo (against `untrained_eval` below).
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from scalegym.agents.ppo.algorithm import make_ppo
from scalegym.agents.ppo.config import default_config
from scalegym.agents.ppo.driver import ChunkedRun
from scalegym.agents.train import train_agent, training_request
from scalegym.core.resolve import resolve_env


def untrained_eval(env_id: str, total_steps: int = 1, **env_overrides) -> dict[str, float]:
    """Mean return (and success) of a freshly initialised policy, evaluated by the same compiled
    programs `train_agent` uses (so a test that trains too compiles them once)."""
    resolved = resolve_env(env_id, **env_overrides)
    config = default_config(resolved).replace(total_timesteps=int(total_steps))
    run = ChunkedRun(env_id, make_ppo(resolved.env, resolved.params, config), num_seeds=1, seed=0)
    runner = jax.jit(jax.vmap(run.ppo.init))(jax.random.split(jax.random.key(0), 1))
    scalars = run.evaluate(runner)
    return {"return": scalars["eval/return"], "success": scalars.get("eval/success", np.nan)}


@pytest.mark.slow  # beyond one learning test per env family: make test-all
def test_ppo_learns_gymnax_cartpole_with_purejaxrl_settings() -> None:
    # PPOConfig's defaults are PureJaxRL's CartPole-v1 settings (4 envs x 128 steps, lr 2.5e-4
    # annealed, 4 epochs x 4 minibatches, tanh 64x64); the budget is a fifth of theirs.
    cartpole = resolve_env("gymnax:CartPole-v1")
    request = training_request(cartpole, "ppo", steps=100_000, agent_params={}, num_seeds=1, seed=0)
    result = train_agent(request, progress=False)
    assert result.config["num_envs"] == 4 and result.config["num_steps"] == 128
    assert result.final.eval_return > 150.0, result.curve
    untrained = untrained_eval("gymnax:CartPole-v1", total_steps=100_000)
    assert untrained["return"] < 50.0, untrained
