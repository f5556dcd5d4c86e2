"""PerRoomSecret: K rooms, drawn and shown each episode, each with its own secret key (K-exp. 2)."""

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
    validate_channel,
    validate_selection,
)
from scalegym.envs.pomdp.finite_pomdp import FinitePOMDP, POMDPState, f32, revealed_w
from scalegym.envs.pomdp.tabular import EmissionBlock, TabularPOMDP


@struct.dataclass
class PerRoomSecretParams:
    """K rooms, each with its own secret key among C = K; the room is drawn at each reset."""

    keys: jax.Array | None = None  # [K] int32 each room's secret key
    alpha: float = 0.5
    epsilon: float = 0.5  # P(W) = (1 + ε)/2 at the room's key, 1/2 at any other
    max_steps_in_episode: int = 0  # set to H = k at make()
    size: int = struct.field(pytree_node=False, default=16)  # K rooms = C keys a room (= A^k)
    num_actions: int = struct.field(pytree_node=False, default=2)
    instance_seed: int = 0  # a leaf, so instances of different seeds stack into one batch


def draw_keys(params: PerRoomSecretParams) -> np.ndarray:
    """[K] each room's secret key, independent and uniform among C = K, from the instance seed."""
    return np.random.default_rng([params.instance_seed, 4]).integers(params.size, size=params.size)


class PerRoomSecret(FinitePOMDP):
    """K rooms, drawn uniformly at each episode's start and shown; each room hides its own key
    among C: the K-exponent-2 control (this suite's construction, not a bound from the paper).

    | item        | value                                                                    |
    |-------------|--------------------------------------------------------------------------|
    | room        | r ~ U{0..K−1} at reset, emitted as symbol r (the episode's first obs)    |
    | choice      | k actions spell a key of C = A^k = K in r's tree; depth-j nodes (j ≥ 1)  |
    |             | emit only their depth (symbol K + j − 1), whatever the room              |
    | outcome     | W with (1 + ε)/2 when the key is r's secret, 1/2 for any other; else L   |
    | emission    | W/L emit w with (1 ± α)/2 (symbols K + k − 1, K + k); reward 1 on w      |
    | S, A, O, H  | S = K·(A^k − 1)/(A − 1) + 2 latent states (K trees, W, L), A actions,    |
    |             | O = K + k + 1, H = k                                                     |
    | revealing   | m = 1 on W/L with constant α; the rooms' roots m = 1 with constant 1     |
    | V*          | 1/2 + αε/2 (every room's secret, averaged over the rooms)                |
    | K-exponent  | 2: a room's key says nothing of another's and episodes come to each room |
    |             | 1/K of the time, so ε-optimality needs every room's key: N ≈ K·C/g² with |
    |             | C = K, g = αε/2                                                          |

    An instance is `keys` [K]; the room is episode randomness, held in the state
    (node = room·K + action prefix while spelling, W = 0 / L = 1 after).
    """

    deterministic_reset = False  # the room is drawn at reset
    params_class = PerRoomSecretParams
    derived_fields = ("keys", "max_steps_in_episode")

    def validate_params(self, params: PerRoomSecretParams) -> None:
        validate_selection(self.name, "size", params.size, params.num_actions)
        validate_channel(self.name, params)

    def with_instance(self, params: PerRoomSecretParams) -> PerRoomSecretParams:
        return params.replace(keys=jnp.asarray(draw_keys(params), jnp.int32))

    def horizon(self, params: PerRoomSecretParams) -> int:
        return selection_depth(params.size, params.num_actions)

    def num_obs(self, params: PerRoomSecretParams) -> int:
        return params.size + self.horizon(params) + 1

    def reset_env(
        self, key: jax.Array, params: PerRoomSecretParams
    ) -> tuple[jax.Array, POMDPState]:
        room = jax.random.randint(key, (), 0, params.size, jnp.int32)
        state = POMDPState(time=jnp.int32(0), node=room * params.size, symbol=room)
        return self.get_obs(state, params), state

    def step_env(
        self, key: jax.Array, state: POMDPState, action: Any, params: PerRoomSecretParams
    ) -> Any:
        rooms, k = params.size, self.horizon(params)
        a = jnp.asarray(action, jnp.int32)
        t = state.time
        k_win, k_emit = jax.random.split(key)
        room, prefix = state.node // rooms, state.node % rooms
        prefix = prefix * params.num_actions + a
        secret = (prefix == params.keys[room]).astype(jnp.float32)
        win = jax.random.uniform(k_win) < 0.5 * (1 + f32(params.epsilon) * secret)
        w = revealed_w(k_emit, win, params.alpha)
        choosing = t == k - 1
        node = jnp.where(choosing, 1 - win, room * rooms + prefix)
        symbol = jnp.where(choosing, rooms + k - w.astype(jnp.int32), rooms + t)
        return self.finish(state, params, node, symbol, choosing & w)

    def candidates(self, params: PerRoomSecretParams) -> Candidates:
        """The instance for `exact.candidate_policy_value` (no tables: any size)."""
        self.validate_params(params)
        rooms = params.size
        win_probs = np.full((rooms, rooms), 0.5)  # [K, C]
        win_probs[np.arange(rooms), np.asarray(params.keys)] = (1 + float(params.epsilon)) / 2
        return Candidates(
            self.name,
            params.num_actions,
            self.horizon(params),
            win_probs.reshape(-1),
            float(params.alpha),
            rooms=rooms,
        )

    def tabular(self, params: PerRoomSecretParams) -> TabularPOMDP:
        return candidates_tabular(self.candidates(params), "size")

    def optimal_value(self, params: PerRoomSecretParams) -> float:
        """V* = 1/2 + αε/2: in every room its own key wins with (1 + ε)/2, seen through the α
        channel; the room is observed, so the average over rooms loses nothing."""
        return 0.5 + float(params.alpha) * float(params.epsilon) / 2

    def emission_blocks(self, params: PerRoomSecretParams) -> list[EmissionBlock]:
        """W/L: 1-step revealing with the stated α; the K roots emit their rooms exactly."""
        rooms = params.size
        per_room = (rooms - 1) // (params.num_actions - 1)  # (A^k − 1)/(A − 1) nodes a tree
        win = rooms * per_room
        roots = tuple(r * per_room for r in range(rooms))
        return [
            EmissionBlock("W/L", (win, win + 1), (), float(params.alpha)),
            EmissionBlock("rooms", roots, (), 1.0),
        ]
