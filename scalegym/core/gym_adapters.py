"""Gymnasium adapters: a functional (scalegym or gymnax) env as a NumPy `gymnasium.Env`.

Also what the single env and the vector env (`gym_vector.py`) share: the key schedule
(`seed_keys`), action casting and the render path, so that `SyncVectorEnv` over single envs
replays the vector env step for step (a test holds them to it). Registration and spaces live
apart (`gym_registration.py`, `gym_spaces.py`).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from scalegym.core.environment import transition_of
from scalegym.core.functional import build_functional, declares_float64, load_env_class
from scalegym.core.gym_registration import (
    gymnasium_id,
    register_gymnasium,
    register_scalegym_id,
)
from scalegym.core.gym_spaces import to_gymnasium_space, to_space_values
from scalegym.core.host_transfer import BytePacker
from scalegym.core.resolve import resolve_env, x64_mode

__all__ = [
    "FunctionalGymEnv",
    "gymnasium_id",
    "in_env_precision",
    "lane_step_key",
    "make_functional",
    "make_gymnasium_env",
    "precision_of",
    "register_gymnasium",
    "register_scalegym_id",
    "seed_keys",
    "step_key_block",
    "to_gymnasium_space",
]

RENDER_MODES = ("rgb_array", "ansi")
_RENDER_METHODS = {"rgb_array": "render_rgb", "ansi": "render_text"}


def make_functional(
    env_id: str | None, env_class: str | type | None, overrides: dict[str, Any]
) -> tuple[Any, Any]:
    """The env and params behind a scalegym id (`env_id`) or a JAX env class (`env_class`).

    A float64 env (ThreeBody, `requires_x64`) is built under x64 and the adapters step it under
    x64 (`in_env_precision`); JAX's global setting is left as it is.
    """
    if (env_id is None) == (env_class is None):
        raise TypeError("give exactly one of env_id (a scalegym id) or env_class (a JAX env class)")
    if env_id is not None:
        resolved = resolve_env(env_id, **overrides)
        return resolved.env, resolved.params
    cls = load_env_class(env_class, "register_gymnasium")
    with x64_mode(declares_float64(cls)):
        return build_functional(getattr(cls, "__name__", str(env_class)), cls, overrides)


def precision_of(env: Any) -> contextlib.AbstractContextManager[Any]:
    """x64 on while inside for an env that declares float64 physics, else JAX's setting as is."""
    return x64_mode(bool(getattr(env, "requires_x64", False)))


_P = ParamSpec("_P")
_R = TypeVar("_R")


def in_env_precision(
    method: Callable[Concatenate[Any, _P], _R],
) -> Callable[Concatenate[Any, _P], _R]:
    """An adapter method run under its env's precision (`precision_of(self.functional_env)`).

    The adapter, not the process, holds a float64 env's x64 mode: a gymnasium user builds the env
    and steps it at moments of their own, and float32 work between those calls stays float32.
    """

    @functools.wraps(method)
    def scoped(self: Any, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with precision_of(self.functional_env):
            return method(self, *args, **kwargs)

    return scoped


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
    env, params = make_functional(env_id, env_class, overrides)
    return FunctionalGymEnv(env, params, render_mode=render_mode)


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


def host_dtype_of(space: Any) -> Any:
    """The NumPy dtype actions are cast to before jit, so Python ints and np.int64 never retrace."""
    dtype = getattr(space, "dtype", None)
    return None if dtype is None else np.dtype(dtype)


def cast_actions(actions: Any, dtype: Any) -> Any:
    if dtype is None:
        return jax.tree.map(np.asarray, actions)
    return np.asarray(actions, dtype=dtype)


def seed_keys(seeds: Sequence[int] | np.ndarray) -> jax.Array:
    """One PRNG key per integer seed (`PRNGKey(seed)`, seeds taken modulo 2**32)."""
    seeds = np.asarray(seeds, dtype=np.uint64) % (1 << 32)
    return jax.vmap(jax.random.PRNGKey)(jnp.asarray(seeds.astype(np.uint32)))  # [N, 2]


KEY_BLOCK = 64  # steps of keys the single env draws in one call


def lane_step_key(base: jax.Array, step: jax.Array) -> jax.Array:
    """The key of a lane's `step`-th step on the chain started at `base` (then split by
    `env.step` into the step's and the auto-reset's keys).

    Counter-based rather than a split chain, so the single env can draw a block of steps' keys
    in one call: threefry runs as a loop on the CPU, and two of them per step cost more than the
    rest of a small env's step.
    """
    return jax.random.fold_in(base, step)


def step_key_block(base: jax.Array, first: jax.Array) -> jax.Array:
    """[KEY_BLOCK, 2, ...] (step key, reset key) of steps first .. first + KEY_BLOCK - 1."""
    steps = first + jnp.arange(KEY_BLOCK, dtype=jnp.uint32)
    lanes = jax.vmap(lane_step_key, in_axes=(None, 0))(base, steps)
    return jax.vmap(jax.random.split)(lanes)  # the split `env.step` makes: (step, reset)


def _matches_space(example: Any, space: gymnasium.spaces.Space) -> bool:
    """Whether arrays shaped like `example` already are values of `space` (Box or Dict of Box)."""
    if isinstance(space, gymnasium.spaces.Dict):
        return (
            isinstance(example, Mapping)
            and set(example) == set(space.spaces)
            and all(_matches_space(example[k], s) for k, s in space.spaces.items())
        )
    if isinstance(space, gymnasium.spaces.Box):
        return (
            hasattr(example, "dtype")
            and np.dtype(example.dtype) == space.dtype
            and tuple(example.shape) == space.shape
        )
    return False


def check_render_mode(env: Any, render_mode: str | None) -> list[str]:
    """The render modes `env` supports; raise if `render_mode` is not one of them."""
    supported = [m for m in RENDER_MODES if callable(getattr(env, _RENDER_METHODS[m], None))]
    if render_mode is not None and render_mode not in supported:
        raise ValueError(
            f"render_mode={render_mode!r} is not supported by {env_name(env)}: supported "
            f"{supported or 'none'} (rgb_array needs env.render_rgb(state, params), ansi needs "
            "env.render_text(state, params))"
        )
    return supported


def env_name(env: Any) -> str:
    """A short display name for a functional env: its `name`, else the class name."""
    try:
        return str(env.name)
    except (AttributeError, NotImplementedError):
        return type(env).__name__


def render_frame(env: Any, render_mode: str | None, state: Any, params: Any) -> Any:
    if render_mode == "rgb_array":
        return np.asarray(env.render_rgb(state, params), dtype=np.uint8)
    if render_mode == "ansi":
        return str(env.render_text(state, params))
    return None


class FunctionalGymEnv(gymnasium.Env):
    """One functional env as a NumPy `gymnasium.Env` (no auto-reset, as gymnasium expects).

    The PRNG key lives here, not in the env state: `reset(seed=s)` restarts it from
    `PRNGKey(s)`. Keys follow lane `i` of `FunctionalVectorEnv.reset(seed=s)` when this env is
    reset with `seed=s + i` (and unseeded after each episode), so gymnasium's `SyncVectorEnv`
    over these envs reproduces the vector env step for step. A step is one compiled call, its
    key drawn ahead in blocks (`step_key_block`), and one host copy of its outputs.
    """

    metadata: dict[str, Any] = {"render_modes": list(RENDER_MODES), "render_fps": 30}  # noqa: RUF012

    def __init__(self, env: Any, params: Any = None, *, render_mode: str | None = None):
        self.functional_env = env
        self._build_spaces(params, render_mode)
        self._key: jax.Array | None = None  # base of the key chain (lane_step_key)
        self._steps = 0  # steps taken on the chain
        self._block: jax.Array | None = None  # step_key_block from step `_block_start`
        self._block_start = 0
        self._state: Any = None
        self._reset_key: jax.Array | None = None  # after an episode ends: its auto-reset key

        transition = transition_of(env)  # the base class's episode rule, without the reset

        def reset_fn(key: jax.Array, params: Any) -> tuple[jax.Array, Any, Any]:
            key, key_reset = jax.random.split(key)
            obs, state = env.reset(key_reset, params)
            return key, obs, state

        def step_fn(
            block: jax.Array, index: jax.Array, state: Any, action: Any, params: Any
        ) -> tuple[Any, ...]:
            obs, state, reward, terminated, truncated, info = transition(
                block[index, 0], state, action, params
            )
            return state, (obs, jnp.asarray(reward, jnp.float32), terminated, truncated, info)

        def packed_step_fn(
            block: jax.Array, index: jax.Array, state: Any, action: Any, params: Any
        ) -> tuple[Any, jax.Array, jax.Array]:
            # Everything the host reads, as one byte buffer: one copy per step, not one per leaf.
            # The reset key stays on the device until an episode ends and reset() needs it.
            state, out = step_fn(block, index, state, action, params)
            return state, block[index, 1], self._packer.pack(out)

        self._reset_fn = jax.jit(reset_fn)
        self._env_reset_fn = jax.jit(env.reset)
        self._block_fn = jax.jit(step_key_block)
        self._step_fn = jax.jit(step_fn)
        self._packed_step_fn = jax.jit(packed_step_fn)
        self._packer: BytePacker | None = None  # built at the first step, from its output shapes
        self._obs_as_is = False  # the packed obs already has the space's structure and dtypes

    @in_env_precision
    def _build_spaces(self, params: Any, render_mode: str | None) -> None:
        """Params (the env's defaults when None), render modes, spaces and the action dtype."""
        env = self.functional_env
        self.params = env.default_params if params is None else params
        supported = check_render_mode(env, render_mode)
        # Per instance: check_env makes one env per declared mode, so declare only real ones.
        self.metadata = {"render_modes": supported, "render_fps": 30}
        self.render_mode = render_mode
        self.observation_space = to_gymnasium_space(env.observation_space(self.params))
        self.action_space = to_gymnasium_space(env.action_space(self.params))
        self._action_dtype = host_dtype_of(env.action_space(self.params))

    @in_env_precision
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is None and self._reset_key is not None:
            # Right after an episode ended: the key the vector env's auto-reset would use; the
            # key chain carries on, as a vector env lane's does.
            obs, self._state = self._env_reset_fn(self._reset_key, self.params)
        else:
            if seed is not None:
                self._key = seed_keys([seed])[0]
            elif self._key is None:
                # Unseeded first reset: draw from np_random, itself seeded from OS entropy.
                self._key = seed_keys([int(self.np_random.integers(1 << 32))])[0]
            self._key, obs, self._state = self._reset_fn(self._key, self.params)
            self._steps, self._block = 0, None
        self._reset_key = None
        return to_space_values(jax.device_get(obs), self.observation_space), {}

    @in_env_precision
    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        if self._state is None:
            raise gymnasium.error.ResetNeeded("call reset() before step()")
        action = cast_actions(action, self._action_dtype)
        index = self._steps - self._block_start
        if self._block is None or index >= KEY_BLOCK:
            self._block = self._block_fn(self._key, np.uint32(self._steps))
            self._block_start, index = self._steps, 0
        index = np.int32(index)
        if self._packer is None:
            shapes = jax.eval_shape(
                self._step_fn, self._block, index, self._state, action, self.params
            )
            self._packer = BytePacker(shapes[1])
            self._obs_as_is = _matches_space(shapes[1][0], self.observation_space)
        self._state, reset_key, packed = self._packed_step_fn(
            self._block, index, self._state, action, self.params
        )
        self._steps += 1
        # One fresh, writable host copy: the views unpacked from it are this step's own arrays.
        obs, reward, terminated, truncated, info = self._packer.unpack(np.array(packed))
        self._reset_key = reset_key if terminated or truncated else None
        return (
            obs if self._obs_as_is else to_space_values(obs, self.observation_space),
            float(reward),
            bool(terminated),
            bool(truncated),
            _info_to_python(info),
        )

    @in_env_precision
    def render(self) -> Any:
        if self.render_mode is None:
            return None
        if self._state is None:
            raise gymnasium.error.ResetNeeded("call reset() before render()")
        return render_frame(self.functional_env, self.render_mode, self._state, self.params)
