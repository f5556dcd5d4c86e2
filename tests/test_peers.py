"""XLand-MiniGrid and NAVIX envs through `resolve_env` and the bench harness (`peers` extra)."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import pytest

from scalegym.core import peers, spaces
from scalegym.core.extras import MissingExtraError
from scalegym.core.resolve import resolve_env
from scalegym.suites.measures import bench_jax_env

STEPS, BATCH = 300, 4


def _peer_package(env_id: str) -> Any:
    """The peer's own package, or skip the test when the extra is not installed."""
    return pytest.importorskip(env_id.partition(":")[0])


def _peer_obs(env_id: str) -> jax.ShapeDtypeStruct:
    """Shape and dtype of the first observation of the env the peer's own `make` builds."""
    package, _, name = env_id.partition(":")
    key = jax.random.PRNGKey(0)
    if package == "xminigrid":
        env, params = _peer_package(env_id).make(name)
        return jax.eval_shape(env.reset, params, key).observation
    return jax.eval_shape(_peer_package(env_id).make(name).reset, key).observation


def _clock(env_id: str) -> Callable[[Any], jax.Array]:
    """Steps taken in the current episode, read from the peer's state."""
    if env_id.startswith(peers.XMINIGRID_PREFIX):
        return lambda timestep: timestep.state.step_num
    return lambda timestep: timestep.t


def _rollout(env: Any, params: Any, clock: Callable[[Any], jax.Array]) -> tuple[Any, ...]:
    """Random actions through the harness's vmapped signatures: per-step outputs, [STEPS, BATCH]."""
    reset = jax.vmap(env.reset, in_axes=(0, None))
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    sample = jax.vmap(env.action_space(params).sample)

    @jax.jit
    def run(key: jax.Array) -> tuple[Any, ...]:
        key_reset, key_run = jax.random.split(key)
        _, state = reset(jax.random.split(key_reset, BATCH), params)

        def body(state: Any, key: jax.Array) -> tuple[Any, tuple[Any, ...]]:
            key_action, key_step = jax.random.split(key)
            action = sample(jax.random.split(key_action, BATCH))
            obs, state, reward, term, trunc, info = step(
                jax.random.split(key_step, BATCH), state, action, params
            )
            assert info == {}
            return state, (obs, reward, term, trunc, clock(state))

        return jax.lax.scan(body, state, jax.random.split(key_run, STEPS))[1]

    return jax.device_get(run(jax.random.PRNGKey(0)))


# (env id, overrides): max_steps=20 forces several time-limit ends in STEPS steps.
CASES = [
    ("xminigrid:MiniGrid-Empty-8x8", {"max_steps": 20}),
    ("xminigrid:MiniGrid-DoorKey-8x8", {}),
    ("navix:Navix-Empty-8x8-v0", {"max_steps": 20}),
]


@pytest.mark.parametrize(("env_id", "overrides"), CASES, ids=[c[0] for c in CASES])
def test_random_rollout(env_id: str, overrides: dict[str, Any]) -> None:
    peer_obs = _peer_obs(env_id)
    resolved = resolve_env(env_id, **overrides)
    assert resolved.kind == "jax" and resolved.id == env_id
    env, params = resolved.env, resolved.params
    assert env.name == env_id
    space = env.action_space(params)
    assert isinstance(space, spaces.Discrete) and space.n == env.num_actions > 1
    obs_space = env.observation_space(params)
    assert (obs_space.shape, obs_space.dtype) == (peer_obs.shape, peer_obs.dtype)

    obs, reward, term, trunc, clock = _rollout(env, params, _clock(env_id))
    assert obs.shape == (STEPS, BATCH, *peer_obs.shape) and obs.dtype == peer_obs.dtype
    assert reward.dtype == np.float32 and np.isfinite(reward).all()
    assert term.dtype == np.bool_ and trunc.dtype == np.bool_
    assert not (term & trunc).any()
    if not overrides:
        return
    assert trunc.any() and (term | trunc).sum() >= BATCH * 5
    if env_id.startswith(peers.XMINIGRID_PREFIX):
        assert params.max_steps == 20
        # Same-step auto-reset: the state after an end step is already the new episode's.
        assert (clock[term | trunc] == 0).all() and clock.max() < 20
    else:
        # Next-step auto-reset: the end step keeps the old episode, the next step resets.
        assert (clock[trunc] == 20).all()
        assert (clock[1:][(term | trunc)[:-1]] == 0).all()


@pytest.mark.parametrize("env_id", ["xminigrid:MiniGrid-Empty-8x8", "navix:Navix-Empty-8x8-v0"])
def test_bench_harness(env_id: str) -> None:
    _peer_package(env_id)
    resolved = resolve_env(env_id)
    records = bench_jax_env(resolved.env, resolved.params, [1, 4], num_steps=8, repeats=2)
    assert [r["batch_size"] for r in records] == [1, 4]
    assert all(math.isfinite(r["sps"]) and r["sps"] > 0 for r in records)


def test_xminigrid_errors() -> None:
    _peer_package(peers.XMINIGRID_PREFIX)
    with pytest.raises(ValueError, match=r"mean 'xminigrid:MiniGrid-Empty-8x8'.*registered_env"):
        resolve_env("xminigrid:MiniGrid-Empty-8x9")
    with pytest.raises(
        ValueError,
        match=r'params: unknown field "max_step" \(did you mean "max_steps"\?\); allowed: .*',
    ):
        resolve_env("xminigrid:MiniGrid-Empty-8x8", max_step=20)


def test_navix_errors() -> None:
    _peer_package(peers.NAVIX_PREFIX)
    with pytest.raises(ValueError, match=r"mean 'navix:Navix-Empty-8x8-v0'.*navix\.registry"):
        resolve_env("navix:Navix-Empty-8x8-v1")
    with pytest.raises(
        ValueError, match=r'constructor: unknown field "nosuch"; allowed: .*max_steps'
    ):
        resolve_env("navix:Navix-Empty-8x8-v0", nosuch=1)
    with pytest.raises(ValueError, match=r"navix\.make rejected"):
        resolve_env("navix:Navix-Empty-8x8-v0", height=5)  # fixed by navix's registered factory


def test_missing_package_and_bad_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry makes `import xminigrid` fail as if the package were not installed.
    monkeypatch.setitem(sys.modules, "xminigrid", None)
    with pytest.raises(MissingExtraError, match=r"needs the xminigrid package.*pip install 'scal"):
        resolve_env("xminigrid:MiniGrid-Empty-8x8")
    with pytest.raises(ValueError, match="peer ids start with"):
        peers.make_peer("gymnax:CartPole-v1")
    with pytest.raises(ValueError, match=r"'xminigrid:MiniGrid-Empty-8x8' or 'navix:"):
        resolve_env("NoSuchThing-v0")


@pytest.mark.parametrize("env_id", ["xminigrid:MiniGrid-Empty-8x8", "navix:Navix-Empty-8x8-v0"])
def test_32_bit_under_x64(env_id: str) -> None:
    # The CLI turns x64 on for float64 envs; the peers must still trace, in their own 32 bits.
    _peer_package(env_id)
    with jax.enable_x64(True):
        resolved = resolve_env(env_id)
        env, params = resolved.env, resolved.params
        keys = jax.random.split(jax.random.PRNGKey(0), BATCH)
        _, state = jax.eval_shape(jax.vmap(env.reset, in_axes=(0, None)), keys, params)
        step = jax.vmap(env.step, in_axes=(0, 0, 0, None))
        out = jax.eval_shape(step, keys, state, np.zeros(BATCH, np.int32), params)
    assert all(leaf.dtype.itemsize <= 4 for leaf in jax.tree.leaves(out))
