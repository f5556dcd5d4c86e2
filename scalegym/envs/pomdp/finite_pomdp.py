"""The finite-horizon POMDP env every family subclasses: compact state, one-hot symbol observed.

Every family steps a state of three int32 scalars (time, node, symbol) and observes
one-hot(symbol) as float32 [O]: the agent sees only the emitted symbol, never the node or the
instance secret (which live in the state and params). Episodes last exactly H actions and then
terminate (finite horizon; nothing is truncated at the default limit). An instance is its params:
the secret is drawn from `instance_seed` at `make()` and held in pytree leaves, so one batch may
hold many instances; reset draws only episode randomness. `tabular`, `optimal_value` and
`emission_blocks` hand the same instance to the exact tools (`exact.py`).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from scalegym.core import spaces
from scalegym.core.environment import Environment
from scalegym.core.fields import (
    check_fields,
    check_kinds,
    dataclass_fields,
    is_int,
    is_number,
    require,
)
from scalegym.envs.pomdp.tabular import EmissionBlock, TabularPOMDP


@struct.dataclass
class POMDPState:
    time: jax.Array  # [] int32 actions taken this episode
    # [] int32 hidden position: tree prefix, element, W(0)/L(1), side, good(0)/bad(1)
    node: jax.Array
    symbol: jax.Array  # [] int32 the observation symbol just emitted


def f32(x: Any) -> jax.Array:
    return jnp.asarray(x, jnp.float32)


def revealed_w(key: jax.Array, win: jax.Array, alpha: jax.Array) -> jax.Array:
    """bool []: the emitted symbol is w, with probability (1 ± α)/2 from W / L."""
    return jax.random.uniform(key) < jnp.where(win, 0.5 * (1 + f32(alpha)), 0.5 * (1 - f32(alpha)))


def check_unit_interval(family: str, field: str, value: float) -> None:
    """A revealing constant or perturbation: a number in (0, 1]."""
    require(
        is_number(value) and 0.0 < float(value) <= 1.0, family, field, value, "numbers in (0, 1]"
    )


def check_instance_seed(family: str, seed: int) -> None:
    require(is_int(seed, 0), family, "instance_seed", seed, "integers >= 0")


class FinitePOMDP(Environment[POMDPState, Any]):
    """Shared bookkeeping of the families: params made at make(), observation, spaces, H."""

    obs_from_state = True
    deterministic_reset = True  # every episode starts at one node (Tiger draws its side)
    params_class: type = object
    derived_fields: tuple[str, ...] = ("max_steps_in_episode",)  # set by make(), not by users
    instance_field = "instance_seed"  # the param that draws an instance (a scaling cell sets it)

    @functools.cached_property
    def default_params(self) -> Any:
        return self.make_params()

    @property
    def num_actions(self) -> int:
        """A of the default instance; an instance's own is `action_space(params).n`."""
        return int(self.default_params.num_actions)

    def make_params(self, **overrides: Any) -> Any:
        """Validated params of one instance: its secret drawn from `instance_seed`, H set."""
        where = f"{self.name} params"
        settable = set(dataclass_fields(self.params_class)) - set(self.derived_fields)
        check_fields(where, overrides, settable)
        check_kinds(where, overrides, self.params_class())
        params = self.params_class(**overrides)
        self.validate_params(params)
        params = self.with_instance(params)
        return params.replace(max_steps_in_episode=self.horizon(params))

    def with_instance(self, params: Any) -> Any:
        """Params with the instance's secret filled in (family-specific; Tiger has none)."""
        return params

    def horizon(self, params: Any) -> int:
        """H, from static fields only (shapes and jit depend on it)."""
        raise NotImplementedError

    def fixed_episode_length(self, params: Any) -> int:
        """Every episode lasts exactly H actions (a scaling cell counts episodes by it)."""
        return self.horizon(params)

    def num_obs(self, params: Any) -> int:
        raise NotImplementedError

    def reward_span(self, params: Any) -> jax.Array:
        """Highest minus lowest one-step reward ([] float32): 1 here (rewards in [0, 1]);
        a planner's exploration scale."""
        return jnp.float32(1.0)

    def get_obs(self, state: POMDPState, params: Any, key: jax.Array | None = None) -> jax.Array:
        return jax.nn.one_hot(state.symbol, self.num_obs(params), dtype=jnp.float32)

    def action_space(self, params: Any = None) -> spaces.Discrete:
        params = self.default_params if params is None else params
        return spaces.Discrete(int(params.num_actions))

    def observation_space(self, params: Any = None) -> spaces.Box:
        params = self.default_params if params is None else params
        return spaces.Box(0.0, 1.0, (self.num_obs(params),), jnp.float32)

    def start(self, params: Any) -> tuple[jax.Array, POMDPState]:
        """The deterministic start: root node, depth-0 symbol."""
        zero = jnp.int32(0)
        state = POMDPState(time=zero, node=zero, symbol=zero)
        return self.get_obs(state, params), state

    def finish(
        self,
        state: POMDPState,
        params: Any,
        node: jax.Array,
        symbol: jax.Array,
        reward: jax.Array,
    ) -> tuple[jax.Array, POMDPState, jax.Array, jax.Array, dict[str, Any]]:
        """The step's outputs; past the horizon the state absorbs and pays nothing."""
        past_end = state.time >= self.horizon(params)
        nxt = POMDPState(
            time=state.time + 1,
            node=jnp.where(past_end, state.node, node).astype(jnp.int32),
            symbol=jnp.where(past_end, state.symbol, symbol).astype(jnp.int32),
        )
        reward = jnp.where(past_end, 0.0, reward).astype(jnp.float32)
        terminated = nxt.time >= self.horizon(params)
        return self.get_obs(nxt, params), nxt, reward, terminated, {}

    # The exact tools' view of an instance.
    def tabular(self, params: Any) -> TabularPOMDP:
        raise NotImplementedError

    def optimal_value(self, params: Any) -> float:
        """V* in closed form (or the family's own small recursion), not the generic DP."""
        raise NotImplementedError

    def emission_blocks(self, params: Any) -> list[EmissionBlock]:
        raise NotImplementedError


def instance_batch(env: FinitePOMDP, seeds: list[int] | np.ndarray, **overrides: Any) -> Any:
    """Params of many instances stacked on a leading axis [N] (vmap over them with in_axes=0)."""
    made = [env.make_params(**{**overrides, "instance_seed": int(s)}) for s in seeds]
    return jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *made)
