"""The POMDP families as JAX envs: a compact state, one-hot observations, exact tools attached.

Every family steps a state of three int32 scalars (time, node, symbol) and observes
one-hot(symbol) as float32 [O]: the agent sees only the emitted symbol, never the node or the
instance secret (which live in the state and params). Episodes last exactly H actions and then
terminate (finite horizon; nothing is truncated at the default limit). `tabular`,
`optimal_value` and `emission_blocks` hand the same instance to the exact tools (`exact.py`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from scalegym.core import spaces
from scalegym.core.environment import Environment
from scalegym.core.fields import check_fields, check_kinds
from scalegym.envs.pomdp import families as fam
from scalegym.envs.pomdp.tabular import TabularPOMDP


@struct.dataclass
class POMDPState:
    time: jax.Array  # [] int32 actions taken this episode
    node: (
        jax.Array
    )  # [] int32 hidden position: tree prefix, element, W(0)/L(1), side, good(0)/bad(1)
    symbol: jax.Array  # [] int32 the observation symbol just emitted


def f32(x: Any) -> jax.Array:
    return jnp.asarray(x, jnp.float32)


def revealed_w(key: jax.Array, win: jax.Array, alpha: jax.Array) -> jax.Array:
    """bool []: the emitted symbol is w, with probability (1 ± α)/2 from W / L."""
    return jax.random.uniform(key) < jnp.where(win, 0.5 * (1 + f32(alpha)), 0.5 * (1 - f32(alpha)))


class FinitePOMDP(Environment[POMDPState, Any]):
    """Shared bookkeeping of the families: params made at make(), observation, spaces, H."""

    obs_from_state = True
    deterministic_reset = True  # every episode starts at one node (Tiger draws its side)
    params_class: type = object
    derived_fields: tuple[str, ...] = ("max_steps_in_episode",)  # set by make(), not by users

    def __init__(self) -> None:
        self._default_params: Any = None

    @property
    def default_params(self) -> Any:
        if self._default_params is None:
            self._default_params = self.make_params()
        return self._default_params

    @property
    def num_actions(self) -> int:
        """A of the default instance; an instance's own is `action_space(params).n`."""
        return int(self.default_params.num_actions)

    def make_params(self, **overrides: Any) -> Any:
        """Validated params of one instance: its secret drawn from `instance_seed`."""
        fields = [f.name for f in dataclasses.fields(self.params_class)]
        check_fields(f"{self.name} params", overrides, set(fields) - set(self.derived_fields))
        check_kinds(f"{self.name} params", overrides, self.params_class())
        params = self.params_class(**overrides)
        self.validate_params(params)
        return self.with_instance(params)

    def with_instance(self, params: Any) -> Any:
        """Params with the secret and the horizon filled in (family-specific)."""
        raise NotImplementedError

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

    def emission_blocks(self, params: Any) -> list[fam.EmissionBlock]:
        raise NotImplementedError


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

    params_class = fam.PaninskiLockParams
    derived_fields = ("secret", "theta", "max_steps_in_episode")

    def validate_params(self, params: fam.PaninskiLockParams) -> None:
        fam.paninski_validate(params)

    def with_instance(self, params: fam.PaninskiLockParams) -> fam.PaninskiLockParams:
        k = fam.paninski_validate(params)
        secret, theta = fam.paninski_secret(params)
        return params.replace(
            secret=jnp.int32(secret),
            theta=jnp.asarray(theta, jnp.float32),
            max_steps_in_episode=k + 1,
        )

    def horizon(self, params: Any) -> int:
        return fam.digits(params.size, params.num_actions) + 1

    def num_obs(self, params: fam.PaninskiLockParams) -> int:
        k = self.horizon(params) - 1
        return k + fam.paninski_elements(params) // 2 + 2

    def reset_env(self, key: jax.Array, params: Any) -> tuple[jax.Array, POMDPState]:
        return self.start(params)

    def step_env(self, key: jax.Array, state: POMDPState, action: Any, params: Any) -> Any:
        a_count, k = params.num_actions, self.horizon(params) - 1
        half = fam.paninski_elements(params) // 2
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

    def tabular(self, params: Any) -> TabularPOMDP:
        return fam.paninski_tabular(params)

    def optimal_value(self, params: Any) -> float:
        return fam.paninski_optimal_value(params)

    def emission_blocks(self, params: Any) -> list[fam.EmissionBlock]:
        return fam.paninski_blocks(params)


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
    """

    params_class = fam.RevealingBanditParams
    derived_fields = ("secret", "max_steps_in_episode")
    digits_per_size = 1  # candidates = size^digits_per_size

    def validate_params(self, params: Any) -> None:
        fam.bandit_validate(params, self.name)

    def with_instance(self, params: Any) -> Any:
        k = fam.bandit_validate(params, self.name)
        return params.replace(secret=jnp.int32(fam.bandit_secret(params)), max_steps_in_episode=k)

    def horizon(self, params: Any) -> int:
        return self.digits_per_size * fam.digits(params.size, params.num_actions)

    def num_obs(self, params: Any) -> int:
        return self.horizon(params) + 2

    def reset_env(self, key: jax.Array, params: Any) -> tuple[jax.Array, POMDPState]:
        return self.start(params)

    def is_secret(self, candidate: jax.Array, params: Any) -> jax.Array:
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

    def tabular(self, params: Any) -> TabularPOMDP:
        return fam.bandit_tabular(params)

    def candidates(self, params: Any) -> fam.Candidates:
        """The instance for `exact.candidate_policy_value` (no tables: any size)."""
        return fam.bandit_candidates(params)

    def optimal_value(self, params: Any) -> float:
        return fam.bandit_optimal_value(params)

    def emission_blocks(self, params: Any) -> list[fam.EmissionBlock]:
        return fam.win_loss_block(params, self.horizon(params))


class PerRoomSecret(RevealingBandit):
    """S rooms, each with its own secret key among S; only the live room's key pays: the
    S-exponent-2 control.

    | item        | value                                                                    |
    |-------------|--------------------------------------------------------------------------|
    | choice      | k actions pick a room (S = A^k), k more pick a key in it: S² candidates  |
    |             | (room, key); tree nodes emit only their depth                            |
    | outcome     | W with (1 + ε)/2 for (live room, its key), 1/2 for every other pair      |
    | emission    | W/L emit w with (1 ± α)/2; reward 1 on w                                 |
    | S, A, O, H  | (A^(2k) − 1)/(A − 1) + 2 states, A actions, O = 2k + 2, H = 2k            |
    | revealing   | m = 1 on W/L with constant α                                             |
    | V*          | 1/2 + αε/2                                                               |
    | S-exponent  | 2: no room tells which room is live, and a room's key says nothing of    |
    |             | another's: N ≈ S²/g²                                                     |
    """

    params_class = fam.PerRoomSecretParams
    derived_fields = ("live_room", "keys", "max_steps_in_episode")
    digits_per_size = 2

    def with_instance(self, params: Any) -> Any:
        k = fam.bandit_validate(params, self.name)
        live, keys = fam.per_room_secret(params)
        return params.replace(
            live_room=jnp.int32(live),
            keys=jnp.asarray(keys, jnp.int32),
            max_steps_in_episode=2 * k,
        )

    def is_secret(self, candidate: jax.Array, params: Any) -> jax.Array:
        room, key = candidate // params.size, candidate % params.size
        return (room == params.live_room) & (key == params.keys[room])

    def tabular(self, params: Any) -> TabularPOMDP:
        return fam.per_room_tabular(params)

    def candidates(self, params: Any) -> fam.Candidates:
        return fam.per_room_candidates(params)


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
    params_class = fam.TigerParams
    derived_fields = ("max_steps_in_episode",)

    @property
    def num_actions(self) -> int:
        return 3

    def validate_params(self, params: Any) -> None:
        fam.tiger_validate(params)

    def with_instance(self, params: Any) -> Any:
        return params.replace(max_steps_in_episode=params.horizon)

    def horizon(self, params: Any) -> int:
        return int(params.horizon)

    def num_obs(self, params: Any) -> int:
        return 2

    def reward_span(self, params: Any) -> jax.Array:
        return f32(params.treasure) + f32(params.tiger_penalty)  # +10 against −100

    def action_space(self, params: Any = None) -> spaces.Discrete:
        return spaces.Discrete(3)

    def reset_env(self, key: jax.Array, params: Any) -> tuple[jax.Array, POMDPState]:
        k_side, k_obs = jax.random.split(key)
        side = jax.random.bernoulli(k_side).astype(jnp.int32)
        symbol = jax.random.bernoulli(k_obs).astype(jnp.int32)
        state = POMDPState(time=jnp.int32(0), node=side, symbol=symbol)
        return self.get_obs(state, params), state

    def step_env(self, key: jax.Array, state: POMDPState, action: Any, params: Any) -> Any:
        a = jnp.asarray(action, jnp.int32)
        k_hear, k_side, k_noise = jax.random.split(key, 3)
        side = state.node
        listen = a == fam.LISTEN
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

    def tabular(self, params: Any) -> TabularPOMDP:
        return fam.tiger_tabular(params)

    def optimal_value(self, params: Any) -> float:
        return fam.tiger_optimal_value(params)

    def emission_blocks(self, params: Any) -> list[fam.EmissionBlock]:
        return fam.tiger_blocks(params)


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

    params_class = fam.NoisyCombinationLockParams
    derived_fields = ("combination", "max_steps_in_episode")

    def validate_params(self, params: Any) -> None:
        fam.lock_validate(params)

    def with_instance(self, params: Any) -> Any:
        return params.replace(
            combination=jnp.asarray(fam.lock_secret(params), jnp.int32),
            max_steps_in_episode=params.horizon,
        )

    def horizon(self, params: Any) -> int:
        return int(params.horizon)

    def num_obs(self, params: Any) -> int:
        return 2 * (params.horizon + 1)

    def looks_bad(self, key: jax.Array, bad: jax.Array, params: Any) -> jax.Array:
        right = jax.random.uniform(key) < 0.5 * (1 + f32(params.alpha))
        return jnp.where(right, bad, 1 - bad).astype(jnp.int32)

    def reset_env(self, key: jax.Array, params: Any) -> tuple[jax.Array, POMDPState]:
        zero = jnp.int32(0)
        state = POMDPState(time=zero, node=zero, symbol=self.looks_bad(key, zero, params))
        return self.get_obs(state, params), state

    def step_env(self, key: jax.Array, state: POMDPState, action: Any, params: Any) -> Any:
        a = jnp.asarray(action, jnp.int32)
        t = state.time
        digit = params.combination[jnp.minimum(t, params.horizon - 1)]
        right = (state.node == 0) & (a == digit)
        node = jnp.where(right, 0, 1)
        symbol = 2 * (t + 1) + self.looks_bad(key, node, params)
        reward = right & (t == params.horizon - 1)
        return self.finish(state, params, node, symbol, reward)

    def tabular(self, params: Any) -> TabularPOMDP:
        return fam.lock_tabular(params)

    def optimal_value(self, params: Any) -> float:
        return 1.0

    def emission_blocks(self, params: Any) -> list[fam.EmissionBlock]:
        return fam.lock_blocks(params)


def instance_batch(env: FinitePOMDP, seeds: list[int] | np.ndarray, **overrides: Any) -> Any:
    """Params of many instances stacked on a leading axis [N] (vmap over them with in_axes=0)."""
    made = [env.make_params(**{**overrides, "instance_seed": int(s)}) for s in seeds]
    return jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *made)
