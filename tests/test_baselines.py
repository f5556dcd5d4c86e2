"""Baseline policies: a fixed action (each fixed μ or η) and uniform random; judged like PPO."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scalegym
from scalegym.agents.baselines.fixed import fixed_action, random_action
from scalegym.envs.threebody import evaluation
from scalegym.suites.spec import SuiteError, parse_suite


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def test_fixed_action_gives_its_action_to_every_row():
    obs = jnp.zeros((5, 13))
    actions = jax.jit(fixed_action)(obs, jax.random.key(0), 7)
    assert actions.dtype == jnp.int32 and actions.tolist() == [7] * 5


def test_random_action_is_uniform_and_follows_the_key():
    obs = jnp.zeros((20_000, 13))
    actions = np.asarray(jax.jit(random_action)(obs, jax.random.key(0), 10))
    counts = np.bincount(actions, minlength=10)
    assert counts.size == 10 and counts.min() > 1800 and counts.max() < 2200  # 2,000 ± 4.5σ
    again = jax.jit(random_action)(obs, jax.random.key(0), 10)
    other = jax.jit(random_action)(obs, jax.random.key(1), 10)
    assert np.array_equal(actions, again) and not np.array_equal(actions, other)


def test_a_fixed_eta_runs_aarseths_criterion(x64):
    env, params = scalegym.make("ThreeBodyAarseth-v0", num_instances=3)
    fine = evaluation.evaluate_instances(env, params, fixed_action, 2, instances=(1, 2), steps=3)
    coarse = evaluation.evaluate_instances(env, params, fixed_action, 8, instances=(1, 2), steps=3)
    # η = 3.6e-3 against η = 0.17: more substeps and a smaller energy error on the same systems.
    assert np.all(fine["substeps"] > 5 * coarse["substeps"])
    assert np.all(fine["final_log10_error"] < coarse["final_log10_error"] - 2)


SUITE = """
[suite]
name = "eta"
[[cell]]
name = "t"
kind = "timestep"
env = "ThreeBody-v0"
agent = "ppo"
steps = 100
aarseth_actions = {actions}
"""


def test_aarseth_actions_outside_the_eta_table_are_named():
    parse_suite(SUITE.format(actions="[0, 9]").encode(), "eta.toml")
    with pytest.raises(SuiteError, match=r'aarseth_actions": \[10\]; allowed: 0..9'):
        parse_suite(SUITE.format(actions="[3, 10]").encode(), "eta.toml")
