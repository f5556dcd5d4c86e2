"""Tiger (Kaelbling, Littman & Cassandra 1998), undiscounted over a finite horizon."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from scalegym.core import spaces
from scalegym.core.fields import is_int, is_number, require
from scalegym.envs.pomdp.finite_pomdp import FinitePOMDP, POMDPState, f32
from scalegym.envs.pomdp.tabular import EmissionBlock, TabularPOMDP, tabular_model

LISTEN, OPEN_LEFT, OPEN_RIGHT = 0, 1, 2  # the actions
HEAR_LEFT, HEAR_RIGHT = 0, 1  # the symbols


@struct.dataclass
class TigerParams:
    """Kaelbling, Littman & Cassandra (1998)'s Tiger, undiscounted over a finite horizon."""

    listen_accuracy: float = 0.85
    listen_cost: float = 1.0
    tiger_penalty: float = 100.0
    treasure: float = 10.0
    max_steps_in_episode: int = 0  # set to the horizon at make()
    horizon: int = struct.field(pytree_node=False, default=4)  # H


def left_belief(hears: int, accuracy: float) -> float:
    """P(tiger left) after a reset and `hears` = #hear-left − #hear-right listens."""
    if accuracy < 1:
        odds = (accuracy / (1 - accuracy)) ** hears
    else:
        odds = math.inf if hears > 0 else 0.0 if hears < 0 else 1
    return 0.5 if hears == 0 else (1.0 if odds == math.inf else odds / (1 + odds))


class Tiger(FinitePOMDP):
    """Tiger (Kaelbling, Littman & Cassandra 1998), undiscounted, H = max_steps_in_episode.

    | item        | value                                                                    |
    |-------------|--------------------------------------------------------------------------|
    | states      | tiger behind the left / right door (drawn at reset and after each open)  |
    | actions     | Discrete(3): listen, open left, open right                               |
    | observation | one-hot [2]: hear left / hear right; right with listen_accuracy (0.85)   |
    |             | after a listen, a fair coin after a reset or an open                     |
    | reward      | listen −1; open the tiger's door −100, the other +10                     |
    | S, A, O, H  | 2 (4 in the tabular model: side × arrived by listen / reset), 3, 2, H    |
    | revealing   | m = 1 on listened states, α = 2·accuracy − 1 = 0.7; reset states m = 2   |
    """

    deterministic_reset = False
    params_class = TigerParams

    @property
    def num_actions(self) -> int:
        return 3

    def validate_params(self, params: TigerParams) -> None:
        require(
            is_number(params.listen_accuracy) and 0.5 <= params.listen_accuracy <= 1.0,
            "Tiger",
            "listen_accuracy",
            params.listen_accuracy,
            "numbers in [0.5, 1]",
        )
        require(
            is_int(params.horizon, 1) and params.horizon <= 64,
            "Tiger",
            "horizon",
            params.horizon,
            "integers 1..64",
        )
        for field in ("listen_cost", "tiger_penalty", "treasure"):
            value = getattr(params, field)
            require(float(value) >= 0, "Tiger", field, value, "numbers >= 0")

    def horizon(self, params: TigerParams) -> int:
        return int(params.horizon)

    def num_obs(self, params: TigerParams) -> int:
        return 2

    def reward_span(self, params: TigerParams) -> jax.Array:
        return f32(params.treasure) + f32(params.tiger_penalty)  # +10 against −100

    def action_space(self, params: Any = None) -> spaces.Discrete:
        return spaces.Discrete(3)

    def reset_env(self, key: jax.Array, params: TigerParams) -> tuple[jax.Array, POMDPState]:
        k_side, k_obs = jax.random.split(key)
        side = jax.random.bernoulli(k_side).astype(jnp.int32)
        symbol = jax.random.bernoulli(k_obs).astype(jnp.int32)
        state = POMDPState(time=jnp.int32(0), node=side, symbol=symbol)
        return self.get_obs(state, params), state

    def step_env(self, key: jax.Array, state: POMDPState, action: Any, params: TigerParams) -> Any:
        a = jnp.asarray(action, jnp.int32)
        k_hear, k_side, k_noise = jax.random.split(key, 3)
        side = state.node
        listen = a == LISTEN
        heard = jnp.where(jax.random.uniform(k_hear) < f32(params.listen_accuracy), side, 1 - side)
        opened_tiger = (a - 1) == side
        reward = jnp.where(
            listen,
            -f32(params.listen_cost),
            jnp.where(opened_tiger, -f32(params.tiger_penalty), f32(params.treasure)),
        )
        new_side = jax.random.bernoulli(k_side).astype(jnp.int32)
        noise = jax.random.bernoulli(k_noise).astype(jnp.int32)
        node = jnp.where(listen, side, new_side)
        symbol = jnp.where(listen, heard, noise)
        return self.finish(state, params, node, symbol, reward)

    def tabular(self, params: TigerParams) -> TabularPOMDP:
        """States: tiger left/right × arrived by listening / by a reset (which emits noise)."""
        self.validate_params(params)
        acc = float(params.listen_accuracy)
        # 0 left-listened, 1 right-listened, 2 left-reset, 3 right-reset; symbols: hear left/right.
        transition = np.zeros((3, 4, 4))  # [A, S, S]
        for s in range(4):
            side = s % 2
            transition[LISTEN, s, side] = 1.0
            transition[OPEN_LEFT, s, 2:] = transition[OPEN_RIGHT, s, 2:] = 0.5
        emission = np.array([[acc, 1 - acc], [1 - acc, acc], [0.5, 0.5], [0.5, 0.5]])  # [S, O]
        reward = np.zeros((4, 3))  # [S, A]
        reward[:, LISTEN] = -float(params.listen_cost)
        penalty, treasure = -float(params.tiger_penalty), float(params.treasure)
        for s in range(4):
            side = s % 2  # 0: tiger behind the left door
            reward[s, OPEN_LEFT] = penalty if side == 0 else treasure
            reward[s, OPEN_RIGHT] = penalty if side == 1 else treasure
        initial = np.array([0.0, 0.0, 0.5, 0.5])
        return tabular_model(
            "Tiger",
            transition,
            emission,
            np.zeros(2),
            int(params.horizon),
            reward=reward,
            initial=initial,
        )

    def optimal_value(self, params: TigerParams) -> float:
        """V* by Tiger's own sufficient statistic: the belief after a reset depends only on
        d = (#hear-left − #hear-right), so V_t(d) = max(listen, open left, open right) over d."""
        self.validate_params(params)
        acc, h = float(params.listen_accuracy), int(params.horizon)
        cost, penalty, treasure = (
            float(params.listen_cost),
            float(params.tiger_penalty),
            float(params.treasure),
        )
        values: dict[int, float] = dict.fromkeys(range(-h, h + 1), 0.0)  # V_H(d) = 0
        for _ in range(h):
            after_reset = values[0]
            new: dict[int, float] = {}
            for d in values:
                b = left_belief(d, acc)
                hear_left = b * acc + (1 - b) * (1 - acc)
                listen = (
                    -cost
                    + hear_left * values.get(d + 1, 0.0)
                    + (1 - hear_left) * values.get(d - 1, 0.0)
                )
                open_left = b * -penalty + (1 - b) * treasure
                open_right = (1 - b) * -penalty + b * treasure
                new[d] = max(listen, open_left + after_reset, open_right + after_reset)
            values = new
        return values[0]

    def emission_blocks(self, params: TigerParams) -> list[EmissionBlock]:
        """Listening reveals the side with σ_min = α = 2·accuracy − 1. A reset's first symbol is
        a fair coin, so the reset copies are revealed only with the listen after it (m = 2): the
        2-step matrix is ½·[[acc, 1−acc], [1−acc, acc]] ⊗ [1, 1], whose σ_min is α/√2."""
        alpha = 2 * float(params.listen_accuracy) - 1
        return [
            EmissionBlock("listened", (0, 1), (), alpha),
            EmissionBlock("reset, then listen", (2, 3), (LISTEN,), alpha / math.sqrt(2)),
        ]
