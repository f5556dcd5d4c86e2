"""Gymnasium adapters: functional (scalegym or gymnax) envs as NumPy `gymnasium.Env`/`VectorEnv`.

Kept in one module (a little over 400 lines) because the single env and the vector env must
share one key schedule, render path and info layout: `SyncVectorEnv` over single envs replays the
vector env step for step, and a test holds them to it. Registration and spaces live apart
(`gym_registration.py`, `gym_spaces.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from scalegym.core import registry
from scalegym.core.environment import transition_of
from scalegym.core.functional import build_functional, load_env_class
from scalegym.core.gym_registration import (
    gymnasium_id,
    register_gymnasium,
    register_scalegym_id,
)
from scalegym.core.gym_spaces import to_gymnasium_space, to_space_values

__all__ = [
    "FunctionalGymEnv",
    "FunctionalVectorEnv",
    "gymnasium_id",
    "make_gymnasium_env",
    "make_gymnasium_vector_env",
    "register_gymnasium",
    "register_scalegym_id",
    "same_step_info",
    "seed_keys",
    "to_gymnasium_space",
]

RENDER_MODES = ("rgb_array", "ansi")
_RENDER_METHODS = {"rgb_array": "render_rgb", "ansi": "render_text"}


def _make_functional(
    env_id: str | None, env_class: str | type | None, overrides: dict[str, Any]
) -> tuple[Any, Any]:
    """The env and params behind a scalegym id (`env_id`) or a JAX env class (`env_class`)."""
    if (env_id is None) == (env_class is None):
        raise TypeError("give exactly one of env_id (a scalegym id) or env_class (a JAX env class)")
    if env_class is not None:
        cls = load_env_class(env_class, "register_gymnasium")
        name = getattr(cls, "__name__", str(env_class))
    else:
        cls, name = registry.spec(env_id).load(), env_id
    # Float64 envs (ThreeBody) declare `requires_x64` on the class; the gymnasium path must switch
    # x64 on before any array is built, because users of gymnasium.make cannot do it in between.
    if getattr(cls, "requires_x64", False):
        jax.config.update("jax_enable_x64", True)
    if env_class is not None:
        return build_functional(name, cls, overrides)
    return registry.make(env_id, **overrides)


def make_gymnasium_env(
    env_id: str | None = None,
    render_mode: str | None = None,
    *,
    env_class: str | type | None = None,
    **overrides: Any,
) -> FunctionalGymEnv:
    """gymnasium `entry_point`: the single NumPy env of a scalegym id or a JAX env class.

    `overrides` are constructor arguments and params (see `register_gymnasium`).
    """
    env, params = _make_functional(env_id, env_class, overrides)
    return FunctionalGymEnv(env, params, render_mode=render_mode)


def make_gymnasium_vector_env(
    env_id: str | None = None,
    num_envs: int = 1,
    render_mode: str | None = None,
    *,
    env_class: str | type | None = None,
    **overrides: Any,
) -> FunctionalVectorEnv:
    """gymnasium `vector_entry_point`: `num_envs` copies behind one jitted, vmapped step."""
    env, params = _make_functional(env_id, env_class, overrides)
    return FunctionalVectorEnv(env, params, num_envs=num_envs, render_mode=render_mode)


def _info_to_python(info: Mapping[str, Any]) -> dict[str, Any]:
    """Single-env info: 0-d arrays become Python scalars, others NumPy arrays."""
    out: dict[str, Any] = {}
    for k, v in info.items():
        if isinstance(v, Mapping):
            out[k] = _info_to_python(v)
        else:
            v = np.asarray(v)
            out[k] = v.item() if v.ndim == 0 else np.array(v)
    return out


def _host_dtype_of(space: Any) -> Any:
    """The NumPy dtype actions are cast to before jit, so Python ints and np.int64 never retrace."""
    dtype = getattr(space, "dtype", None)
    return None if dtype is None else np.dtype(dtype)


def _cast_actions(actions: Any, dtype: Any) -> Any:
    if dtype is None:
        return jax.tree.map(np.asarray, actions)
    return np.asarray(actions, dtype=dtype)


def seed_keys(seeds: Sequence[int] | np.ndarray) -> jax.Array:
    """One PRNG key per integer seed (`PRNGKey(seed)`, seeds taken modulo 2**32)."""
    seeds = np.asarray(seeds, dtype=np.uint64) % (1 << 32)
    return jax.vmap(jax.random.PRNGKey)(jnp.asarray(seeds.astype(np.uint32)))  # [N, 2]


def _check_render_mode(env: Any, render_mode: str | None) -> list[str]:
    """The render modes `env` supports; raise if `render_mode` is not one of them."""
    supported = [m for m in RENDER_MODES if callable(getattr(env, _RENDER_METHODS[m], None))]
    if render_mode is not None and render_mode not in supported:
        raise ValueError(
            f"render_mode={render_mode!r} is not supported by {_env_name(env)}: supported "
            f"{supported or 'none'} (rgb_array needs env.render_rgb(state, params), ansi needs "
            "env.render_text(state, params))"
        )
    return supported


def _env_name(env: Any) -> str:
    try:
        return str(env.name)
    except (AttributeError, NotImplementedError):
        return type(env).__name__


def _render(env: Any, render_mode: str | None, state: Any, params: Any) -> Any:
    if render_mode == "rgb_array":
        return np.asarray(env.render_rgb(state, params), dtype=np.uint8)
    if render_mode == "ansi":
        return str(env.render_text(state, params))
    return None


class FunctionalGymEnv(gymnasium.Env):
    """One functional env as a NumPy `gymnasium.Env` (no auto-reset, as gymnasium expects).

    The PRNG key lives here, not in the env state: `reset(seed=s)` restarts it from
    `PRNGKey(s)`. Keys are split as in lane `i` of `FunctionalVectorEnv.reset(seed=s)` when this
    env is reset with `seed=s + i` (and unseeded after each episode), so gymnasium's
    `SyncVectorEnv` over these envs reproduces the vector env step for step.
    """

    metadata: dict[str, Any] = {"render_modes": list(RENDER_MODES), "render_fps": 30}  # noqa: RUF012

    def __init__(self, env: Any, params: Any = None, *, render_mode: str | None = None):
        self.functional_env = env
        self.params = env.default_params if params is None else params
        supported = _check_render_mode(env, render_mode)
        # Per instance: check_env makes one env per declared mode, so declare only real ones.
        self.metadata = {"render_modes": supported, "render_fps": 30}
        self.render_mode = render_mode
        self.observation_space = to_gymnasium_space(env.observation_space(self.params))
        self.action_space = to_gymnasium_space(env.action_space(self.params))
        self._action_dtype = _host_dtype_of(env.action_space(self.params))
        self._key: jax.Array | None = None
        self._state: Any = None
        self._reset_key: jax.Array | None = None  # after an episode ends: its auto-reset key

        transition = transition_of(env)  # the base class's episode rule, without the reset

        def reset_fn(key: jax.Array, params: Any) -> tuple[jax.Array, Any, Any]:
            key, key_reset = jax.random.split(key)
            obs, state = env.reset(key_reset, params)
            return key, obs, state

        def step_fn(key: jax.Array, state: Any, action: Any, params: Any) -> tuple[Any, ...]:
            # The key schedule of FunctionalVectorEnv's lanes (split, then env.step's own split),
            # so a SyncVectorEnv of these envs replays the vector env exactly.
            key, key_lane = jax.random.split(key)
            key_step, key_reset = jax.random.split(key_lane)
            obs, state, reward, terminated, truncated, info = transition(
                key_step, state, action, params
            )
            out = (obs, jnp.asarray(reward, jnp.float32), terminated, truncated, info)
            return key, key_reset, state, out

        self._reset_fn = jax.jit(reset_fn)
        self._env_reset_fn = jax.jit(env.reset)
        self._step_fn = jax.jit(step_fn)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is None and self._reset_key is not None:
            # Right after an episode ended: the key the vector env's auto-reset would use.
            obs, self._state = self._env_reset_fn(self._reset_key, self.params)
        else:
            if seed is not None:
                self._key = seed_keys([seed])[0]
            elif self._key is None:
                # Unseeded first reset: draw from np_random, itself seeded from OS entropy.
                self._key = seed_keys([int(self.np_random.integers(1 << 32))])[0]
            self._key, obs, self._state = self._reset_fn(self._key, self.params)
        self._reset_key = None
        return to_space_values(jax.device_get(obs), self.observation_space), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        if self._state is None:
            raise gymnasium.error.ResetNeeded("call reset() before step()")
        action = _cast_actions(action, self._action_dtype)
        self._key, reset_key, self._state, out = self._step_fn(
            self._key, self._state, action, self.params
        )
        obs, reward, terminated, truncated, info = jax.device_get(out)
        self._reset_key = reset_key if terminated or truncated else None
        return (
            to_space_values(obs, self.observation_space),
            float(reward),
            bool(terminated),
            bool(truncated),
            _info_to_python(info),
        )

    def render(self) -> Any:
        if self.render_mode is None:
            return None
        if self._state is None:
            raise gymnasium.error.ResetNeeded("call reset() before render()")
        return _render(self.functional_env, self.render_mode, self._state, self.params)


def _masked_info(info: Mapping[str, Any], mask: np.ndarray) -> dict[str, Any]:
    """gymnasium's vector-info layout: values where `mask` (zero elsewhere) plus `_key` masks."""
    out: dict[str, Any] = {}
    for k, v in info.items():
        if isinstance(v, Mapping):
            out[k] = _masked_info(v, mask)
        else:
            v = np.asarray(v)
            lane_mask = mask.reshape(mask.shape + (1,) * (v.ndim - 1))
            out[k] = np.where(lane_mask, v, np.zeros((), v.dtype))
        out[f"_{k}"] = mask.copy()
    return out


def _lanes(obs: Any, idx: np.ndarray) -> list[Any]:
    """Lanes `idx` of a batched observation, each in the single observation's structure."""
    if isinstance(obs, dict):
        keys = list(obs)
        columns = [_lanes(obs[k], idx) for k in keys]
        return [dict(zip(keys, row, strict=True)) for row in zip(*columns, strict=True)]
    if isinstance(obs, tuple):
        return [tuple(row) for row in zip(*(_lanes(v, idx) for v in obs), strict=True)]
    # Views into this step's private host batch: nothing else holds or reuses it.
    return list(obs[idx])


def same_step_info(info: Mapping[str, Any], final_obs: Any, done: np.ndarray) -> dict[str, Any]:
    """The info `SyncVectorEnv` builds under `AutoresetMode.SAME_STEP` (gymnasium 1.3).

    A lane that ended this step reports its last real observation in `info["final_obs"]` (an
    object array, None elsewhere, mask `_final_obs`) and its step info in `info["final_info"]`
    (mask `_final_info`); its top-level info is the reset's, which is empty, so the top-level
    step info is masked to the lanes that did not end. Keys appear only when some lane has them.
    """
    out: dict[str, Any] = {}
    if info and not done.all():
        out.update(_masked_info(info, ~done))
    if done.any():
        idx = np.flatnonzero(done)
        finals = np.full(done.shape[0], None, dtype=object)
        # fromiter keeps each lane's array whole; assigning a list would broadcast into it.
        finals[idx] = np.fromiter(_lanes(final_obs, idx), dtype=object, count=idx.size)
        out["final_obs"], out["_final_obs"] = finals, done.copy()
        out["final_info"], out["_final_info"] = _masked_info(info, done), done.copy()
    return out


class FunctionalVectorEnv(gymnasium.vector.VectorEnv):
    """`num_envs` copies of a functional env behind one jitted `vmap(env.step)` (same-step reset).

    Each lane owns a PRNG key; `reset(seed=s)` seeds lane `i` with `s + i` (gymnasium's rule for
    sub-envs). Params are shared by all lanes. Per step the host does one device-to-host copy of
    (obs, reward, terminated, truncated, info, final obs).
    """

    metadata: dict[str, Any] = {  # noqa: RUF012
        "autoreset_mode": AutoresetMode.SAME_STEP,
        "render_modes": list(RENDER_MODES),
        "render_fps": 30,
    }

    def __init__(
        self,
        env: Any,
        params: Any = None,
        num_envs: int = 1,
        *,
        render_mode: str | None = None,
    ):
        if int(num_envs) < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.functional_env = env
        self.params = env.default_params if params is None else params
        self.num_envs = int(num_envs)
        supported = _check_render_mode(env, render_mode)
        self.metadata = {
            "autoreset_mode": AutoresetMode.SAME_STEP,
            "render_modes": supported,
            "render_fps": 30,
        }
        self.render_mode = render_mode
        self.single_observation_space = to_gymnasium_space(env.observation_space(self.params))
        self.single_action_space = to_gymnasium_space(env.action_space(self.params))
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._action_dtype = _host_dtype_of(env.action_space(self.params))
        self._keys: jax.Array | None = None  # [N, 2] one key per lane
        self._state: Any = None  # [N, ...] env states
        self._obs: Any = None  # [N, ...] last observation, on device (for masked resets)

        v_reset = jax.vmap(env.reset, in_axes=(0, None))
        v_step = jax.vmap(env.step, in_axes=(0, 0, 0, None))
        v_split = jax.vmap(jax.random.split)

        def reset_fn(keys: jax.Array, params: Any) -> tuple[jax.Array, Any, Any]:
            keys = v_split(keys)  # [N, 2, 2]
            obs, state = v_reset(keys[:, 1], params)
            return keys[:, 0], obs, state

        def masked_reset_fn(
            keys: jax.Array, obs: Any, state: Any, mask: jax.Array, params: Any
        ) -> tuple[jax.Array, Any, Any]:
            new_keys, new_obs, new_state = reset_fn(keys, params)

            def pick(new: jax.Array, old: jax.Array) -> jax.Array:
                return jnp.where(mask.reshape(mask.shape + (1,) * (new.ndim - 1)), new, old)

            return (
                pick(new_keys, keys),
                jax.tree.map(pick, new_obs, obs),
                jax.tree.map(pick, new_state, state),
            )

        def step_fn(keys: jax.Array, state: Any, actions: Any, params: Any) -> tuple[Any, ...]:
            keys = v_split(keys)
            obs, state, reward, terminated, truncated, info = v_step(
                keys[:, 1], state, actions, params
            )
            info = dict(info)
            if "final_observation" not in info:
                raise ValueError(
                    f"{_env_name(env)}.step must put the last real observation of an episode in "
                    "info['final_observation'] (scalegym and gymnax >= 1.0 envs do)"
                )
            final_obs = info.pop("final_observation")
            out = (
                obs,
                jnp.asarray(reward, jnp.float32),
                jnp.asarray(terminated, jnp.bool_),
                jnp.asarray(truncated, jnp.bool_),
                info,
                final_obs,
            )
            return keys[:, 0], state, obs, out

        self._reset_fn: Callable[..., Any] = jax.jit(reset_fn)
        self._masked_reset_fn: Callable[..., Any] = jax.jit(masked_reset_fn)
        self._step_fn: Callable[..., Any] = jax.jit(step_fn)

    def _lane_keys(self, seed: int | Sequence[int] | None) -> jax.Array:
        if seed is None:
            if self._keys is not None:
                return self._keys  # continue each lane's own stream
            seeds = self.np_random.integers(1 << 32, size=self.num_envs, dtype=np.uint64)
            return seed_keys(seeds)
        if isinstance(seed, int | np.integer):
            return seed_keys(int(seed) + np.arange(self.num_envs, dtype=np.uint64))
        seeds = list(seed)
        if len(seeds) != self.num_envs or any(s is None for s in seeds):
            raise ValueError(
                f"seed must be None, an int or {self.num_envs} ints (one per env), got {seed!r}"
            )
        return seed_keys(seeds)

    def reset(
        self,
        *,
        seed: int | Sequence[int] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[Any, dict[str, Any]]:
        if isinstance(seed, int | np.integer) or seed is None:
            super().reset(seed=None if seed is None else int(seed))
        keys = self._lane_keys(seed)
        mask = None if options is None else options.get("reset_mask")
        if mask is not None and self._state is not None:
            mask = np.asarray(mask)
            if mask.shape != (self.num_envs,) or mask.dtype != np.bool_:
                raise ValueError(
                    f"options['reset_mask'] must be a bool array of shape ({self.num_envs},), "
                    f"got {mask.dtype} {mask.shape}"
                )
            self._keys, self._obs, self._state = self._masked_reset_fn(
                keys, self._obs, self._state, mask, self.params
            )
        else:
            self._keys, self._obs, self._state = self._reset_fn(keys, self.params)
        return to_space_values(jax.device_get(self._obs), self.observation_space), {}

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if self._state is None:
            raise gymnasium.error.ResetNeeded("call reset() before step()")
        actions = _cast_actions(actions, self._action_dtype)
        leading = {np.shape(a)[:1] for a in jax.tree.leaves(actions)}
        if leading != {(self.num_envs,)}:
            raise ValueError(
                f"actions must have a leading batch dimension of {self.num_envs}, got shapes "
                f"{[np.shape(a) for a in jax.tree.leaves(actions)]}"
            )
        self._keys, self._state, self._obs, out = self._step_fn(
            self._keys, self._state, actions, self.params
        )
        obs, reward, terminated, truncated, info, final_obs = jax.device_get(out)
        done = np.logical_or(terminated, truncated)
        final_obs = to_space_values(final_obs, self.observation_space) if done.any() else None
        return (
            to_space_values(obs, self.observation_space),
            np.array(reward),
            np.array(terminated),
            np.array(truncated),
            same_step_info(info, final_obs, done),
        )

    def render(self) -> tuple[Any, ...] | None:
        if self.render_mode is None:
            return None
        if self._state is None:
            raise gymnasium.error.ResetNeeded("call reset() before render()")
        return tuple(
            _render(
                self.functional_env,
                self.render_mode,
                jax.tree.map(lambda x, i=i: x[i], self._state),
                self.params,
            )
            for i in range(self.num_envs)
        )
