"""The selection stage the candidate families share: k actions spell one of A^k candidates.

k actions spell a candidate index in base A (a depth-(k−1) action tree whose A^(k−1) leaves take
one more action: L·A = A^k candidates), and every tree node emits only its depth, so the agent
learns nothing from where it is that it did not already know from its own actions. With R rooms
(PerRoomSecret) each episode starts at the root of a room drawn uniformly, which emits the room;
the deeper nodes of every room emit only their depth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from scalegym.core.fields import is_int, require
from scalegym.envs.pomdp.finite_pomdp import check_instance_seed, check_unit_interval
from scalegym.envs.pomdp.tabular import (
    TabularPOMDP,
    check_tabular_size,
    revealing_emission,
    tabular_model,
)


def selection_depth(size: int, num_actions: int) -> int:
    """k with num_actions^k == size, for validated params (host ints: shapes depend on it)."""
    return round(math.log(size, num_actions))


def validate_selection(family: str, field: str, size: int, num_actions: int) -> int:
    """k with num_actions^k == size (k >= 1): the actions that spell one of `size` candidates."""
    require(is_int(num_actions, 2), family, "num_actions", num_actions, "integers >= 2")
    k = selection_depth(size, num_actions) if is_int(size, 2) else 0
    require(
        k >= 1 and num_actions**k == size,
        family,
        field,
        size,
        f"a power of num_actions={num_actions} (A^k, k >= 1), e.g. {num_actions**3}",
    )
    return k


def validate_channel(family: str, params: Any) -> None:
    """The fields the candidate families share: alpha, epsilon in (0, 1], instance_seed >= 0."""
    check_unit_interval(family, "alpha", params.alpha)
    check_unit_interval(family, "epsilon", params.epsilon)
    check_instance_seed(family, params.instance_seed)


def tree_offsets(num_actions: int, k: int) -> np.ndarray:
    """[k+1] index of the first node of each tree depth 0..k (depth j has A^j nodes)."""
    return np.concatenate([[0], np.cumsum(num_actions ** np.arange(k))]).astype(np.int64)


def fill_tree_transitions(transition: np.ndarray, num_actions: int, k: int) -> None:
    """Fill the moves inside the selection tree of transition [A, S, S]: depth j node p, action
    a → depth j+1 node p·A+a for j < k−1 (the last action, from depth k−1, is the family's own)."""
    offsets = tree_offsets(num_actions, k)
    for j in range(k - 1):
        for p in range(num_actions**j):
            for a in range(num_actions):
                transition[a, offsets[j] + p, offsets[j + 1] + p * num_actions + a] = 1.0


def fill_depth_emission(emission: np.ndarray, num_actions: int, k: int) -> None:
    """Fill emission [S, O] of the tree: every node of depth j emits symbol j."""
    offsets = tree_offsets(num_actions, k)
    for j in range(k):
        emission[offsets[j] : offsets[j + 1], j] = 1.0


@dataclass(frozen=True)
class Candidates:
    """A candidate family without its tables: an episode starts in one of R rooms, drawn
    uniformly, whose root emits the room (symbol r); k actions then pick one of A^k candidates
    (the first k − 1 through the room's selection tree, whose depth-j nodes emit symbol R + j − 1),
    candidate c of room r leads to W with win_probs[r·A^k + c], else L, and W/L emit w (symbol
    R + k − 1) or l (R + k), the right one at (1 + α)/2; reward 1 on w. Candidate c = leaf · A + a,
    leaf the base-A digits of the first k − 1 actions. O = R + k + 1; with R = 1 (the default) the
    root emits 0 and depth j emits j."""

    name: str
    num_actions: int
    depth: int  # k = H
    win_probs: np.ndarray  # [R · A^k] room-major
    alpha: float
    rooms: int = 1  # R

    @property
    def num_obs(self) -> int:
        """O = R + k + 1: the rooms, the depths 1..k−1, w and l."""
        return self.rooms + self.depth + 1


def candidates_tabular(candidates: Candidates, field: str) -> TabularPOMDP:
    """The same instance as dense tables (for the generic exact tools; small sizes only).

    States: room r's tree (depths 0..k−1) at r·T + tree_offsets, T = (A^k − 1)/(A − 1) nodes a
    room, then W and L. Symbols as in `Candidates`."""
    a_count, k, rooms = candidates.num_actions, candidates.depth, candidates.rooms
    offsets = tree_offsets(a_count, k)
    per_room = int(offsets[k])  # T
    win = rooms * per_room
    lose, s_count, o_count = win + 1, win + 2, candidates.num_obs
    check_tabular_size(candidates.name, s_count, field)
    win_probs = np.asarray(candidates.win_probs, np.float64).reshape(rooms, a_count**k)
    transition = np.zeros((a_count, s_count, s_count))  # [A, S, S]
    emission = np.zeros((s_count, o_count))  # [S, O]
    for room in range(rooms):
        base = room * per_room
        fill_tree_transitions(
            transition[:, base : base + per_room, base : base + per_room], a_count, k
        )
        emission[base, room] = 1.0
        for j in range(1, k):
            emission[base + offsets[j] : base + offsets[j + 1], rooms + j - 1] = 1.0
        for leaf in range(a_count ** (k - 1)):
            for a in range(a_count):
                q = float(win_probs[room, leaf * a_count + a])
                transition[a, base + offsets[k - 1] + leaf, win] = q
                transition[a, base + offsets[k - 1] + leaf, lose] = 1.0 - q
    transition[:, win, win] = transition[:, lose, lose] = 1.0
    emission[win:, rooms + k - 1 :] = revealing_emission(candidates.alpha)
    obs_reward = np.zeros(o_count)  # [O]
    obs_reward[rooms + k - 1] = 1.0
    initial = np.zeros(s_count)  # [S] each room's root with probability 1/R
    initial[np.arange(rooms) * per_room] = 1.0 / rooms
    return tabular_model(candidates.name, transition, emission, obs_reward, k, initial=initial)
