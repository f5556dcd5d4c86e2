"""RevealingBandit: best-arm identification behind a revealing channel (S-exponent 1)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from scalegym.envs.pomdp.candidates import (
    Candidates,
    candidates_tabular,
    selection_depth,
    tree_offsets,
    validate_channel,
    validate_selection,
)
from scalegym.envs.pomdp.finite_pomdp import FinitePOMDP, POMDPState, f32, revealed_w
from scalegym.envs.pomdp.tabular import EmissionBlock, TabularPOMDP


@struct.dataclass
class RevealingBanditParams:
    """One secret candidate among S leads to W more often; W/L are revealed with constant α."""

    secret: jax.Array | None = None  # [] int32 the rewarded candidate
    alpha: float = 0.5
    epsilon: float = 0.5  # P(W) = (1 + ε)/2 at the secret, 1/2 elsewhere
    max_steps_in_episode: int = 0  # set to H = k at make()
    size: int = struct.field(pytree_node=False, default=16)  # S candidates (= A^k)
    num_actions: int = struct.field(pytree_node=False, default=2)
    instance_seed: int = 0  # a leaf, so instances of different seeds stack into one batch


def draw_secret(params: RevealingBanditParams) -> int:
    """The rewarded candidate, drawn from the instance seed."""
    return int(np.random.default_rng([params.instance_seed, 2]).integers(params.size))


class RevealingBandit(FinitePOMDP):
    """Best-arm identification behind a revealing channel: the S-exponent-1 baseline.

    | item        | value                                                                    |
    |-------------|--------------------------------------------------------------------------|
    | candidates  | S = A^k, spelled by k actions in a tree whose nodes emit their depth     |
    | outcome     | candidate → W with (1 + ε)/2 at the secret, 1/2 elsewhere; else L        |
    | emission    | W/L emit w with (1 ± α)/2; reward 1 on w                                 |
    | S, A, O, H  | S = (A^k − 1)/(A − 1) + 2 states, A actions, O = k + 2, H = k             |
    | revealing   | m = 1 on W/L with constant α                                             |
    | V*          | 1/2 + αε/2                                                               |
    | S-exponent  | 1: each candidate's win rate must be told apart by g = αε/2: N ≈ S/g²    |

    Subclasses change what a candidate is (`digits_per_size`, `is_secret`, `secret_candidate`); the
    step, tables, V* and emission blocks follow from those.
    """

    params_class = RevealingBanditParams
    derived_fields = ("secret", "max_steps_in_episode")
    digits_per_size = 1  # candidates = size^digits_per_size

    def validate_params(self, params: Any) -> None:
        validate_selection(self.name, "size", params.size, params.num_actions)
        validate_channel(self.name, params)

    def with_instance(self, params: Any) -> Any:
        return params.replace(secret=jnp.int32(draw_secret(params)))

    def horizon(self, params: Any) -> int:
        return self.digits_per_size * selection_depth(params.size, params.num_actions)

    def num_obs(self, params: Any) -> int:
        return self.horizon(params) + 2

    def reset_env(self, key: jax.Array, params: Any) -> tuple[jax.Array, POMDPState]:
        return self.start(params)

    def is_secret(self, candidate: jax.Array, params: Any) -> jax.Array:
        """bool []: the candidate spelled is the rewarded one."""
        return candidate == params.secret

    def step_env(self, key: jax.Array, state: POMDPState, action: Any, params: Any) -> Any:
        k = self.horizon(params)
        a = jnp.asarray(action, jnp.int32)
        t = state.time
        k_win, k_emit = jax.random.split(key)
        prefix = state.node * params.num_actions + a
        bias = f32(params.epsilon) * self.is_secret(prefix, params).astype(jnp.float32)
        win = jax.random.uniform(k_win) < 0.5 * (1 + bias)
        w = revealed_w(k_emit, win, params.alpha)
        choosing = t == k - 1
        node = jnp.where(choosing, 1 - win, prefix)
        symbol = jnp.where(choosing, k + 1 - w, t + 1)
        return self.finish(state, params, node, symbol, choosing & w)

    def secret_candidate(self, params: Any) -> int:
        """The candidate that wins with (1 + ε)/2, as a host int."""
        return int(params.secret)

    def candidates(self, params: Any) -> Candidates:
        """The instance for `exact.candidate_policy_value` (no tables: any size)."""
        self.validate_params(params)
        win_probs = np.full(params.size**self.digits_per_size, 0.5)  # [C] C candidates
        win_probs[self.secret_candidate(params)] = (1 + float(params.epsilon)) / 2
        return Candidates(
            self.name, params.num_actions, self.horizon(params), win_probs, float(params.alpha)
        )

    def tabular(self, params: Any) -> TabularPOMDP:
        return candidates_tabular(self.candidates(params), "size")

    def optimal_value(self, params: Any) -> float:
        """V* = 1/2 + αε/2: the secret candidate wins with (1 + ε)/2, seen through the α
        channel."""
        return 0.5 + float(params.alpha) * float(params.epsilon) / 2

    def emission_blocks(self, params: Any) -> list[EmissionBlock]:
        """W/L: 1-step revealing with the stated α."""
        k = self.horizon(params)
        win = int(tree_offsets(params.num_actions, k)[k])
        return [EmissionBlock("W/L", (win, win + 1), (), float(params.alpha))]
