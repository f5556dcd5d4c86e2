"""NoisyCombinationLock: a combination lock whose good/bad chains are seen through noise."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from scalegym.core.fields import is_int, require
from scalegym.envs.pomdp.finite_pomdp import (
    FinitePOMDP,
    POMDPState,
    check_instance_seed,
    check_unit_interval,
    f32,
)
from scalegym.envs.pomdp.tabular import (
    EmissionBlock,
    TabularPOMDP,
    revealing_emission,
    tabular_model,
)


@struct.dataclass
class NoisyCombinationLockParams:
    """H secret digits; a wrong one drops to the bad chain for good; good/bad emitted with α."""

    combination: jax.Array | None = None  # [H] int32 the secret digits
    alpha: float = 0.6
    max_steps_in_episode: int = 0  # set to the horizon at make()
    horizon: int = struct.field(pytree_node=False, default=6)  # H digits
    num_actions: int = struct.field(pytree_node=False, default=4)
    instance_seed: int = 0  # a leaf, so instances of different seeds stack into one batch


def draw_combination(params: NoisyCombinationLockParams) -> np.ndarray:
    """[H] the secret digits, drawn from the instance seed."""
    rng = np.random.default_rng([params.instance_seed, 5])
    return rng.integers(params.num_actions, size=params.horizon)


class NoisyCombinationLock(FinitePOMDP):
    """A combination lock whose good/bad chains are seen through a noisy channel.

    | item        | value                                                                    |
    |-------------|--------------------------------------------------------------------------|
    | states      | good_t / bad_t, t = 0..H; the right digit c_t keeps good, any other      |
    |             | drops to bad for good                                                    |
    | observation | one-hot [2(H+1)]: (t, looks good / looks bad), right with (1 + α)/2      |
    | reward      | 1 for the last right digit (good_{H−1} → good_H)                         |
    | S, A, O, H  | 2(H+1), A, 2(H+1), H                                                     |
    | revealing   | m = 1 on each (good_t, bad_t) with constant α                            |
    | V*          | 1 (the instance's own combination)                                       |
    | exponent    | in H: each digit is found by trying A actions and reading the noisy      |
    |             | chain, ~A·H/α² episodes (no exponential search: the channel reveals)     |
    """

    params_class = NoisyCombinationLockParams
    derived_fields = ("combination", "max_steps_in_episode")

    def validate_params(self, params: NoisyCombinationLockParams) -> None:
        name = "NoisyCombinationLock"
        require(
            is_int(params.horizon, 1) and params.horizon <= 64,
            name,
            "horizon",
            params.horizon,
            "integers 1..64",
        )
        require(
            is_int(params.num_actions, 2), name, "num_actions", params.num_actions, "integers >= 2"
        )
        check_unit_interval(name, "alpha", params.alpha)
        check_instance_seed(name, params.instance_seed)

    def with_instance(self, params: NoisyCombinationLockParams) -> NoisyCombinationLockParams:
        return params.replace(combination=jnp.asarray(draw_combination(params), jnp.int32))

    def horizon(self, params: NoisyCombinationLockParams) -> int:
        return int(params.horizon)

    def num_obs(self, params: NoisyCombinationLockParams) -> int:
        return 2 * (params.horizon + 1)

    def looks_bad(
        self, key: jax.Array, bad: jax.Array, params: NoisyCombinationLockParams
    ) -> jax.Array:
        """int32 []: the bad-looking bit emitted, the right one with probability (1 + α)/2."""
        right = jax.random.uniform(key) < 0.5 * (1 + f32(params.alpha))
        return jnp.where(right, bad, 1 - bad).astype(jnp.int32)

    def reset_env(
        self, key: jax.Array, params: NoisyCombinationLockParams
    ) -> tuple[jax.Array, POMDPState]:
        zero = jnp.int32(0)
        state = POMDPState(time=zero, node=zero, symbol=self.looks_bad(key, zero, params))
        return self.get_obs(state, params), state

    def step_env(
        self, key: jax.Array, state: POMDPState, action: Any, params: NoisyCombinationLockParams
    ) -> Any:
        a = jnp.asarray(action, jnp.int32)
        t = state.time
        digit = params.combination[jnp.minimum(t, params.horizon - 1)]
        right = (state.node == 0) & (a == digit)
        node = jnp.where(right, 0, 1)
        symbol = 2 * (t + 1) + self.looks_bad(key, node, params)
        reward = right & (t == params.horizon - 1)
        return self.finish(state, params, node, symbol, reward)

    def tabular(self, params: NoisyCombinationLockParams) -> TabularPOMDP:
        """States good_t = 2t, bad_t = 2t + 1 (t = 0..H); symbols (t, good-looking) = 2t,
        (t, bad-looking) = 2t + 1; reward 1 for the last right digit."""
        self.validate_params(params)
        h, a_count = params.horizon, params.num_actions
        combination = np.asarray(params.combination)  # [H]
        s_count = 2 * (h + 1)
        transition = np.zeros((a_count, s_count, s_count))  # [A, S, S]
        for t in range(h + 1):
            nxt = min(t + 1, h)
            for a in range(a_count):
                right = t < h and a == int(combination[t])
                transition[a, 2 * t, 2 * nxt + (0 if right else 1)] = 1.0
                transition[a, 2 * t + 1, 2 * nxt + 1] = 1.0
        emission = np.zeros((s_count, s_count))  # [S, O], O = S
        for t in range(h + 1):
            emission[2 * t : 2 * t + 2, 2 * t : 2 * t + 2] = revealing_emission(float(params.alpha))
        reward = np.zeros((s_count, a_count))  # [S, A]
        reward[2 * (h - 1), int(combination[h - 1])] = 1.0
        initial = np.zeros(s_count)
        initial[0] = 1.0
        return tabular_model(
            "NoisyCombinationLock",
            transition,
            emission,
            np.zeros(s_count),
            h,
            reward=reward,
            initial=initial,
        )

    def optimal_value(self, params: NoisyCombinationLockParams) -> float:
        """V* = 1: the instance's own combination, right at every step."""
        return 1.0

    def emission_blocks(self, params: NoisyCombinationLockParams) -> list[EmissionBlock]:
        """Each (good_t, bad_t) is 1-step revealing with the stated α."""
        alpha = float(params.alpha)
        return [
            EmissionBlock(f"good/bad at {t}", (2 * t, 2 * t + 1), (), alpha)
            for t in range(params.horizon + 1)
        ]
