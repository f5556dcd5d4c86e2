"""ThreeBody-v0 / ThreeBodyAarseth-v0: episode rules, rewards, x64, caps and non-finite states."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scalegym
from scalegym.agents.baselines.fixed import fixed_action
from scalegym.envs.threebody import initial_conditions as ic
from scalegym.envs.threebody import rules


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def test_make_without_x64_says_how_to_enable_it():
    with jax.enable_x64(False), pytest.raises(RuntimeError, match="jax_enable_x64"):
        scalegym.make("ThreeBody-v0")


@pytest.mark.parametrize(
    "overrides, field",
    [
        (dict(reward="speed"), "reward"),
        (dict(instance=1000), "instance"),
        (dict(instance=-2), "instance"),
        (dict(max_substeps=0), "max_substeps"),
        (dict(max_steps_in_episode=0), "max_steps_in_episode"),
        (dict(num_instances=0), "num_instances"),
        (dict(mu=0.1), "mu"),
        (dict(lane_schedule={"tile": 0}), "tile"),
        (dict(lane_schedule={"tiles": 4}), "lane_schedule"),
        (dict(lane_schedule=64), "lane_schedule"),
    ],
)
def test_bad_params_name_the_field(x64, overrides, field):
    with pytest.raises(ValueError, match=field):
        scalegym.make("ThreeBody-v0", **overrides)


def test_lane_schedule_param_changes_how_a_batch_is_stepped_not_its_results(x64):
    # 16 envs at random μ for 3 steps, in tiles of 4 lanes and groups of 2 against the default.
    env, params = scalegym.make("ThreeBody-v0", num_instances=16)
    small = env.make_params(num_instances=16, lane_schedule={"tile": 4, "groups": [2]})
    assert small.lane_schedule.tile == 4 and small.lane_schedule.groups == (2,)
    keys = jax.random.split(jax.random.key(3), 16)
    actions = jax.random.randint(jax.random.key(4), (3, 16), 0, env.num_actions)

    @jax.jit
    def rollout(params):
        _, state = jax.vmap(env.reset, in_axes=(0, None))(keys, params)
        step = jax.vmap(env.step, in_axes=(0, 0, 0, None))
        substeps, obs = [], None
        for t in range(3):
            obs, state, _, _, _, info = step(keys, state, actions[t], params)
            substeps.append(info["substeps"])
        return jnp.stack(substeps), obs

    default_steps, default_obs = rollout(params)
    small_steps, small_obs = rollout(small)
    np.testing.assert_array_equal(small_steps, default_steps)
    assert int(default_steps.max()) > 4 * max(int(default_steps.min()), 1)  # lanes regroup
    np.testing.assert_allclose(small_obs, default_obs, rtol=1e-6, atol=1e-6)


def test_reset_uses_the_papers_instance_and_observes_it(x64):
    env, params = scalegym.make("ThreeBody-v0", instance=5)
    obs, state = env.reset(jax.random.key(0), params)
    pos, vel = ic.paper_initial_condition(5)
    np.testing.assert_array_equal(np.asarray(state.pos), pos)
    np.testing.assert_allclose(np.asarray(obs[:6]), (pos / 10).ravel(), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(obs[6:12]), vel.ravel(), rtol=1e-6)
    assert obs.dtype == jnp.float32 and float(obs[12]) == 16.0  # ΔE = 0 reads as 1e-16
    # instance −1 draws from 0..K−1 by the reset key.
    env, params = scalegym.make("ThreeBody-v0", num_instances=7)
    drawn = {int(env.reset(jax.random.key(k), params)[1].instance) for k in range(40)}
    assert drawn <= set(range(7)) and len(drawn) > 3


def test_rewards_follow_the_papers_formula_and_the_first_step_pays_nothing(x64):
    env, params = scalegym.make("ThreeBody-v0", instance=0)
    _, state = env.reset(jax.random.key(0), params)
    step = jax.jit(env.step)
    for t, action in enumerate([3, 9, 0, 6], start=1):
        _, state, reward, terminated, truncated, info = step(
            jax.random.key(t), state, action, params
        )
        assert not bool(terminated | truncated)
        assert int(info["substeps"]) > 0 and float(info["energy_error"]) < rules.ENERGY_LIMIT
        mu = rules.MU_ACTIONS[action]
        expected = rules.paper_reward(float(state.delta_e), mu, t)
        np.testing.assert_allclose(float(reward), float(expected), rtol=1e-5)
        if t == 1:
            assert float(reward) == 0.0
    # The cost reward charges the substeps actually taken.
    env, params = scalegym.make("ThreeBody-v0", instance=0, reward="cost")
    _, state = env.reset(jax.random.key(0), params)
    for t in (1, 2):
        _, state, reward, _, _, info = env.step(jax.random.key(t), state, 4, params)
    expected = rules.cost_reward(float(state.delta_e), int(info["substeps"]), 2)
    np.testing.assert_allclose(float(reward), float(expected), rtol=1e-5)


def test_smaller_mu_takes_more_substeps_and_errs_less(x64):
    env, params = scalegym.make("ThreeBody-v0", instance=3)
    _, state0 = env.reset(jax.random.key(0), params)

    @jax.jit
    def run(action):
        def body(state, key):
            _, state, _, _, info = env.step_env(key, state, action, params)
            return state, info["substeps"]

        state, substeps = jax.lax.scan(body, state0, jax.random.split(jax.random.key(1), 10))
        return jnp.abs(state.delta_e), substeps.sum()

    err_fine, n_fine = run(3)  # μ = 1e-3
    err_coarse, n_coarse = run(9)  # μ = 1e-1
    assert int(n_fine) > 10 * int(n_coarse)  # measured 248 vs 10 on instance 3
    assert float(err_fine) < 1e-3 * float(err_coarse)


def test_a_step_that_hits_the_substep_cap_truncates(x64):
    env, params = scalegym.make("ThreeBody-v0", instance=0, max_substeps=3)
    _, state = env.reset(jax.random.key(0), params)
    _, state, _, terminated, truncated, info = env.step(jax.random.key(1), state, 0, params)
    assert bool(info["capped"]) and int(info["substeps"]) == 3
    assert bool(truncated) and not bool(terminated)
    assert int(state.time) == 0  # auto-reset started a new episode


def test_on_cap_terminate_ends_a_capped_step_with_the_penalty(x64):
    env, params = scalegym.make("ThreeBody-v0", instance=0, max_substeps=3, on_cap="terminate")
    _, state = env.reset(jax.random.key(0), params)
    _, _, reward, terminated, truncated, info = env.step(jax.random.key(1), state, 0, params)
    assert bool(info["capped"]) and bool(terminated) and not bool(truncated)
    assert float(reward) == rules.CAPPED_PENALTY
    # An uncapped step is untouched by the option.
    _, params = scalegym.make("ThreeBody-v0", instance=0, on_cap="terminate")
    _, _, _, terminated, truncated, info = env.step(jax.random.key(1), state, 9, params)
    assert not bool(info["capped"]) and not bool(terminated) and not bool(truncated)
    with pytest.raises(ValueError, match="on_cap must be one of"):
        scalegym.make("ThreeBody-v0", on_cap="stop")


def test_a_non_finite_state_terminates_with_the_penalty_and_a_finite_observation(x64):
    env, params = scalegym.make("ThreeBody-v0", instance=0)
    _, state = env.reset(jax.random.key(0), params)
    # Two bodies on top of each other: the forces are infinite.
    state = state.replace(pos=state.pos.at[1].set(state.pos[0]))
    obs, new, reward, terminated, info = env.step_env(jax.random.key(1), state, 5, params)
    assert bool(info["nonfinite"]) and bool(terminated)
    assert float(reward) == rules.NONFINITE_REWARD
    assert bool(jnp.all(jnp.isfinite(obs))) and bool(jnp.all(jnp.isfinite(new.pos)))
    # Through the auto-resetting step too: what reaches the agent is finite.
    out = env.step(jax.random.key(1), state, 5, params)
    for leaf in jax.tree.leaves((out[0], out[2], out[5]["final_observation"])):
        assert bool(jnp.all(jnp.isfinite(leaf)))


def test_aarseth_variant_carries_its_step_between_env_steps(x64):
    env, params = scalegym.make("ThreeBodyAarseth-v0", instance=2)
    _, state = env.reset(jax.random.key(0), params)
    assert float(state.next_dt) < 0  # no step yet: the first one starts afresh
    substeps = []
    for t in range(3):
        _, state, _, terminated, _, info = env.step(jax.random.key(t), state, 2, params)
        substeps.append(int(info["substeps"]))
        assert not bool(terminated)
    assert float(state.next_dt) > 0 and min(substeps) > 0
    assert float(state.delta_e) != 0.0 and abs(float(state.delta_e)) < 1e-3


def test_evaluation_runs_one_episode_per_seed_like_stepping_the_env(x64):
    from scalegym.envs.threebody import evaluation

    env, params = scalegym.make("ThreeBody-v0", num_instances=10)
    result = evaluation.evaluate_instances(
        env, params, fixed_action, 7, instances=(2, 5, 9), steps=4
    )
    assert result["instance"].tolist() == [2, 5, 9] and result["steps"].tolist() == [4, 4, 4]
    # Instance 5 stepped by hand: the same substeps, error and mean reward.
    one = params.replace(instance=5)
    _, state = env.reset(jax.random.key(0), one)
    substeps, rewards = 0, []
    for t in range(4):
        _, state, reward, _, info = env.step_env(jax.random.key(t), state, 7, one)
        substeps += int(info["substeps"])
        rewards.append(float(reward))
    assert int(result["substeps"][1]) == substeps
    np.testing.assert_allclose(result["mean_reward"][1], np.mean(rewards), rtol=1e-5)
    # |ΔE| ~ 1e-8 turns a last-bit difference in the energy (two programs may contract a
    # multiply-add differently) into ~1e-8 of relative difference in log10|ΔE|.
    np.testing.assert_allclose(
        result["final_log10_error"][1], np.log10(abs(float(state.delta_e))), rtol=1e-7
    )
    row = evaluation.summarize(result)
    assert row["episodes"] == 3 and row["total_substeps"] == int(result["substeps"].sum())
