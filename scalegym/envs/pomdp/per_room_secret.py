"""PerRoomSecret: S rooms, each with its own secret key; only the live room's pays (S-exp. 2)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from scalegym.envs.pomdp.revealing_bandit import RevealingBandit


@struct.dataclass
class PerRoomSecretParams:
    """S rooms, each with its own secret key among S; only the live room's key pays."""

    live_room: jax.Array | None = None  # [] int32 the room whose key pays
    keys: jax.Array | None = None  # [S] int32 each room's secret key
    alpha: float = 0.5
    epsilon: float = 0.5
    max_steps_in_episode: int = 0  # set to H = 2k at make()
    size: int = struct.field(pytree_node=False, default=16)  # S rooms = S keys per room (= A^k)
    num_actions: int = struct.field(pytree_node=False, default=2)
    instance_seed: int = 0  # a leaf, so instances of different seeds stack into one batch


def draw_rooms(params: PerRoomSecretParams) -> tuple[int, np.ndarray]:
    """(live room, keys [S]) drawn from the instance seed."""
    rng = np.random.default_rng([params.instance_seed, 3])
    return int(rng.integers(params.size)), rng.integers(params.size, size=params.size)


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

    params_class = PerRoomSecretParams
    derived_fields = ("live_room", "keys", "max_steps_in_episode")
    digits_per_size = 2

    def with_instance(self, params: Any) -> Any:
        live, keys = draw_rooms(params)
        return params.replace(live_room=jnp.int32(live), keys=jnp.asarray(keys, jnp.int32))

    def is_secret(self, candidate: jax.Array, params: Any) -> jax.Array:
        room, key = candidate // params.size, candidate % params.size
        return (room == params.live_room) & (key == params.keys[room])

    def secret_candidate(self, params: Any) -> int:
        """(live room, its key) as candidate room · S + key, of the S² spelled by 2k actions."""
        live = int(params.live_room)
        return live * params.size + int(np.asarray(params.keys)[live])
