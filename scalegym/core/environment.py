"""The gymnax-1.0-compatible functional environment base: episode bookkeeping and auto-reset.

An env subclass writes `reset_env`, `step_env` (no auto-reset) and `get_obs`; this base class owns
the episode rule (`transition`: `truncated` is `is_truncated` and not `terminated`), auto-reset
(`step`), and puts the last real observation of an episode in `info["final_observation"]`. Every
step without reset, here, in `EpisodeStatistics` and in the gymnasium adapters, goes through
`transition`. All methods are pure: params and keys are passed in, never stored on the env or in
its state.

The step counter is the env's job, done one way: `step_env` returns the state with `time` one
more than it was given (the conformance tests check it). Truncation causes live in one
overridable place, `is_truncated`; the base rule is the time limit, and an env with another cause
(ThreeBody's substep cap) returns `super().is_truncated(state, params) | its_cause`.

An env whose observation is a function of its state alone sets `obs_from_state = True`; `step` then
computes the observation once, from the state the agent continues from, instead of computing both
the reset's and the step's observation and selecting between them under `vmap`.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Generic, TypeVar

import jax
import jax.numpy as jnp
from flax import struct

from scalegym.core import spaces
from scalegym.core.fields import check_fields, check_kinds, dataclass_fields
from scalegym.core.fusion import compute_once


@struct.dataclass
class EnvState:
    time: jax.Array  # [] int32 steps taken in the current episode


@struct.dataclass
class EnvParams:
    max_steps_in_episode: int = 100


TEnvState = TypeVar("TEnvState", bound=EnvState)
TEnvParams = TypeVar("TEnvParams")


def select_tree(pred: jax.Array, on_true: Any, on_false: Any) -> Any:
    """Leafwise `where(pred, on_true, on_false)` for two pytrees of one structure."""
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


class Environment(Generic[TEnvState, TEnvParams]):
    """Base class of every scalegym env (signatures and return tuples are gymnax 1.0's)."""

    # True when `get_obs(state, params)` is the observation `step_env`/`reset_env` return, with no
    # key involved (not so for envs that emit noisy observations).
    obs_from_state: bool = False
    # True for float64 envs (ThreeBody): the gymnasium adapters run their own calls under JAX's
    # x64 mode, and `scalegym.env_precision(id)` scopes it for users of the functional env.
    requires_x64: bool = False

    @property
    def default_params(self) -> TEnvParams:
        return EnvParams()  # type: ignore[return-value]

    @partial(jax.jit, static_argnames=("self",))
    def step(
        self,
        key: jax.Array,
        state: TEnvState,
        action: int | float | jax.Array,
        params: TEnvParams | None = None,
    ) -> tuple[Any, TEnvState, jax.Array, jax.Array, jax.Array, dict[str, Any]]:
        """One transition with auto-reset: (obs, state, reward, terminated, truncated, info)."""
        if params is None:
            params = self.default_params
        key_step, key_reset = jax.random.split(key)
        obs_st, state_st, reward, terminated, truncated, info = self.transition(
            key_step, state, action, params
        )
        done = jnp.logical_or(terminated, truncated)
        obs_re, state_re = self.reset_env(key_reset, params)
        state = select_tree(done, state_re, state_st)
        if self.obs_from_state:
            # One observation instead of two plus a select; `compute_once` keeps XLA from
            # re-running the step and the reset inside every observation element.
            state = compute_once(state)
            obs = self.get_obs(state, params)
        else:
            obs = select_tree(done, obs_re, obs_st)
        info = {**info, "final_observation": obs_st}
        return obs, state, reward, terminated, truncated, info

    @partial(jax.jit, static_argnames=("self",))
    def reset(self, key: jax.Array, params: TEnvParams | None = None) -> tuple[Any, TEnvState]:
        """Start an episode: (obs, state)."""
        if params is None:
            params = self.default_params
        return self.reset_env(key, params)

    def transition(
        self, key: jax.Array, state: TEnvState, action: Any, params: TEnvParams
    ) -> tuple[Any, TEnvState, jax.Array, jax.Array, jax.Array, dict[str, Any]]:
        """One step without reset: (obs, state, reward, terminated, truncated, info).

        The episode rule, in its only place: `terminated` comes from `step_env`; `truncated` is
        `is_truncated` of the new state and never set together with `terminated`.
        """
        obs, state, reward, terminated, info = self.step_env(key, state, action, params)
        terminated = jnp.asarray(terminated, jnp.bool_)
        truncated = jnp.logical_and(self.is_truncated(state, params), ~terminated)
        return obs, state, reward, terminated, truncated, info

    def step_env(
        self, key: jax.Array, state: TEnvState, action: Any, params: TEnvParams
    ) -> tuple[Any, TEnvState, jax.Array, jax.Array, dict[str, Any]]:
        """Env-specific transition without auto-reset: (obs, state, reward, terminated, info).

        The returned state's `time` is the given state's plus one.
        """
        raise NotImplementedError

    def reset_env(self, key: jax.Array, params: TEnvParams) -> tuple[Any, TEnvState]:
        """Env-specific reset: (obs, state)."""
        raise NotImplementedError

    def get_obs(self, state: TEnvState, params: TEnvParams, key: jax.Array | None = None) -> Any:
        raise NotImplementedError

    def is_truncated(self, state: TEnvState, params: TEnvParams) -> jax.Array:
        """Time limit reached; an env with more truncation causes ORs them in here."""
        return state.time >= params.max_steps_in_episode  # type: ignore[attr-defined]

    def validate_params(self, params: TEnvParams) -> None:
        """Check params on the host; raise ValueError naming the field and the allowed range."""

    def make_params(self, **overrides: Any) -> TEnvParams:
        """Default params with `overrides` applied and validated (the path `scalegym.make` uses)."""
        params = self.default_params
        if overrides:
            check_fields(f"{self.name} params", overrides, dataclass_fields(params))
            check_kinds(f"{self.name} params", overrides, params)
            params = params.replace(**overrides)  # type: ignore[attr-defined]
        self.validate_params(params)
        return params

    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def num_actions(self) -> int:
        raise NotImplementedError

    def action_space(self, params: TEnvParams | None = None) -> spaces.Space:
        raise NotImplementedError

    def observation_space(self, params: TEnvParams | None = None) -> spaces.Space:
        raise NotImplementedError


def transition_of(env: Any) -> Any:
    """`env.transition` for a scalegym env; the same rule applied to a gymnax env's `step_env`."""
    if isinstance(env, Environment):
        return env.transition
    return partial(Environment.transition, env)
