"""ThreeBodyRebound-v0: ThreeBody-v0's task on the host with REBOUND (IAS15, WHFast, leapfrog)."""

from __future__ import annotations

import math

import gymnasium
import jax
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import scalegym
from scalegym.core.resolve import resolve_env
from scalegym.envs.threebody import initial_conditions as ic
from scalegym.envs.threebody import rebound_env, rules
from scalegym.envs.threebody.rebound_env import ThreeBodyRebound, collision_time

GYM_ID = "scalegym/ThreeBodyRebound-v0"
FIXED_STEP = ("whfast", "leapfrog")


def test_check_env_passes_for_every_integrator() -> None:
    for integrator in rebound_env.INTEGRATORS:
        check_env(ThreeBodyRebound(integrator=integrator), skip_render_check=True)


def test_gymnasium_make_and_resolve_give_the_host_env() -> None:
    env = gymnasium.make(GYM_ID, integrator="leapfrog", max_steps_in_episode=7)
    assert isinstance(env.unwrapped, ThreeBodyRebound)
    assert env.unwrapped.integrator == "leapfrog"
    check_env(env.unwrapped, skip_render_check=True)
    resolved = resolve_env(GYM_ID)
    assert resolved.kind == "host"
    vector_env = resolved.make_vector(2)
    try:
        obs, _ = vector_env.reset(seed=0)
        assert obs.shape == (2, rules.OBS_SIZE)
        obs, reward, *_ = vector_env.step(np.array([0, 9]))
        assert np.isfinite(obs).all() and reward.shape == (2,)
    finally:
        vector_env.close()
    assert "ThreeBodyRebound-v0" not in scalegym.list_envs()  # not a JAX env id


def test_ias15_tracks_the_jax_env() -> None:
    """Instance 0, action 0 (μ = 1e-4) three times: first observations identical, then the
    positions and velocities agree to 1e-5 (measured: 0 in float32, 1.5e-14 in float64)."""
    with jax.enable_x64(True):
        env, params = scalegym.make("ThreeBody-v0", instance=0)
        obs_jax, state = env.reset(jax.random.key(0), params)
        host = ThreeBodyRebound(instance=0)
        obs, _ = host.reset(seed=0)
        np.testing.assert_array_equal(obs, np.asarray(obs_jax))
        step = jax.jit(env.step)
        for k in range(3):
            obs_jax, state, *_ = step(jax.random.key(k), state, 0, params)
            obs, _, terminated, truncated, info = host.step(0)
            assert not (terminated or truncated or info["capped"] or info["nonfinite"])
        np.testing.assert_allclose(obs[:12], np.asarray(obs_jax)[:12], rtol=0, atol=1e-5)
        assert host.simulation.integrator.epsilon == rules.MU_ACTIONS[0]  # action → ε = μ


@pytest.mark.parametrize("reward", rules.REWARDS)
def test_rewards_follow_rules(reward: str) -> None:
    env = ThreeBodyRebound(instance=3, reward=reward, max_steps_in_episode=6)
    env.reset(seed=0)
    actions = [2, 5, 1, 4, 3, 2]
    for t, action in enumerate(actions, start=1):
        _, got, terminated, truncated, info = env.step(action)
        want = rules.step_reward(
            reward,
            info["energy_error"],
            rules.MU_ACTIONS[action],
            info["substeps"],
            t,
            False,
            np,
        )
        assert got == float(want)
        if t == 1:
            assert got == 0.0
        assert not terminated
        assert truncated == (t == len(actions))


def test_instances_are_drawn_with_np_random() -> None:
    env = ThreeBodyRebound(num_instances=5)
    seen = set()
    for seed in range(20):
        obs, _ = env.reset(seed=seed)
        seen.add(env.instance_seed)
        pos, vel = ic.paper_initial_condition(env.instance_seed)
        np.testing.assert_array_equal(obs, rules.observation(pos, vel, 0.0, np))
    assert seen <= set(range(5)) and len(seen) > 1
    env.reset(seed=7)
    first = env.instance_seed
    env.reset(seed=7)
    assert env.instance_seed == first


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("integrator", "rk4"),
        ("reward", "speed"),
        ("max_steps_in_episode", 0),
        ("instance", -2),
        ("instance", 1000),
        ("num_instances", 0),
        ("max_substeps", 0),
        ("max_substeps", 1.5),
        ("render_mode", "human"),
    ],
)
def test_bad_constructor_values_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        ThreeBodyRebound(**{field: value})


@pytest.mark.parametrize("integrator", FIXED_STEP)
def test_fixed_step_lands_on_the_end_time_with_dt_from_mu(integrator: str) -> None:
    pos, vel = ic.paper_initial_condition(0)
    tc = collision_time(pos, vel, ic.MASSES)
    counts = []
    for action in (0, 3, 6):
        env = ThreeBodyRebound(integrator=integrator, instance=0)
        env.reset(seed=0)
        _, _, _, _, info = env.step(action)
        assert abs(env.simulation.t - ic.ENV_STEP_TIME) < 1e-12
        expected = math.ceil(ic.ENV_STEP_TIME / (rules.MU_ACTIONS[action] * tc))
        assert abs(info["substeps"] - expected) <= 1
        counts.append(info["substeps"])
        for t in (2, 3):
            env.step(action)
            assert abs(env.simulation.t - t * ic.ENV_STEP_TIME) < 1e-12
    assert counts[0] > counts[1] > counts[2]  # about 1/μ: smaller μ, more steps


def test_collision_time_matches_hermite() -> None:
    from scalegym.envs.threebody import hermite

    with jax.enable_x64(True):
        for seed in range(5):
            pos, vel = ic.paper_initial_condition(seed)
            want = float(hermite.collision_time(pos, vel, np.asarray(ic.MASSES)))
            assert collision_time(pos, vel, ic.MASSES) == pytest.approx(want, rel=1e-14)
    # Bodies at rest: no crossing time, the free fall of the closest pair (r = 1, m = 2/3).
    still = np.zeros((3, 2))
    assert collision_time(np.eye(3, 2), still, ic.MASSES) == pytest.approx(math.sqrt(1.5))


@pytest.mark.parametrize("integrator", rebound_env.INTEGRATORS)
def test_substep_cap_truncates_exactly(integrator: str) -> None:
    env = ThreeBodyRebound(integrator=integrator, instance=0, max_substeps=2)
    env.reset(seed=0)
    # IAS15's first step starts from REBOUND's trial dt (0.001), far below the 0.1 yr step.
    _, _, terminated, truncated, info = env.step(0)
    assert info["capped"] and info["substeps"] == 2
    assert truncated and not terminated
    assert env.simulation.t < ic.ENV_STEP_TIME


@pytest.mark.parametrize("integrator", rebound_env.INTEGRATORS)
def test_nonfinite_state_terminates_with_a_finite_observation(integrator: str) -> None:
    env = ThreeBodyRebound(integrator=integrator, instance=1)
    env.reset(seed=0)
    before, *_ = env.step(2)
    env.simulation.particles[1].vx = float("nan")
    obs, reward, terminated, truncated, info = env.step(2)
    assert info["nonfinite"] and terminated and not truncated and not info["capped"]
    assert reward == pytest.approx(rules.NONFINITE_REWARD)
    np.testing.assert_array_equal(obs, before)
    assert np.isfinite(obs).all()


def test_coinciding_bodies_terminate(monkeypatch: pytest.MonkeyPatch) -> None:
    real = ic.paper_initial_condition

    def coincide(seed: int) -> tuple[np.ndarray, np.ndarray]:
        pos, vel = real(seed)
        pos[1] = pos[0]
        return pos, vel

    monkeypatch.setattr(rebound_env.ic, "paper_initial_condition", coincide)
    for integrator in rebound_env.INTEGRATORS:
        env = ThreeBodyRebound(integrator=integrator, instance=0)
        first, _ = env.reset(seed=0)
        obs, reward, terminated, _, info = env.step(0)
        assert info["nonfinite"] and terminated
        assert reward == pytest.approx(rules.NONFINITE_REWARD)
        np.testing.assert_array_equal(obs, first)
