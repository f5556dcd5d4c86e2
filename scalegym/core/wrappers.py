"""Functional env wrappers (gymnax/PureJaxRL style): `Wrapper` and `EpisodeStatistics`."""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from scalegym.core import spaces
from scalegym.core.environment import Environment, transition_of

__all__ = ["EpisodeStatistics", "EpisodeStatisticsState", "Wrapper"]


class Wrapper(Environment):
    """Base of functional wrappers: spaces, params and truncation come from the inner env.

    The inner env may be a scalegym `Environment` or a gymnax one. Attributes the wrapper does
    not define are looked up on the inner env, except renderers, which get the inner state.
    Subclasses whose state wraps the inner one keep it in a field named `env_state`.
    """

    def __init__(self, env: Any):
        self._env = env

    def __getattr__(self, name: str) -> Any:
        if name == "_env":  # not set yet (e.g. during copy/unpickle): avoid endless recursion
            raise AttributeError(name)
        attr = getattr(self._env, name)
        if name in ("render_rgb", "render_text"):
            return lambda state, params: attr(self._inner_state(state), params)
        return attr

    def _inner_state(self, state: Any) -> Any:
        return getattr(state, "env_state", state)

    @property
    def default_params(self) -> Any:
        return self._env.default_params

    def _params(self, params: Any) -> Any:
        return self.default_params if params is None else params

    def observation_space(self, params: Any = None) -> spaces.Space:
        return self._env.observation_space(self._params(params))

    def action_space(self, params: Any = None) -> spaces.Space:
        return self._env.action_space(self._params(params))

    @property
    def num_actions(self) -> int:
        return self._env.num_actions

    @property
    def name(self) -> str:
        return self._env.name

    def validate_params(self, params: Any) -> None:
        validate = getattr(self._env, "validate_params", None)
        if validate is not None:
            validate(params)

    @property
    def obs_from_state(self) -> bool:  # type: ignore[override]
        return bool(getattr(self._env, "obs_from_state", False))

    def is_truncated(self, state: Any, params: Any) -> jax.Array:
        return self._env.is_truncated(self._inner_state(state), params)

    def get_obs(self, state: Any, params: Any, key: jax.Array | None = None) -> Any:
        return self._env.get_obs(self._inner_state(state), params, key)

    @property
    def requires_x64(self) -> bool:  # type: ignore[override]
        return bool(getattr(self._env, "requires_x64", False))

    def reset_env(self, key: jax.Array, params: Any) -> tuple[Any, Any]:
        return self._env.reset_env(key, params)

    def transition(
        self, key: jax.Array, state: Any, action: Any, params: Any
    ) -> tuple[Any, Any, jax.Array, jax.Array, jax.Array, dict[str, Any]]:
        # The inner env's own transition (its rule, or what a wrapper inside adds to it).
        return transition_of(self._env)(key, state, action, params)

    def step_env(
        self, key: jax.Array, state: Any, action: Any, params: Any
    ) -> tuple[Any, Any, jax.Array, jax.Array, dict[str, Any]]:
        return self._env.step_env(key, state, action, params)


@struct.dataclass
class EpisodeStatisticsState:
    env_state: Any
    episode_returns: jax.Array  # [] float32 return of the running episode so far
    episode_lengths: jax.Array  # [] int32 steps of the running episode so far
    returned_episode_returns: jax.Array  # [] float32 return of the last finished episode
    returned_episode_lengths: jax.Array  # [] int32 length of the last finished episode
    returned_episode_success: jax.Array  # [] float32 info["success"] at its end (0 if none)
    returned_episode_valid: jax.Array  # [] bool some episode has finished in this lane

    @property
    def time(self) -> jax.Array:
        return self.env_state.time


class EpisodeStatistics(Wrapper):
    """Episode return/length bookkeeping, like PureJaxRL's `LogWrapper`.

    `info` gains, every step:

    | key                        | dtype   | meaning                                      |
    |----------------------------|---------|----------------------------------------------|
    | `returned_episode`         | bool    | an episode ended this step (term. or trunc.) |
    | `returned_episode_returns` | float32 | return of the last finished episode          |
    | `returned_episode_lengths` | int32   | length of the last finished episode          |
    | `returned_episode_valid`   | bool    | some episode has finished in this lane yet   |
    | `returned_episode_success` | float32 | `info["success"]` at that episode's end      |

    (`returned_episode_success` only when the inner env reports `info["success"]`.)

    Average finished episodes with `returned_episode` as the weight, or the last-finished values
    over lanes with `returned_episode_valid`; lanes that never finished hold zeros.
    """

    def reset_env(self, key: jax.Array, params: Any) -> tuple[Any, EpisodeStatisticsState]:
        obs, env_state = self._env.reset_env(key, params)
        zero_f = jnp.zeros((), jnp.float32)
        zero_i = jnp.zeros((), jnp.int32)
        state = EpisodeStatisticsState(
            env_state=env_state,
            episode_returns=zero_f,
            episode_lengths=zero_i,
            returned_episode_returns=zero_f,
            returned_episode_lengths=zero_i,
            returned_episode_success=zero_f,
            returned_episode_valid=jnp.zeros((), jnp.bool_),
        )
        return obs, state

    def transition(
        self, key: jax.Array, state: EpisodeStatisticsState, action: Any, params: Any
    ) -> tuple[Any, EpisodeStatisticsState, jax.Array, jax.Array, jax.Array, dict[str, Any]]:
        """The inner env's transition, with the running episode's sums closed where it ends."""
        obs, env_state, reward, terminated, truncated, info = transition_of(self._env)(
            key, state.env_state, action, params
        )
        done = jnp.logical_or(terminated, truncated)
        episode_returns = state.episode_returns + jnp.asarray(reward, jnp.float32)
        episode_lengths = state.episode_lengths + 1
        success = state.returned_episode_success
        if "success" in info:
            success = jnp.where(done, jnp.asarray(info["success"], jnp.float32), success)
        next_state = EpisodeStatisticsState(
            env_state=env_state,
            episode_returns=episode_returns,
            episode_lengths=episode_lengths,
            returned_episode_returns=jnp.where(
                done, episode_returns, state.returned_episode_returns
            ),
            returned_episode_lengths=jnp.where(
                done, episode_lengths, state.returned_episode_lengths
            ),
            returned_episode_success=success,
            returned_episode_valid=jnp.logical_or(state.returned_episode_valid, done),
        )
        info = {
            **info,
            "returned_episode": done,
            "returned_episode_returns": next_state.returned_episode_returns,
            "returned_episode_lengths": next_state.returned_episode_lengths,
            "returned_episode_valid": next_state.returned_episode_valid,
        }
        if "success" in info:
            info["returned_episode_success"] = success
        return obs, next_state, reward, terminated, truncated, info

    def step_env(
        self, key: jax.Array, state: EpisodeStatisticsState, action: Any, params: Any
    ) -> tuple[Any, EpisodeStatisticsState, jax.Array, jax.Array, dict[str, Any]]:
        obs, next_state, reward, terminated, _, info = self.transition(key, state, action, params)
        return obs, next_state, reward, terminated, info

    @partial(jax.jit, static_argnames=("self",))
    def step(
        self,
        key: jax.Array,
        state: EpisodeStatisticsState,
        action: int | float | jax.Array,
        params: Any = None,
    ) -> tuple[Any, EpisodeStatisticsState, jax.Array, jax.Array, jax.Array, dict[str, Any]]:
        """The base step (auto-reset included), keeping last-episode stats across the reset."""
        obs, next_state, reward, terminated, truncated, info = super().step(
            key, state, action, params
        )
        # Auto-reset swapped finished lanes for a fresh state with zeroed stats; the values
        # `step_env` computed before that swap are the ones to carry, and its state is gone.
        carried = {
            "returned_episode_returns": info["returned_episode_returns"],
            "returned_episode_lengths": info["returned_episode_lengths"],
            "returned_episode_valid": info["returned_episode_valid"],
        }
        if "returned_episode_success" in info:
            carried["returned_episode_success"] = info["returned_episode_success"]
        return obs, next_state.replace(**carried), reward, terminated, truncated, info
