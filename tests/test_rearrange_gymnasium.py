"""Rearrange through gymnasium: check_env, rendering, and a 1,024-env vector env."""

import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import scalegym  # noqa: F401  (registers the scalegym/ ids)


@pytest.mark.parametrize("env_id", ["scalegym/Rearrange-v1", "scalegym/RearrangePick-v1"])
@pytest.mark.parametrize("render_mode", ["rgb_array", "ansi"])
def test_check_env_passes(env_id, render_mode):
    env = gymnasium.make(env_id, render_mode=render_mode)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
    env.reset(seed=0)
    frame = env.render()
    if render_mode == "rgb_array":
        assert frame.dtype == np.uint8 and frame.shape == (72, 72, 3)
    else:
        assert frame.count("\n") == 9 and "#########" in frame


def test_symbolic_obs_through_gymnasium():
    env = gymnasium.make("scalegym/Rearrange-v1", obs_mode="symbolic", num_objects=2)
    obs, _ = env.reset(seed=3)
    assert obs.shape == (20,) and obs.dtype == np.float32
    assert env.observation_space.contains(obs)


def test_make_vec_1024_steps_with_same_step_autoreset():
    envs = gymnasium.make_vec("scalegym/Rearrange-v1", num_envs=1024, max_steps_in_episode=4)
    assert envs.metadata["autoreset_mode"] == gymnasium.vector.AutoresetMode.SAME_STEP
    obs, _ = envs.reset(seed=0)
    assert obs["view"].shape == (1024, 5, 5, 4)
    envs.action_space.seed(0)
    for t in range(1, 6):
        obs, reward, terminated, truncated, info = envs.step(envs.action_space.sample())
        assert reward.shape == (1024,) and np.isfinite(reward).all()
        assert envs.observation_space.contains(obs)
        if t == 4:  # every lane that did not succeed hits the time limit together
            assert (terminated | truncated).all()
            assert info["_final_obs"].all()
            assert obs["vector"][:, 5].max() == pytest.approx(1.0)  # fresh episodes
    envs.close()
