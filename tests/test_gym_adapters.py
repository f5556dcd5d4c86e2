"""Tests of the gymnasium adapters: check_env, seeding, same-step autoreset, gymnax envs."""

from __future__ import annotations

import warnings

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import toy_envs
from gymnasium.envs.classic_control import CartPoleEnv
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

import scalegym
from scalegym.core import gym_adapters, registry, spaces
from scalegym.core.gym_adapters import FunctionalGymEnv, to_gymnasium_space
from scalegym.core.gym_vector import FunctionalVectorEnv, same_step_info
from scalegym.core.wrappers import EpisodeStatistics

TOY = "scalegym/ToyChain-v0"
LENGTH = toy_envs.ToyChainParams().length
MAX_STEPS = toy_envs.ToyChainParams().max_steps_in_episode


def rollout(env: gymnasium.Env, seed: int, n: int) -> list:
    rng = np.random.default_rng(0)
    out = [env.reset(seed=seed)[0]]
    for _ in range(n):
        obs, reward, terminated, truncated, info = env.step(int(rng.integers(2)))
        out.append((obs, reward, terminated, truncated, info))
        if terminated or truncated:
            out.append(env.reset()[0])
    return out


def assert_tree_equal(a, b) -> None:
    """Equal structure and values; dtypes may differ only between float widths and int widths."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), (a.keys(), b.keys())
        for k in a:
            assert_tree_equal(a[k], b[k])
    elif isinstance(a, tuple | list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_tree_equal(x, y)
    elif isinstance(a, np.ndarray) and a.dtype == object:
        assert isinstance(b, np.ndarray) and b.dtype == object and a.shape == b.shape
        for x, y in zip(a, b, strict=True):
            assert (x is None) == (y is None)
            if x is not None:
                assert_tree_equal(x, y)
    else:
        np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64))


@pytest.mark.parametrize("env_id", ["scalegym/ToyChain-v0", "scalegym/ToyChainBox-v0"])
def test_check_env_passes_without_warnings(env_id: str) -> None:
    env = gymnasium.make(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # dtype or space mismatches only warn in check_env
        check_env(env.unwrapped)


def test_check_env_on_gymnax_cartpole() -> None:
    env = FunctionalGymEnv(*registry.make_gymnax("CartPole-v1"))
    assert env.observation_space.dtype == np.float32 and env.observation_space.shape == (4,)
    check_env(env, skip_render_check=True)


def test_single_env_types_and_dtypes() -> None:
    env = gymnasium.make(TOY).unwrapped
    obs, info = env.reset(seed=3)
    assert info == {}
    assert set(obs) == {"pos", "vec"} and obs["pos"].dtype == np.float32
    assert obs["pos"].flags.writeable
    obs, reward, terminated, truncated, info = env.step(np.int64(1))
    assert type(reward) is float and type(terminated) is bool and type(truncated) is bool
    assert type(info["success"]) is bool
    assert obs in env.observation_space
    compiled: list[str] = []
    listener = lambda event, seconds, **kw: compiled.append(event)
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        for action in (0, np.int64(1), np.array(0)):  # host-side casts keep one compiled step
            env.step(action)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert not [e for e in compiled if "compil" in e], compiled


def test_seeding_is_deterministic_and_key_sensitive() -> None:
    a, b = gymnasium.make(TOY).unwrapped, gymnasium.make(TOY).unwrapped
    run_a, run_b = rollout(a, 7, 60), rollout(b, 7, 60)
    assert_tree_equal(run_a, run_b)
    other = rollout(gymnasium.make(TOY).unwrapped, 8, 60)
    with pytest.raises(AssertionError):
        assert_tree_equal(run_a, other)
    # An unseeded reset continues the seeded stream, so it repeats after the same seed.
    a.reset(seed=11)
    first = a.reset()[0]
    a.reset(seed=11)
    assert_tree_equal(first, a.reset()[0])


def test_truncation_at_max_steps() -> None:
    env = gymnasium.make(TOY, slip_prob=0.0, max_steps_in_episode=4).unwrapped
    env.reset(seed=0)
    results = [env.step(0) for _ in range(4)]  # always left: never reaches the goal
    assert [r[3] for r in results] == [False, False, False, True]
    assert not any(r[2] for r in results)
    assert [r[0]["vec"][0] for r in results] == [0.25, 0.5, 0.75, 1.0]  # time / limit
    # Reaching the goal on the very step the limit is reached terminates and does not truncate.
    env = gymnasium.make(TOY, slip_prob=0.0, max_steps_in_episode=4, start_max=0).unwrapped
    env.reset(seed=0)
    results = [env.step(1) for _ in range(4)]  # always right: the goal at cell 4 on step 4
    assert [(r[2], r[3]) for r in results] == [(False, False)] * 3 + [(True, False)]
    assert [r[1] for r in results] == pytest.approx([-0.1, -0.1, -0.1, 0.9])


def test_render_modes() -> None:
    env = gymnasium.make(TOY, render_mode="ansi")
    env.reset(seed=0)
    text = env.render()
    assert isinstance(text, str) and len(text) == LENGTH and "A" in text
    assert env.unwrapped.metadata["render_modes"] == ["ansi"]
    with pytest.raises(ValueError, match="rgb_array"):
        gymnasium.make(TOY, render_mode="rgb_array")
    with pytest.raises(ValueError, match="render_mode"):
        FunctionalGymEnv(*registry.make_gymnax("CartPole-v1"), render_mode="ansi")


def test_step_before_reset_is_an_error() -> None:
    with pytest.raises(gymnasium.error.ResetNeeded):
        gymnasium.make(TOY).unwrapped.step(0)
    with pytest.raises(gymnasium.error.ResetNeeded):
        gymnasium.make_vec(TOY, num_envs=2).step(np.zeros(2, np.int64))


def test_gymnasium_make_and_make_vec_forward_params() -> None:
    env = gymnasium.make(TOY, slip_prob=0.0, length=7)
    assert env.unwrapped.params.slip_prob == 0.0 and env.unwrapped.params.length == 7
    with pytest.raises(ValueError, match="slip_prob"):
        gymnasium.make(TOY, slip_prob=2.0)
    with pytest.raises(ValueError, match="unknown field"):
        gymnasium.make(TOY, not_a_param=1)

    envs = gymnasium.make_vec(TOY, num_envs=8, max_steps_in_episode=9)
    assert isinstance(envs, FunctionalVectorEnv) and envs.num_envs == 8
    assert envs.params.max_steps_in_episode == 9
    assert envs.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert envs.observation_space["pos"].shape == (8, 1)
    assert envs.single_action_space == gymnasium.spaces.Discrete(2)
    obs, _ = envs.reset(seed=0)
    assert obs in envs.observation_space
    obs, reward, terminated, truncated, _ = envs.step(envs.action_space.sample())
    assert obs in envs.observation_space
    assert reward.shape == terminated.shape == truncated.shape == (8,)
    assert terminated.dtype == truncated.dtype == np.bool_


def test_registration_is_idempotent_and_lazy() -> None:
    spec = registry.spec("ToyChain-v0")
    gym_spec = gymnasium.spec(TOY)
    gym_adapters.register_scalegym_id(spec.id)  # a second call is a no-op
    assert gymnasium.spec(TOY) is gym_spec
    assert gym_spec.vector_entry_point is not None
    assert gym_adapters.gymnasium_id("team/Thing-v1") == "team/Thing-v1"
    # Built-in ids are registered in gymnasium even before their env code exists.
    for env_id in scalegym.list_envs():
        assert gym_adapters.gymnasium_id(env_id) in gymnasium.registry


def test_vector_same_step_autoreset_semantics() -> None:
    n, steps = 64, 200
    envs = gymnasium.make_vec(TOY, num_envs=n)
    obs, _ = envs.reset(seed=0)
    time = np.zeros(n, np.int64)  # host count of steps in each lane's episode
    rng = np.random.default_rng(1)
    episodes = 0
    for _ in range(steps):
        obs, _, terminated, truncated, info = envs.step(rng.integers(2, size=n))
        assert obs in envs.observation_space
        time += 1
        done = terminated | truncated
        assert not np.any(terminated & truncated)
        np.testing.assert_array_equal(truncated, (time >= MAX_STEPS) & ~terminated)
        if done.any():
            np.testing.assert_array_equal(info["_final_obs"], done)
            np.testing.assert_array_equal(info["_final_info"], done)
            np.testing.assert_array_equal(info["final_info"]["success"][done], terminated[done])
            np.testing.assert_array_equal(info["final_info"]["_success"], done)
        else:
            assert "final_obs" not in info and "final_info" not in info
        if not done.all():
            np.testing.assert_array_equal(info["_success"], ~done)
            assert not info["success"][done].any()
        for i in range(n):
            if done[i]:
                final = info["final_obs"][i]
                # The last real observation: at the goal, or with the clock run out.
                assert final in envs.single_observation_space
                assert final["pos"][0] == pytest.approx(1.0) or not terminated[i]
                assert final["vec"][0] == pytest.approx(time[i] / MAX_STEPS)
                # ...and the returned observation is a fresh episode's.
                np.testing.assert_array_equal(obs["vec"][i], [0.0, 0.0])
                assert obs["pos"][i, 0] <= 2 / (LENGTH - 1) + 1e-6
            else:
                assert not done.any() or info["final_obs"][i] is None
                assert obs["vec"][i, 0] == pytest.approx(time[i] / MAX_STEPS)
        episodes += int(done.sum())
        time[done] = 0
    assert episodes > n  # every lane went through several resets


def test_vector_env_matches_sync_vector_env_of_single_envs() -> None:
    n = 3
    ours = gymnasium.make_vec(TOY, num_envs=n, max_steps_in_episode=6)
    sync = gymnasium.make_vec(
        TOY,
        num_envs=n,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
        max_steps_in_episode=6,
    )
    assert_tree_equal(ours.reset(seed=5)[0], sync.reset(seed=5)[0])
    rng = np.random.default_rng(2)
    dones = 0
    for _ in range(40):
        actions = rng.integers(2, size=n)
        a, b = ours.step(actions), sync.step(actions)
        assert_tree_equal(a, b)
        dones += int(np.sum(a[2] | a[3]))
    assert dones > 0


def test_vector_reset_seeds_and_reset_mask() -> None:
    n = 6
    envs = gymnasium.make_vec(TOY, num_envs=n, start_max=3)
    single = gymnasium.make(TOY, start_max=3).unwrapped
    obs, _ = envs.reset(seed=20)
    for i in range(n):
        assert_tree_equal(single.reset(seed=20 + i)[0], {k: v[i] for k, v in obs.items()})
    obs_list, _ = envs.reset(seed=[20 + i for i in range(n)])
    assert_tree_equal(obs, obs_list)
    with pytest.raises(ValueError, match="one per env"):
        envs.reset(seed=[1, 2])

    for _ in range(3):
        stepped, *_ = envs.step(np.zeros(n, np.int64))
    mask = np.array([True, False] * (n // 2))
    obs, _ = envs.reset(options={"reset_mask": mask})
    np.testing.assert_array_equal(obs["vec"][mask], 0.0)  # clock back to zero
    np.testing.assert_array_equal(obs["vec"][~mask], stepped["vec"][~mask])


def test_vector_rejects_wrong_action_batch() -> None:
    envs = gymnasium.make_vec(TOY, num_envs=4)
    envs.reset(seed=0)
    with pytest.raises(ValueError, match="leading batch dimension of 4"):
        envs.step(np.zeros(3, np.int64))


def test_same_step_info_layout_matches_gymnasium() -> None:
    done = np.array([False, True, False])
    info = {"x": np.array([1.0, 2.0, 3.0], np.float32), "nested": {"y": np.array([1, 2, 3])}}
    final_obs = np.arange(6.0).reshape(3, 2)
    out = same_step_info(info, final_obs, done)
    np.testing.assert_array_equal(out["x"], [1.0, 0.0, 3.0])
    np.testing.assert_array_equal(out["_x"], ~done)
    np.testing.assert_array_equal(out["nested"]["y"], [1, 0, 3])
    np.testing.assert_array_equal(out["final_info"]["x"], [0.0, 2.0, 0.0])
    np.testing.assert_array_equal(out["final_info"]["nested"]["_y"], done)
    assert out["final_obs"][0] is None and out["final_obs"][2] is None
    np.testing.assert_array_equal(out["final_obs"][1], [2.0, 3.0])
    assert same_step_info(info, final_obs, np.zeros(3, bool)).keys() == {
        "x",
        "_x",
        "nested",
        "_nested",
    }
    assert "x" not in same_step_info(info, final_obs, np.ones(3, bool))


def test_gymnax_env_in_vector_adapter() -> None:
    env, params = scalegym.make("gymnax:CartPole-v1")
    envs = FunctionalVectorEnv(env, params, num_envs=16)
    assert envs.single_observation_space.dtype == np.float32
    assert envs.observation_space.shape == (16, 4)
    obs, _ = envs.reset(seed=0)
    assert obs.dtype == np.float32 and obs in envs.observation_space
    ended = 0
    for _ in range(30):  # pushing right always tips the pole within ~10 steps
        obs, reward, terminated, _, info = envs.step(np.ones(16, np.int64))
        assert obs in envs.observation_space and reward.dtype == np.float32
        for i in np.flatnonzero(terminated):
            x, _, theta, _ = info["final_obs"][i]
            assert abs(x) > params.x_threshold or abs(theta) > params.theta_threshold_radians
            assert np.all(np.abs(obs[i]) <= 0.05)  # a fresh reset observation
            ended += 1
    assert ended >= 16


def test_to_gymnasium_space_converts_gymnax_spaces() -> None:
    from gymnax.environments import spaces as gx

    env, params = registry.make_gymnax("CartPole-v1")
    state_space = to_gymnasium_space(env.state_space(params))
    assert isinstance(state_space, gymnasium.spaces.Dict) and "theta" in state_space.spaces
    box = to_gymnasium_space(gx.Box(0, jnp.array([1.0, 2.0]), (2,), jnp.float32))
    assert box == gymnasium.spaces.Box(np.zeros(2, np.float32), np.array([1.0, 2.0], np.float32))
    tup = to_gymnasium_space(gx.Tuple([gx.Discrete(3), gx.Box(-1, 1, (2, 2), jnp.int32)]))
    assert tup[0] == gymnasium.spaces.Discrete(3) and tup[1].dtype == np.int32
    assert to_gymnasium_space(spaces.Discrete(4)) == gymnasium.spaces.Discrete(4)
    with pytest.raises(TypeError, match="cannot convert"):
        to_gymnasium_space(object())


def test_requires_x64_runs_under_x64_inside_the_gymnasium_env_only() -> None:
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", False)
    try:
        gymnasium.make(TOY)
        assert not jax.config.jax_enable_x64  # an env that does not declare it leaves x64 off
        env = gymnasium.make("scalegym/ToyChainX64-v0")
        env.reset(seed=0)
        env.step(env.action_space.sample())
        assert not jax.config.jax_enable_x64  # the adapter scopes x64 to its own calls
        assert EpisodeStatistics(env.unwrapped.functional_env).requires_x64  # wrappers forward it
    finally:
        jax.config.update("jax_enable_x64", before)


def test_register_gymnasium_puts_a_jax_class_behind_make_and_make_vec() -> None:
    from scalegym.core.resolve import resolve_env

    gym_id = "testns/Chain-v3"
    try:
        scalegym.register_gymnasium(gym_id, toy_envs.ToyChain, box_obs=True, slip_prob=0.0)
        env = gymnasium.make(gym_id, slip_prob=0.5)  # constructor and params, from both places
        inner = env.unwrapped.functional_env
        assert isinstance(inner, toy_envs.ToyChain) and inner.box_obs
        assert float(env.unwrapped.params.slip_prob) == 0.5
        envs = gymnasium.make_vec(gym_id, num_envs=3)
        obs, _ = envs.reset(seed=0)
        assert obs.shape[0] == 3
        resolved = resolve_env(gym_id)  # bench and suites take the jitted path
        assert resolved.kind == "jax" and isinstance(resolved.env, toy_envs.ToyChain)
        assert float(resolved.params.slip_prob) == 0.0
    finally:
        gymnasium.registry.pop(gym_id, None)
    with pytest.raises(ValueError, match=r"not a JAX env class.*gymnasium\.register instead"):
        scalegym.register_gymnasium("testns/Cart-v0", CartPoleEnv)
    assert "testns/Cart-v0" not in gymnasium.registry


def test_next_step_autoreset_under_gymnasiums_vector_wrappers() -> None:
    from gymnasium.wrappers.vector import FlattenObservation, RecordEpisodeStatistics

    # Slip-free chain from cell 0, always right: every episode is 4 steps and returns 0.6.
    kwargs = {"slip_prob": 0.0, "start_max": 0, "num_envs": 3}
    envs = gymnasium.make_vec(TOY, autoreset_mode=AutoresetMode.NEXT_STEP, **kwargs)
    assert envs.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    envs = RecordEpisodeStatistics(FlattenObservation(envs), buffer_length=100)
    obs, _ = envs.reset(seed=0)
    assert obs.shape == (3, 3)  # pos (1) + vec (2), flattened
    rewards, dones = [], []
    for _ in range(20):  # 4 episodes per lane, each followed by its reset step
        obs, reward, terminated, truncated, _ = envs.step(np.ones(3, np.int64))
        assert obs.shape == (3, 3)
        rewards.append(reward)
        dones.append(terminated | truncated)
    assert envs.episode_count == 12
    assert list(envs.length_queue) == [4] * 12
    np.testing.assert_allclose(list(envs.return_queue), [0.6] * 12, rtol=1e-6)
    # The step after an ending is the reset: reward 0, not done, and the observation is the start.
    ended = np.array(dones[:-1])
    assert (np.array(rewards[1:])[ended] == 0.0).all() and not np.array(dones[1:])[ended].any()

    same = gymnasium.make_vec(TOY, **kwargs)  # the default stays SAME_STEP, recorded short
    assert same.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    same = RecordEpisodeStatistics(same, buffer_length=100)
    same.reset(seed=0)
    for _ in range(16):
        same.step(np.ones(3, np.int64))
    assert list(same.length_queue)[3:] == [3] * (len(same.length_queue) - 3)  # gymnasium's view


def test_next_step_final_observation_and_masked_reset() -> None:
    envs = gymnasium.make_vec(
        TOY, num_envs=2, slip_prob=0.0, start_max=0, autoreset_mode="next_step"
    )
    envs.reset(seed=1)
    for _ in range(3):
        obs, *_ = envs.step(np.ones(2, np.int64))
    obs, reward, terminated, _, info = envs.step(np.ones(2, np.int64))
    assert terminated.all() and obs["pos"][:, 0].tolist() == [1.0, 1.0]  # the last obs itself
    assert info["success"].all()
    envs.reset(options={"reset_mask": np.array([True, False])})  # lane 0 reset by hand
    obs, reward, terminated, _, info = envs.step(np.ones(2, np.int64))
    assert obs["pos"][:, 0].tolist() == [0.25, 0.0]  # lane 0 stepped, lane 1 showed its reset
    assert reward[1] == 0.0 and not terminated.any()
    with pytest.raises(ValueError, match="autoreset_mode='disabled' is not supported; allowed"):
        gymnasium.make_vec(TOY, num_envs=2, autoreset_mode="disabled")
