"""Gymnasium vector env: `num_envs` copies of a functional env behind one jitted, vmapped step.

Same-step auto-reset by default, as the JAX envs do it, or gymnasium's next-step mode, which its
vector wrappers expect. The single env (`gym_adapters.py`) shares its key schedule and render
path.

Over 400 lines: the two auto-reset modes, the lane mask and the spaces belong to one class.
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

from scalegym.core.gym_adapters import (
    RENDER_MODES,
    cast_actions,
    check_render_mode,
    env_name,
    host_dtype_of,
    in_env_precision,
    lane_step_key,
    make_functional,
    render_frame,
    seed_keys,
)
from scalegym.core.gym_spaces import to_gymnasium_space, to_space_values

__all__ = [
    "AUTORESET_MODES",
    "FunctionalVectorEnv",
    "autoreset_mode_of",
    "make_gymnasium_vector_env",
    "same_step_info",
]


def _lane_mask(mask: Any, ndim: int) -> Any:
    """A per-lane mask [N] reshaped to [N, 1, ...] so it broadcasts over a leaf of `ndim` axes."""
    return mask.reshape(mask.shape + (1,) * (ndim - 1))


def _select_lanes(mask: jax.Array, new: Any, old: Any) -> Any:
    """Leafwise: lane i of `new` where `mask[i]` [N], else lane i of `old` (trees of one shape)."""
    return jax.tree.map(lambda x, y: jnp.where(_lane_mask(mask, x.ndim), x, y), new, old)


def _masked_info(info: Mapping[str, Any], mask: np.ndarray) -> dict[str, Any]:
    """gymnasium's vector-info layout: values where `mask` (zero elsewhere) plus `_key` masks."""
    out: dict[str, Any] = {}
    for k, v in info.items():
        if isinstance(v, Mapping):
            out[k] = _masked_info(v, mask)
        else:
            v = np.asarray(v)
            out[k] = np.where(_lane_mask(mask, v.ndim), v, np.zeros((), v.dtype))
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


AUTORESET_MODES = (AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP)


def autoreset_mode_of(value: AutoresetMode | str) -> AutoresetMode:
    """`value` as one of `AUTORESET_MODES`; accepts the enum, its value or its name."""
    for mode in AUTORESET_MODES:
        if value in (mode, mode.value, mode.name, mode.name.lower()):
            return mode
    allowed = ", ".join(f"AutoresetMode.{m.name} ({m.value!r})" for m in AUTORESET_MODES)
    raise ValueError(f"autoreset_mode={value!r} is not supported; allowed: {allowed}")


ResetFn = Callable[[jax.Array, Any], tuple[jax.Array, Any, Any]]
StepFn = Callable[[jax.Array, jax.Array, Any, Any, Any], tuple[Any, Any, tuple[Any, ...]]]


def _reset_program(env: Any) -> ResetFn:
    """`reset(keys [N, 2], params) -> (next keys, obs, state)`: every lane reset, vmapped."""
    v_reset = jax.vmap(env.reset, in_axes=(0, None))
    v_split = jax.vmap(jax.random.split)

    def reset_fn(keys: jax.Array, params: Any) -> tuple[jax.Array, Any, Any]:
        keys = v_split(keys)  # [N, 2, 2]
        obs, state = v_reset(keys[:, 1], params)
        return keys[:, 0], obs, state

    return reset_fn


def _masked_reset_program(reset_fn: ResetFn) -> Callable[..., tuple[jax.Array, Any, Any]]:
    """`(keys, obs, state, mask [N], params) -> (keys, obs, state)`: only lanes in mask reset."""

    def masked_reset_fn(
        keys: jax.Array, obs: Any, state: Any, mask: jax.Array, params: Any
    ) -> tuple[jax.Array, Any, Any]:
        return _select_lanes(mask, reset_fn(keys, params), (keys, obs, state))

    return masked_reset_fn


def _step_program(env: Any) -> StepFn:
    """`(keys, steps, state, actions, params) -> (state, obs, out)`, out the SAME_STEP results
    (obs, reward, terminated, truncated, info, final obs), every lane stepped, vmapped."""
    v_step = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    v_step_key = jax.vmap(lane_step_key, in_axes=(0, None))

    def step_fn(
        keys: jax.Array, steps: jax.Array, state: Any, actions: Any, params: Any
    ) -> tuple[Any, Any, tuple[Any, ...]]:
        # Lane i's key for this step: lane_step_key(its chain's base, steps), the schedule
        # FunctionalGymEnv follows, so a SyncVectorEnv of single envs replays this one.
        obs, state, reward, terminated, truncated, info = v_step(
            v_step_key(keys, steps), state, actions, params
        )
        info = dict(info)
        if "final_observation" not in info:
            raise ValueError(
                f"{env_name(env)}.step must put the last real observation of an episode in "
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
        return state, obs, out

    return step_fn


def _next_step_program(step_fn: StepFn) -> Callable[..., tuple[Any, Any, tuple[Any, ...]]]:
    """`(keys, steps, state, actions, params, pending [N], last obs) -> (state, held obs, out)`,
    out the NEXT_STEP results (obs, reward, terminated, truncated, info)."""

    def next_step_fn(
        keys: jax.Array,
        steps: jax.Array,
        state: Any,
        actions: Any,
        params: Any,
        pending: jax.Array,
        last: Any,
    ) -> tuple[Any, Any, tuple[Any, ...]]:
        # The env's own step auto-resets, so a lane that ends holds its reset state and obs
        # already; NEXT_STEP shows the last obs now and the reset obs on the lane's next step.
        new_state, new_obs, out = step_fn(keys, steps, state, actions, params)
        obs, reward, terminated, truncated, info, final_obs = out
        done = terminated | truncated
        shown = _select_lanes(pending, last, _select_lanes(done, final_obs, obs))
        state = _select_lanes(pending, state, new_state)  # a pending lane keeps its reset state
        held = _select_lanes(pending, last, new_obs)
        out = (
            shown,
            jnp.where(pending, 0.0, reward),
            terminated & ~pending,
            truncated & ~pending,
            info,
        )
        return state, held, out

    return next_step_fn


class FunctionalVectorEnv(gymnasium.vector.VectorEnv):
    """`num_envs` copies of a functional env behind one jitted `vmap(env.step)`.

    Each lane owns a PRNG key; `reset(seed=s)` seeds lane `i` with `s + i` (gymnasium's rule for
    sub-envs). Params are shared by all lanes. Per step the host does one device-to-host copy of
    (obs, reward, terminated, truncated, info, final obs).

    `autoreset_mode` is gymnasium's: `SAME_STEP` (the default, as the JAX envs do it) returns the
    reset observation in the step that ends an episode, with the last one in `info["final_obs"]`;
    `NEXT_STEP` returns the last observation, and the lane's next step is its reset (action
    ignored, reward 0), which is what gymnasium's vector wrappers (`RecordEpisodeStatistics`,
    `FlattenObservation`, other observation wrappers) expect. The episodes are the same in both
    modes: the reset state is drawn when the episode ends either way.
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
        autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP,
    ):
        if int(num_envs) < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.autoreset_mode = autoreset_mode_of(autoreset_mode)
        self.functional_env = env
        self.params = env.default_params if params is None else params
        self.num_envs = int(num_envs)
        supported = check_render_mode(env, render_mode)
        self.metadata = {
            "autoreset_mode": self.autoreset_mode,
            "render_modes": supported,
            "render_fps": 30,
        }
        self.render_mode = render_mode
        self._build_spaces()
        self._keys: jax.Array | None = None  # [N, 2] base of each lane's key chain
        self._steps = 0  # steps taken since the last full reset (lane_step_key's counter)
        self._state: Any = None  # [N, ...] env states
        self._obs: Any = None  # [N, ...] last observation, on device (for masked resets)
        # NEXT_STEP: lanes whose episode ended in the last step and whose next step is the reset.
        self._pending = np.zeros(self.num_envs, dtype=bool)  # [N]
        reset_fn, step_fn = _reset_program(env), _step_program(env)
        self._reset_fn: Callable[..., Any] = jax.jit(reset_fn)
        self._masked_reset_fn: Callable[..., Any] = jax.jit(_masked_reset_program(reset_fn))
        self._step_fn: Callable[..., Any] = jax.jit(step_fn)
        self._next_step_fn: Callable[..., Any] = jax.jit(_next_step_program(step_fn))

    @in_env_precision
    def _build_spaces(self) -> None:
        """The single and batched gymnasium spaces, and the host dtype actions are cast to."""
        env, params = self.functional_env, self.params
        self.single_observation_space = to_gymnasium_space(env.observation_space(params))
        self.single_action_space = to_gymnasium_space(env.action_space(params))
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._action_dtype = host_dtype_of(env.action_space(params))

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

    @in_env_precision
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
            self._pending &= ~mask
        else:
            self._keys, self._obs, self._state = self._reset_fn(keys, self.params)
            self._pending[:] = False
            self._steps = 0
        return to_space_values(jax.device_get(self._obs), self.observation_space), {}

    @in_env_precision
    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if self._state is None:
            raise gymnasium.error.ResetNeeded("call reset() before step()")
        actions = cast_actions(actions, self._action_dtype)
        leading = {np.shape(a)[:1] for a in jax.tree.leaves(actions)}
        if leading != {(self.num_envs,)}:
            raise ValueError(
                f"actions must have a leading batch dimension of {self.num_envs}, got shapes "
                f"{[np.shape(a) for a in jax.tree.leaves(actions)]}"
            )
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            return self._step_next(actions)
        self._state, self._obs, out = self._step_fn(
            self._keys, np.uint32(self._steps), self._state, actions, self.params
        )
        self._steps += 1
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

    def _step_next(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict]:
        """One NEXT_STEP step: lanes pending a reset show it; the others step as usual."""
        pending = self._pending.copy()
        self._state, self._obs, out = self._next_step_fn(
            self._keys,
            np.uint32(self._steps),
            self._state,
            actions,
            self.params,
            pending,
            self._obs,
        )
        self._steps += 1
        obs, reward, terminated, truncated, info = jax.device_get(out)
        self._pending = np.logical_or(terminated, truncated)
        # A lane's reset step has the reset's info, which is empty.
        info = _masked_info(info, ~pending) if info and not pending.all() else {}
        return (
            to_space_values(obs, self.observation_space),
            np.array(reward),
            np.array(terminated),
            np.array(truncated),
            info,
        )

    @in_env_precision
    def render(self) -> tuple[Any, ...] | None:
        if self.render_mode is None:
            return None
        if self._state is None:
            raise gymnasium.error.ResetNeeded("call reset() before render()")
        return tuple(
            render_frame(
                self.functional_env,
                self.render_mode,
                jax.tree.map(lambda x, i=i: x[i], self._state),
                self.params,
            )
            for i in range(self.num_envs)
        )


def make_gymnasium_vector_env(
    env_id: str | None = None,
    num_envs: int = 1,
    render_mode: str | None = None,
    *,
    env_class: str | type | None = None,
    autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP,
    **overrides: Any,
) -> FunctionalVectorEnv:
    """gymnasium `vector_entry_point`: `num_envs` copies behind one jitted, vmapped step.

    `gymnasium.make_vec(id, num_envs=N, autoreset_mode=AutoresetMode.NEXT_STEP)` selects the
    mode gymnasium's vector wrappers expect (see `FunctionalVectorEnv`).
    """
    mode = autoreset_mode_of(autoreset_mode)  # checked before anything is built
    env, params = make_functional(env_id, env_class, overrides)
    return FunctionalVectorEnv(
        env, params, num_envs=num_envs, render_mode=render_mode, autoreset_mode=mode
    )
