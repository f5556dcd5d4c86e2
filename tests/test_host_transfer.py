"""One host copy per gymnasium step: the byte packer round-trips every dtype and structure."""

from __future__ import annotations

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scalegym  # noqa: F401  (registers the scalegym/ ids)
from scalegym.core.host_transfer import BytePacker


def test_pack_unpack_round_trips_dtypes_shapes_and_structure() -> None:
    tree = {
        "view": jnp.arange(24, dtype=jnp.float32).reshape(2, 3, 4) - 7.5,
        "flags": jnp.array([True, False, True]),
        "count": jnp.int32(-7),
        "empty": jnp.zeros((0, 3), jnp.int32),
        "small": (jnp.array([-1, 2], jnp.int8), jnp.array([1.5, -2.25], jnp.float16)),
        "unsigned": jnp.array([7, 2**32 - 1], jnp.uint32),
    }
    packer = BytePacker(jax.eval_shape(lambda: tree))
    packed = jax.jit(packer.pack)(tree)
    assert packed.dtype == jnp.uint8 and packed.shape == (packer.nbytes,)
    out = packer.unpack(np.asarray(packed))
    assert jax.tree.structure(out) == jax.tree.structure(tree)
    for got, want in zip(jax.tree.leaves(out), jax.tree.leaves(tree), strict=True):
        want = np.asarray(want)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def test_a_gymnasium_step_is_one_compiled_call_and_one_host_copy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = gymnasium.make("scalegym/Rearrange-v1")
    env.reset(seed=0)
    env.step(0)  # the first step builds the packer and compiles
    inner = env.unwrapped
    calls = {"step": 0, "device_get": 0}
    compiled, device_get = inner._packed_step_fn, jax.device_get

    def counted(*args: object) -> object:
        calls["step"] += 1
        return compiled(*args)

    def counted_device_get(*args: object, **kwargs: object) -> object:
        calls["device_get"] += 1
        return device_get(*args, **kwargs)

    monkeypatch.setattr(inner, "_packed_step_fn", counted)
    monkeypatch.setattr(jax, "device_get", counted_device_get)
    obs, reward, terminated, _, info = env.step(2)
    assert calls == {"step": 1, "device_get": 0}
    assert obs["view"].shape == (5, 5, 4) and obs["view"].flags.writeable
    assert isinstance(reward, float) and isinstance(terminated, bool)
    assert isinstance(info["success"], bool)
