"""`compute_once` is an exact identity; `obs_from_state` yields the selected observations."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scalegym
from scalegym.core.fusion import compute_once


def test_compute_once_is_the_identity_for_every_dtype() -> None:
    floats = jnp.array([jnp.nan, -0.0, 0.0, -jnp.inf, jnp.inf, -1.5, 3e38], jnp.float32)
    leaves = {
        "f32": floats,
        "f64": floats.astype(jnp.float64) if jax.config.jax_enable_x64 else floats,
        "f16": floats[:6].astype(jnp.float16),
        "i32": jnp.array([jnp.iinfo(jnp.int32).min, -1, 0, 7, jnp.iinfo(jnp.int32).max]),
        "u8": jnp.array([0, 1, 255], jnp.uint8),
        "bool": jnp.array([True, False]),
        "scalar": jnp.int32(-3),
    }
    out = jax.jit(compute_once)(leaves)
    for name, leaf in leaves.items():
        got = out[name]
        assert got.dtype == leaf.dtype and got.shape == leaf.shape, name
        np.testing.assert_array_equal(np.asarray(got), np.asarray(leaf), err_msg=name)
    # -0.0 stays -0.0 (a sum with +0.0 would flip it).
    assert bool(jnp.signbit(out["f32"][1]))


def test_compute_once_passes_keys_and_refuses_complex() -> None:
    key = jax.random.key(3)
    assert jnp.array_equal(jax.random.key_data(compute_once(key)), jax.random.key_data(key))
    with pytest.raises(TypeError, match="complex"):
        compute_once(jnp.ones(2, jnp.complex64))


@pytest.mark.parametrize("env_id", ["Rearrange-v1", "RearrangePick-v1"])
def test_obs_from_state_matches_the_selected_observations(env_id: str) -> None:
    """The one-observation path returns what the reset/step select returned, lane by lane."""
    env, params = scalegym.make(env_id, max_steps_in_episode=12)
    assert env.obs_from_state
    batch, steps = 16, 40  # several truncations and auto-resets per lane

    keys = jax.random.split(jax.random.key(1), (steps, batch))
    actions = jax.random.randint(jax.random.key(2), (steps, batch), 0, 6)

    def rollout(obs_from_state: bool):
        env.obs_from_state = obs_from_state  # an instance attribute shadows the class flag
        try:
            _, state = jax.vmap(env.reset, in_axes=(0, None))(
                jax.random.split(jax.random.key(0), batch), params
            )

            def one(state, xs):
                obs, state, reward, term, trunc, info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                    xs[0], state, xs[1], params
                )
                return state, (obs, reward, term, trunc, info["final_observation"])

            return jax.jit(lambda s: jax.lax.scan(one, s, (keys, actions))[1])(state)
        finally:
            del env.obs_from_state

    fast, select = rollout(True), rollout(False)
    assert int(fast[3].sum()) >= batch  # truncations, hence auto-resets, happened
    for x, y in zip(jax.tree.leaves(fast), jax.tree.leaves(select), strict=True):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
