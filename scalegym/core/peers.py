"""XLand-MiniGrid (`xminigrid:`) and NAVIX (`navix:`) envs behind the gymnax-1.0 functional API."""

from __future__ import annotations

import contextlib
import difflib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from scalegym.core import spaces
from scalegym.core.extras import import_extra
from scalegym.core.fields import check_fields, dataclass_fields

XMINIGRID_PREFIX = "xminigrid:"
NAVIX_PREFIX = "navix:"
# Where unknown-id errors send the user for the full list of each peer's ids.
_XMINIGRID_LIST = "python -c 'import xminigrid; print(xminigrid.registered_environments())'"
_NAVIX_LIST = "python -c 'import navix; print(sorted(navix.registry()))'"

# navix's StepType values (navix/environments/environment.py): 1 = time limit, 2 = absorbing end.
_NAVIX_TRUNCATION = 1
_NAVIX_TERMINATION = 2


def is_peer_id(env_id: str) -> bool:
    """True for ids `make_peer` builds: `xminigrid:<id>` and `navix:<id>`."""
    return env_id.startswith((XMINIGRID_PREFIX, NAVIX_PREFIX))


def make_peer(env_id: str, **overrides: Any) -> tuple[Any, Any]:
    """A peer env and its params, e.g. `make_peer("xminigrid:MiniGrid-DoorKey-8x8")`.

    xminigrid `overrides` replace fields of its env params (e.g. `max_steps=20`); navix ones are
    keyword arguments of `navix.make` (e.g. `max_steps=20`), and its params are None.
    """
    # Imported and built in 32-bit mode too: both peers create jnp constants at import and make.
    with _peer_precision():
        if env_id.startswith(XMINIGRID_PREFIX):
            return _make_xminigrid(env_id, overrides)
        if env_id.startswith(NAVIX_PREFIX):
            return _make_navix(env_id, overrides)
    raise ValueError(
        f"{env_id!r} is not a peer id: peer ids start with {XMINIGRID_PREFIX!r} or {NAVIX_PREFIX!r}"
    )


class _PeerEnv:
    """What both adapters share: the id as name, fixed params, and spaces read off `reset`."""

    def __init__(self, env_id: str, env: Any, params: Any):
        self._env = env
        self._params = params
        self._id = env_id

    @property
    def name(self) -> str:
        return self._id

    @property
    def default_params(self) -> Any:
        return self._params

    @property
    def num_actions(self) -> int:
        raise NotImplementedError

    def reset(self, key: jax.Array, params: Any = None) -> tuple[Any, Any]:
        raise NotImplementedError

    def action_space(self, params: Any = None) -> spaces.Discrete:
        return spaces.Discrete(self.num_actions)

    def observation_space(self, params: Any = None) -> spaces.Space:
        params = self._params if params is None else params
        return _space_of(jax.eval_shape(lambda k: self.reset(k, params)[0], _abstract_key()))


class XMiniGridEnv(_PeerEnv):
    """An XLand-MiniGrid env with gym-style (same-step) auto-reset, gymnax-1.0 signatures.

    The state is xminigrid's `TimeStep`; observations are exactly xminigrid's. `info` is `{}`: no
    `final_observation`, so this adapter is for benchmarking, not for PPO training.
    """

    def __init__(self, env_id: str, env: Any, env_params: Any):
        from xminigrid.wrappers import GymAutoResetWrapper

        # The wrapper xminigrid's own benchmark scripts time: it resets inside the terminal step.
        super().__init__(env_id, GymAutoResetWrapper(env), env_params)

    @property
    def num_actions(self) -> int:
        return int(self._env.num_actions(self._params))

    def reset(self, key: jax.Array, params: Any = None) -> tuple[Any, Any]:
        params = self._params if params is None else params
        with _peer_precision():
            timestep = self._env.reset(params, key)
        return timestep.observation, timestep

    def step(
        self, key: jax.Array, state: Any, action: Any, params: Any = None
    ) -> tuple[Any, Any, jax.Array, jax.Array, jax.Array, dict[str, Any]]:
        # xminigrid keeps its RNG key in its state (state.state.key, split at each auto-reset), so
        # the harness's step key has no use here.
        del key
        params = self._params if params is None else params
        with _peer_precision():
            timestep = self._env.step(params, state, action)
            # xminigrid's Environment.step marks any episode end with step_type LAST and sets
            # discount 0 only when the goal was reached; a time-limit end keeps discount 1. The
            # auto-reset wrapper swaps in the reset state and observation but keeps both fields.
            last = timestep.last()
            terminated = last & (timestep.discount == 0)
            truncated = last & (timestep.discount != 0)
            reward = timestep.reward.astype(jnp.float32)
        return timestep.observation, timestep, reward, terminated, truncated, {}


class NavixEnv(_PeerEnv):
    """A NAVIX env with gymnax-1.0 signatures; navix auto-resets on the step after an end.

    Params are None: navix keeps its configuration on the env object. The state is navix's
    `Timestep`; observations are exactly navix's. `info` is `{}`: no `final_observation`, so this
    adapter is for benchmarking, not for PPO training.
    """

    def __init__(self, env_id: str, env: Any):
        super().__init__(env_id, env, None)

    @property
    def num_actions(self) -> int:
        return len(self._env.action_set)

    def reset(self, key: jax.Array, params: Any = None) -> tuple[Any, Any]:
        del params
        with _peer_precision():
            timestep = self._env.reset(key)
        return timestep.observation, timestep

    def step(
        self, key: jax.Array, state: Any, action: Any, params: Any = None
    ) -> tuple[Any, Any, jax.Array, jax.Array, jax.Array, dict[str, Any]]:
        # navix keeps its RNG key in its state and its config on the env: neither input is used.
        del key, params
        # After a truncated or terminated step, navix's next `step` ignores the action and
        # returns a fresh episode's first timestep (step_type 0, reward 0).
        with _peer_precision():
            timestep = self._env.step(state, action)
            terminated = timestep.step_type == _NAVIX_TERMINATION
            truncated = timestep.step_type == _NAVIX_TRUNCATION
            reward = timestep.reward.astype(jnp.float32)
        return timestep.observation, timestep, reward, terminated, truncated, {}


def _make_xminigrid(env_id: str, overrides: dict[str, Any]) -> tuple[XMiniGridEnv, Any]:
    name = env_id[len(XMINIGRID_PREFIX) :]
    xminigrid = import_extra("xminigrid", env_id)
    known = xminigrid.registered_environments()
    if name not in known:
        raise ValueError(_unknown_peer_message(env_id, XMINIGRID_PREFIX, known, _XMINIGRID_LIST))
    env, env_params = xminigrid.make(name)
    if overrides:
        check_fields(f"{env_id} params", overrides, dataclass_fields(env_params))
        # Same as `xminigrid.make(name, **overrides)`: derived defaults such as max_steps are
        # not recomputed when height or width change.
        env_params = env_params.replace(**overrides)
    return XMiniGridEnv(env_id, env, env_params), env_params


def _make_navix(env_id: str, overrides: dict[str, Any]) -> tuple[NavixEnv, None]:
    name = env_id[len(NAVIX_PREFIX) :]
    navix = import_extra("navix", env_id)
    known = tuple(navix.registry())
    if name not in known:
        raise ValueError(_unknown_peer_message(env_id, NAVIX_PREFIX, known, _NAVIX_LIST))
    env = navix.make(name)
    if overrides:
        # `navix.make` passes keyword arguments through to the env's dataclass constructor.
        check_fields(f"{env_id} constructor", overrides, dataclass_fields(env))
        try:
            env = navix.make(name, **overrides)
        except TypeError as err:  # e.g. height, which the registered constructor already fixes
            raise ValueError(f"{env_id}: navix.make rejected {sorted(overrides)}: {err}") from err
    return NavixEnv(env_id, env), None


def _peer_precision() -> contextlib.AbstractContextManager[Any]:
    """JAX's default 32-bit mode, the one both peers are written for and benchmark in."""
    # A caller may have x64 on (a notebook, or a process that ran a float64 env before) and the
    # peers must not inherit it: under x64 navix's step fails to trace
    # (int32 vs int64 `cond` branches) and xminigrid's state widens to 64 bits, which would time
    # a configuration its authors never run.
    return jax.enable_x64(False)


def _unknown_peer_message(env_id: str, prefix: str, known: tuple[str, ...], how: str) -> str:
    name = env_id[len(prefix) :]
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(prefix + c) for c in close)}?" if close else ""
    return f"unknown env id {env_id!r}{hint} (list them with: {how})"


def _abstract_key() -> jax.ShapeDtypeStruct:
    # A raw uint32 key, the kind the harness passes; only its shape matters to eval_shape.
    return jax.ShapeDtypeStruct((2,), jnp.uint32)


def _space_of(obs: Any) -> spaces.Space:
    """A Box (or Dict of Boxes) with the shape and dtype of an abstract observation."""
    if isinstance(obs, dict):
        return spaces.Dict({k: _space_of(v) for k, v in obs.items()})
    dtype = np.dtype(obs.dtype)
    # Neither peer declares per-channel bounds for its grid encodings, so integer observations
    # get their dtype's full range rather than bounds that might be too tight.
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return spaces.Box(info.min, info.max, obs.shape, dtype)
    return spaces.Box(-np.inf, np.inf, obs.shape, dtype)


PEER_PREFIXES = ("gymnax:", XMINIGRID_PREFIX, NAVIX_PREFIX)  # every peer a bench compares with


def is_peer(env_id: str) -> bool:
    """True for the peers' ids (gymnax, XLand-MiniGrid, NAVIX): envs scalegym is set beside."""
    return env_id.startswith(PEER_PREFIXES)
