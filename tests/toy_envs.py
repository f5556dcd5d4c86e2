"""Tiny functional test envs: a 1-D chain (`ToyChain-v0`, `ToyChainBox-v0`, `ToyChainX64-v0`) and
`CoinGuess`, a hidden coin only the first action and reward tell (unregistered)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

import scalegym
from scalegym.core import Environment, spaces


@struct.dataclass
class ToyChainParams:
    length: int = 5  # cells 0..length-1; the goal is the right end
    max_steps_in_episode: int = 20
    slip_prob: float = 0.1  # chance a move goes the other way
    start_max: int = 2  # start cell is uniform in 0..start_max
    step_reward: float = -0.1
    goal_reward: float = 1.0


@struct.dataclass
class ToyChainState:
    pos: jax.Array  # [] int32
    slipped: jax.Array  # [] bool last move went the other way
    time: jax.Array  # [] int32


class TwoActions:
    """The toy envs' actions: Discrete(2)."""

    @property
    def num_actions(self) -> int:
        return 2

    def action_space(self, params: Any = None) -> spaces.Discrete:
        return spaces.Discrete(2)


class ToyChain(TwoActions, Environment):
    """A 1-D chain: action 1 moves right, 0 left (clamped at 0); the right end terminates.

    | obs     | Dict{"pos": Box[0,1] f32 [1] (pos / (length-1)), "vec": Box[0,1] f32 [2] (time
    |         | fraction, slipped)} — or just "pos" as a Box with `box_obs=True`          |
    | action  | Discrete(2)                                                              |
    | reward  | `step_reward` per step, plus `goal_reward` on reaching the end             |
    | episode | terminates at the right end; truncates at `max_steps_in_episode`          |
    """

    def __init__(self, box_obs: bool = False):
        self.box_obs = box_obs

    @property
    def default_params(self) -> ToyChainParams:
        return ToyChainParams()

    def validate_params(self, params: ToyChainParams) -> None:
        if not params.length >= 2:
            raise ValueError(f"ToyChain: length must be >= 2, got {params.length}")
        if not params.max_steps_in_episode >= 1:
            raise ValueError(
                f"ToyChain: max_steps_in_episode must be >= 1, got {params.max_steps_in_episode}"
            )
        if not 0.0 <= params.slip_prob <= 1.0:
            raise ValueError(f"ToyChain: slip_prob must be in [0, 1], got {params.slip_prob}")
        if not 0 <= params.start_max <= params.length - 2:
            raise ValueError(
                f"ToyChain: start_max must be in [0, length-2={params.length - 2}], "
                f"got {params.start_max}"
            )

    def get_obs(self, state: ToyChainState, params: ToyChainParams, key: Any = None) -> Any:
        pos = (state.pos / (params.length - 1)).astype(jnp.float32)[None]
        if self.box_obs:
            return pos
        frac = jnp.clip(state.time / params.max_steps_in_episode, 0.0, 1.0)
        vec = jnp.stack([frac, state.slipped]).astype(jnp.float32)
        return {"pos": pos, "vec": vec}

    def reset_env(self, key: jax.Array, params: ToyChainParams) -> tuple[Any, ToyChainState]:
        pos = jax.random.randint(key, (), 0, params.start_max + 1, dtype=jnp.int32)
        state = ToyChainState(
            pos=pos, slipped=jnp.zeros((), jnp.bool_), time=jnp.zeros((), jnp.int32)
        )
        return self.get_obs(state, params), state

    def step_env(
        self, key: jax.Array, state: ToyChainState, action: Any, params: ToyChainParams
    ) -> tuple[Any, ToyChainState, jax.Array, jax.Array, dict[str, Any]]:
        slipped = jax.random.uniform(key) < params.slip_prob
        move = jnp.where(jnp.asarray(action) == 1, 1, -1)
        move = jnp.where(slipped, -move, move)
        pos = jnp.clip(state.pos + move, 0, params.length - 1).astype(jnp.int32)
        state = ToyChainState(pos=pos, slipped=slipped, time=state.time + 1)
        at_goal = pos == params.length - 1
        reward = jnp.asarray(params.step_reward + params.goal_reward * at_goal, jnp.float32)
        return self.get_obs(state, params), state, reward, at_goal, {"success": at_goal}

    def render_text(self, state: ToyChainState, params: ToyChainParams) -> str:
        cells = ["."] * int(params.length)
        cells[-1] = "G"
        cells[int(state.pos)] = "A"
        return "".join(cells)

    def observation_space(self, params: ToyChainParams | None = None) -> spaces.Space:
        pos = spaces.Box(0.0, 1.0, (1,), jnp.float32)
        if self.box_obs:
            return pos
        return spaces.Dict({"pos": pos, "vec": spaces.Box(0.0, 1.0, (2,), jnp.float32)})


class ToyChainX64(ToyChain):
    """ToyChain declaring `requires_x64`: the hook `gymnasium.make` honours for float64 envs."""

    requires_x64 = True


@struct.dataclass
class CoinGuessParams:
    # actions per episode (>= 2): a guess, horizon − 2 waits, the answer (the obs shape: recompiles)
    horizon: int = struct.field(pytree_node=False, default=3)
    max_steps_in_episode: int = 3  # = horizon: episodes terminate, never truncate


@struct.dataclass
class CoinGuessState:
    coin: jax.Array  # [] int32 hidden, drawn at reset
    time: jax.Array  # [] int32


class CoinGuess(TwoActions, Environment):
    """A hidden fair coin that the first reward tells, and only together with the first action.

    | obs     | Box[0,1] f32 [horizon]: the step, one-hot; nothing about the coin          |
    | action  | Discrete(2): a guess of the coin                                           |
    | reward  | 1 for a right guess at the first step and at the last (success), else 0   |
    | episode | terminates after `horizon` actions                                         |

    The observations are the same whatever the coin, so a policy that sees only them answers
    right half the time, however it plays. One that also sees its previous action and reward
    reads the coin off its first step — with its first guess uniform, the reward alone is a fair
    coin independent of the coin: the action is needed — and must keep it through the waits.
    """

    obs_from_state = True

    @property
    def default_params(self) -> CoinGuessParams:
        return CoinGuessParams()

    def get_obs(self, state: CoinGuessState, params: CoinGuessParams, key: Any = None) -> Any:
        return jax.nn.one_hot(state.time, params.horizon, dtype=jnp.float32)

    def reset_env(self, key: jax.Array, params: CoinGuessParams) -> tuple[Any, CoinGuessState]:
        coin = jax.random.bernoulli(key).astype(jnp.int32)
        state = CoinGuessState(coin=coin, time=jnp.zeros((), jnp.int32))
        return self.get_obs(state, params), state

    def step_env(
        self, key: jax.Array, state: CoinGuessState, action: Any, params: CoinGuessParams
    ) -> tuple[Any, CoinGuessState, jax.Array, jax.Array, dict[str, Any]]:
        right = jnp.asarray(action, jnp.int32) == state.coin
        last = state.time == params.horizon - 1
        reward = (right & ((state.time == 0) | last)).astype(jnp.float32)
        state = CoinGuessState(coin=state.coin, time=state.time + 1)
        obs = self.get_obs(state, params)
        return obs, state, reward, state.time >= params.horizon, {"success": right & last}

    def observation_space(self, params: CoinGuessParams | None = None) -> spaces.Space:
        horizon = (params or self.default_params).horizon
        return spaces.Box(0.0, 1.0, (horizon,), jnp.float32)


def register_toy_envs() -> None:
    """Register the toy ids once per process (test modules share the registry)."""
    known = set(scalegym.list_envs())
    if "ToyChain-v0" not in known:
        scalegym.register("ToyChain-v0", ToyChain)
    if "ToyChainBox-v0" not in known:
        scalegym.register("ToyChainBox-v0", ToyChain, env_kwargs={"box_obs": True})
    if "ToyChainX64-v0" not in known:
        scalegym.register("ToyChainX64-v0", ToyChainX64)


register_toy_envs()
