"""Short PPO learning tests, one per registered env family, plus PureJaxRL's CartPole.

Bars were set from measured runs on a 2-core CPU (seeds 0-7), with margin, and each is checked
against the same env's untrained policy so that a learner that does nothing fails them:

| run                                 | steps | final eval (seeds)           | untrained | bar   |
|-------------------------------------|-------|------------------------------|-----------|-------|
| Rearrange-v1 5x5, no walls, success | 300k  | 1.00 (7 of 7 seeds)          | ~0.03     | ≥ 0.9 |
| gymnax:CartPole-v1, return          | 100k  | 226-305 (8 seeds)            | ~20       | > 150 |
"""

from __future__ import annotations

import jax
import numpy as np

import scalegym
from scalegym.agents.evaluation import evaluate_policy
from scalegym.agents.ppo import make_ppo
from scalegym.agents.train import default_config, train_agent

SMALL_REARRANGE = {"height": 5, "width": 5, "wall_density": 0.0}


def untrained_eval(env_id: str, **env_overrides) -> dict[str, float]:
    """Mean return (and success) of a freshly initialised policy, as `train_agent` evaluates."""
    env, params = scalegym.make(env_id, **env_overrides)
    ppo = make_ppo(env, params, default_config(env_id))
    runner = jax.jit(ppo.init)(jax.random.key(0))
    out = jax.jit(lambda r, k: evaluate_policy(ppo, r, k, params))(runner, jax.random.key(1))
    out = {k: float(v) for k, v in out.items()}
    episodes = max(out["episodes"], 1.0)
    return {
        "return": out["return_sum"] / episodes,
        "success": out.get("success_sum", np.nan) / episodes,
    }


def test_ppo_learns_small_rearrange() -> None:
    result = train_agent(
        "Rearrange-v1",
        total_steps=300_000,
        env_overrides=SMALL_REARRANGE,
        num_seeds=1,
        progress=False,
    )
    final = result.final
    assert final.eval_success >= 0.9, result.curve
    assert final.train_success >= 0.9, result.curve
    untrained = untrained_eval("Rearrange-v1", **SMALL_REARRANGE)
    assert untrained["success"] <= 0.3, untrained
    assert final.eval_return > untrained["return"] + 5.0  # the 10-point success bonus, mostly


def test_ppo_learns_gymnax_cartpole_with_purejaxrl_settings() -> None:
    # PPOConfig's defaults are PureJaxRL's CartPole-v1 settings (4 envs x 128 steps, lr 2.5e-4
    # annealed, 4 epochs x 4 minibatches, tanh 64x64); the budget is a fifth of theirs.
    result = train_agent("gymnax:CartPole-v1", total_steps=100_000, num_seeds=1, progress=False)
    assert result.config["num_envs"] == 4 and result.config["num_steps"] == 128
    assert result.final.eval_return > 150.0, result.curve
    untrained = untrained_eval("gymnax:CartPole-v1")
    assert untrained["return"] < 50.0, untrained
