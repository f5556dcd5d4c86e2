"""PaninskiLock: find the one perturbed candidate by distribution testing, then play its parity."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from scalegym.core.fields import is_int, require
from scalegym.envs.pomdp.candidates import (
    fill_depth_emission,
    fill_tree_transitions,
    selection_depth,
    tree_offsets,
    validate_channel,
    validate_selection,
)
from scalegym.envs.pomdp.finite_pomdp import FinitePOMDP, POMDPState, f32, revealed_w
from scalegym.envs.pomdp.tabular import (
    EmissionBlock,
    TabularPOMDP,
    check_tabular_size,
    revealing_emission,
    tabular_model,
)


@struct.dataclass
class PaninskiLockParams:
    """Static fields set shapes (changing one recompiles); the secret is drawn at make()."""

    secret: jax.Array | None = None  # [] int32 the secret candidate (leaf*, a*), base-A digits
    theta: jax.Array | None = None  # [n/2] float32 ±1, the perturbation sign of each pair
    alpha: float = 0.5  # revealing constant of the W/L emission
    epsilon: float = 0.5  # Paninski perturbation of the secret candidate's element pairs
    max_steps_in_episode: int = 0  # set to the horizon H = k + 1 at make()
    size: int = struct.field(pytree_node=False, default=16)  # S candidates (= A^k)
    num_actions: int = struct.field(pytree_node=False, default=2)  # A
    num_elements: int = struct.field(pytree_node=False, default=0)  # n; 0 means n = S
    instance_seed: int = 0  # a leaf, so instances of different seeds stack into one batch


def element_count(params: PaninskiLockParams) -> int:
    """n, the elements a candidate leads to (num_elements, or size when that is 0)."""
    return params.num_elements or params.size


def draw_secret(params: PaninskiLockParams) -> tuple[int, np.ndarray]:
    """(secret candidate, θ [n/2] ±1) drawn from the instance seed."""
    rng = np.random.default_rng([params.instance_seed, 1])
    secret = int(rng.integers(params.size))
    theta = rng.choice(np.array([-1.0, 1.0]), size=element_count(params) // 2)
    return secret, theta


def element_probs(params: PaninskiLockParams, candidate: int) -> np.ndarray:
    """[n] distribution of the element a candidate leads to: uniform, or Paninski-perturbed."""
    n = element_count(params)
    probs = np.full(n, 1.0 / n)
    if candidate == int(params.secret):
        signs = np.repeat(np.asarray(params.theta, np.float64), 2) * np.tile([1.0, -1.0], n // 2)
        probs = (1.0 + float(params.epsilon) * signs) / n
    return probs


class PaninskiLock(FinitePOMDP):
    """Find the one perturbed candidate by distribution testing, then play its pairs' parities.

    | item        | value                                                                    |
    |-------------|--------------------------------------------------------------------------|
    | candidates  | S = A^k: k actions spell (leaf, a) in a depth-(k−1) tree with A^(k−1)     |
    |             | leaves; every tree node emits only its depth                             |
    | element     | candidate → element e of n (n = S by default): uniform, except at the    |
    |             | secret: P(2i) = (1 + εθ_i)/n, P(2i+1) = (1 − εθ_i)/n (Paninski pairs);  |
    |             | the element's state emits its pair i only, never the bit within it       |
    | parity      | action a: W when a mod 2 = e mod 2, else L; W/L emit w with (1 ± α)/2    |
    | reward      | 1 when w is emitted (the last step), else 0                              |
    | S, A, O, H  | S = (A^k − 1)/(A − 1) + n + 2 states, A actions, O = k + n/2 + 2, H = k+1 |
    | revealing   | m = 2 (a pair emits i; parity then W/L reveals the bit) with constant α;  |
    |             | W/L alone: m = 1, α                                                      |
    | V*          | 1/2 + αε/2 (gap g = αε/2 over every other candidate)                     |
    | S-exponent  | 1.5: testing each of S candidates for the perturbation takes ~√n/g²      |
    |             | episodes (collision tester; n = S), so N ≈ A·S^1.5/g²                    |

    The mechanism of the multi-step revealing lower bound (Chen et al., "Lower Bounds for
    Learning in Revealing POMDPs", 2023: distribution testing behind a revealing channel), not the
    paper's verbatim construction.
    """

    params_class = PaninskiLockParams
    derived_fields = ("secret", "theta", "max_steps_in_episode")

    def validate_params(self, params: PaninskiLockParams) -> None:
        name = "PaninskiLock"
        validate_selection(name, "size", params.size, params.num_actions)
        n = element_count(params)
        shown = params.num_elements if params.num_elements else f"0 (so n = size = {params.size})"
        require(
            is_int(n, 2) and n % 2 == 0,
            name,
            "num_elements",
            shown,
            "an even integer >= 2, or 0 when size is even (n = size): elements come in Paninski "
            "pairs (2i, 2i+1)",
        )
        validate_channel(name, params)

    def with_instance(self, params: PaninskiLockParams) -> PaninskiLockParams:
        secret, theta = draw_secret(params)
        return params.replace(secret=jnp.int32(secret), theta=jnp.asarray(theta, jnp.float32))

    def horizon(self, params: PaninskiLockParams) -> int:
        return selection_depth(params.size, params.num_actions) + 1

    def num_obs(self, params: PaninskiLockParams) -> int:
        k = self.horizon(params) - 1
        return k + element_count(params) // 2 + 2

    def reset_env(self, key: jax.Array, params: PaninskiLockParams) -> tuple[jax.Array, POMDPState]:
        return self.start(params)

    def step_env(
        self, key: jax.Array, state: POMDPState, action: Any, params: PaninskiLockParams
    ) -> Any:
        a_count, k = params.num_actions, self.horizon(params) - 1
        half = element_count(params) // 2
        a = jnp.asarray(action, jnp.int32)
        t = state.time
        k_pair, k_bit, k_emit = jax.random.split(key, 3)
        prefix = state.node * a_count + a
        pair = jax.random.randint(k_pair, (), 0, half)
        secret = (prefix == params.secret).astype(jnp.float32)
        p_even = 0.5 * (1 + f32(params.epsilon) * params.theta[pair] * secret)
        element = 2 * pair + (jax.random.uniform(k_bit) >= p_even).astype(jnp.int32)
        win = (a % 2) == (state.node % 2)
        w = revealed_w(k_emit, win, params.alpha)
        selecting, choosing = t < k - 1, t == k - 1
        node = jnp.where(selecting, prefix, jnp.where(choosing, element, 1 - win))
        symbol = jnp.where(selecting, t + 1, jnp.where(choosing, k + pair, k + half + 1 - w))
        reward = (t == k) & w
        return self.finish(state, params, node, symbol, reward)

    def tabular(self, params: PaninskiLockParams) -> TabularPOMDP:
        """States: tree nodes (depth 0..k−1), n elements, W, L. Symbols: depth 0..k−1, pair
        0..n/2−1, w, l. Actions from an element: parity a mod 2 == element parity → W, else L."""
        self.validate_params(params)
        a_count, k, n = params.num_actions, self.horizon(params) - 1, element_count(params)
        offsets = tree_offsets(a_count, k)
        first_element = int(offsets[k])
        win, lose = first_element + n, first_element + n + 1
        s_count, o_count = lose + 1, k + n // 2 + 2
        check_tabular_size("PaninskiLock", s_count, "size")
        transition = np.zeros((a_count, s_count, s_count))  # [A, S, S]
        fill_tree_transitions(transition, a_count, k)
        for leaf in range(a_count ** (k - 1)):
            for a in range(a_count):
                candidate = leaf * a_count + a
                transition[a, offsets[k - 1] + leaf, first_element : first_element + n] = (
                    element_probs(params, candidate)
                )
        for e in range(n):
            for a in range(a_count):
                transition[a, first_element + e, win if a % 2 == e % 2 else lose] = 1.0
        transition[:, win, win] = transition[:, lose, lose] = 1.0
        emission = np.zeros((s_count, o_count))  # [S, O]
        fill_depth_emission(emission, a_count, k)
        for e in range(n):
            emission[first_element + e, k + e // 2] = 1.0
        emission[win : lose + 1, k + n // 2 :] = revealing_emission(float(params.alpha))
        obs_reward = np.zeros(o_count)  # [O]
        obs_reward[k + n // 2] = 1.0  # reward 1 on w
        return tabular_model("PaninskiLock", transition, emission, obs_reward, k + 1)

    def optimal_value(self, params: PaninskiLockParams) -> float:
        """V* = 1/2 + αε/2: the secret candidate, then the parity θ favours on the revealed
        pair."""
        return 0.5 + float(params.alpha) * float(params.epsilon) / 2

    def emission_blocks(self, params: PaninskiLockParams) -> list[EmissionBlock]:
        """(W, L) is 1-step revealing with constant α; each element pair (2i, 2i+1) emits only
        i, so it is revealed in 2 steps (pair, then W/L after parity action 0), with the same α."""
        self.validate_params(params)
        k, n = self.horizon(params) - 1, element_count(params)
        first = int(tree_offsets(params.num_actions, k)[k])
        alpha = float(params.alpha)
        blocks = [EmissionBlock("W/L", (first + n, first + n + 1), (), alpha)]
        for i in range(n // 2):
            pair = (first + 2 * i, first + 2 * i + 1)
            blocks.append(EmissionBlock(f"pair {i}", pair, (0,), alpha))
        return blocks
