"""A trained run's policy read back from its checkpoint (`scalegym.agents.ppo.trained`)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scalegym.agents.ppo.trained import load_trained, ppo_policy, seed_runner
from scalegym.agents.train import train_agent, training_request
from scalegym.core.resolve import resolve_env


def checkpoint_run(directory, num_seeds=2):
    """test_ppo_runs.py's checkpoint run (same programs): 6 updates of 16 envs x 16 steps."""
    return training_request(
        resolve_env("ToyChain-v0"),
        "ppo",
        steps=16 * 16 * 6,
        agent_params=dict(num_envs=16, num_steps=16),
        num_seeds=num_seeds,
        seed=0,
        checkpoint_dir=directory,
    )


def test_the_checkpointed_policy_acts_like_the_trained_network(tmp_path):
    train_agent(checkpoint_run(tmp_path), progress=False)
    ppo, runner = load_trained(checkpoint_run(tmp_path))
    assert int(runner.update[0]) == 6  # every update was restored
    obs = jax.vmap(ppo.env.reset, in_axes=(0, None))(
        jax.random.split(jax.random.key(0), 8), ppo.env_params
    )[0]
    one = seed_runner(runner, 1)
    greedy = ppo_policy(ppo)(obs, jax.random.key(1), one)
    _, logits, _ = ppo.apply(
        one.train_state.params,
        jnp.zeros((8, 1)),
        jax.tree.map(lambda x: x[None], obs),
        jnp.ones((1, 8), bool),
    )
    np.testing.assert_array_equal(np.asarray(greedy), np.argmax(np.asarray(logits[0]), -1))
    sampled = ppo_policy(ppo, greedy=False)(obs, jax.random.key(1), one)
    assert sampled.shape == (8,) and bool(jnp.all((sampled >= 0) & (sampled < logits.shape[-1])))
    # Another run's settings are refused, not silently loaded.
    with pytest.raises(ValueError, match="another run"):
        load_trained(checkpoint_run(tmp_path, num_seeds=3))
