"""POMDP family instances: params (the secret included), validation, tabular models, closed forms.

Each family is a finite-horizon tabular POMDP; `env.py` steps it in JAX and this module exports
the same instance as a `TabularPOMDP` for the exact tools. An instance is its params: the secret
(rewarded candidate, perturbation signs, combination) is drawn from `instance_seed` at `make()`
and held in pytree leaves, so one batch may hold many instances; reset draws only episode
randomness.

The three revealing families share a selection stage: k actions spell a candidate index in base A
(a depth-(k−1) action tree whose A^(k−1) leaves take one more action: L·A = A^k candidates), and
every tree node emits only its depth, so the agent learns nothing from where it is that it did not
already know from its own actions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import numpy as np
from flax import struct

from scalegym.envs.pomdp.tabular import TabularPOMDP

MAX_TABULAR_STATES = 4_096  # dense [A, S, S] float64 tables: 2 x 4,096² x 8 B = 268 MB at A = 2


@dataclass(frozen=True)
class EmissionBlock:
    """States whose m-step emissions the revealing constant is computed on (m = len(actions)+1)."""

    label: str
    states: tuple[int, ...]
    actions: tuple[int, ...]  # the actions between the m emissions
    alpha: float  # the family's stated constant for this block


class ParamError(ValueError):
    """A parameter combination that makes a family ill-defined."""


def need(ok: bool, family: str, field: str, value: object, allowed: str) -> None:
    """Raise ParamError naming the family, the field, its value and what is allowed."""
    if not ok:
        raise ParamError(f"{family}: param {field}={value!r} is invalid; allowed: {allowed}")


def digits(size: int, num_actions: int) -> int:
    """k with num_actions^k == size, for validated params (host ints: shapes depend on it)."""
    return round(math.log(size, num_actions))


def selection_digits(family: str, field: str, size: int, num_actions: int) -> int:
    """k with num_actions^k == size (k >= 1): the actions that spell one of `size` candidates."""
    need(
        isinstance(num_actions, int) and num_actions >= 2,
        family,
        "num_actions",
        num_actions,
        "integers >= 2",
    )
    k = round(math.log(size, num_actions)) if isinstance(size, int) and size >= 2 else 0
    need(
        k >= 1 and num_actions**k == size,
        family,
        field,
        size,
        f"a power of num_actions={num_actions} (A^k, k >= 1), e.g. {num_actions**3}",
    )
    return k


def check_unit_interval(family: str, field: str, value: float) -> None:
    need(
        isinstance(value, int | float) and 0.0 < float(value) <= 1.0,
        family,
        field,
        value,
        "numbers in (0, 1]",
    )


def check_instance_seed(family: str, seed: int) -> None:
    need(isinstance(seed, int) and seed >= 0, family, "instance_seed", seed, "integers >= 0")


def tree_offsets(num_actions: int, k: int) -> np.ndarray:
    """[k+1] index of the first node of each tree depth 0..k (depth j has A^j nodes)."""
    return np.concatenate([[0], np.cumsum(num_actions ** np.arange(k))]).astype(np.int64)


def tree_transitions(transition: np.ndarray, num_actions: int, k: int) -> None:
    """Fill the moves inside the selection tree: depth j node p, action a → depth j+1 node p·A+a
    for j < k−1 (the last action, from depth k−1, is the family's own)."""
    offsets = tree_offsets(num_actions, k)
    for j in range(k - 1):
        for p in range(num_actions**j):
            for a in range(num_actions):
                transition[a, offsets[j] + p, offsets[j + 1] + p * num_actions + a] = 1.0


def revealing_emission(alpha: float) -> np.ndarray:
    """[2, 2] emission of (W, L) over (w, l): the right symbol with probability (1 + α)/2."""
    hi, lo = (1 + alpha) / 2, (1 - alpha) / 2
    return np.array([[hi, lo], [lo, hi]])


# --------------------------------------------------------------------------- PaninskiLock


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


def paninski_elements(p: PaninskiLockParams) -> int:
    return p.num_elements or p.size


def paninski_validate(p: PaninskiLockParams) -> int:
    """Check the params; returns k, the selection actions."""
    name = "PaninskiLock"
    k = selection_digits(name, "size", p.size, p.num_actions)
    n = paninski_elements(p)
    shown = p.num_elements if p.num_elements else f"0 (so n = size = {p.size})"
    need(
        isinstance(n, int) and n >= 2 and n % 2 == 0,
        name,
        "num_elements",
        shown,
        "an even integer >= 2, or 0 when size is even (n = size): elements come in Paninski "
        "pairs (2i, 2i+1)",
    )
    check_unit_interval(name, "alpha", p.alpha)
    check_unit_interval(name, "epsilon", p.epsilon)
    check_instance_seed(name, p.instance_seed)
    return k


def paninski_secret(p: PaninskiLockParams) -> tuple[int, np.ndarray]:
    """(secret candidate, θ [n/2] ±1) drawn from the instance seed."""
    rng = np.random.default_rng([p.instance_seed, 1])
    secret = int(rng.integers(p.size))
    theta = rng.choice(np.array([-1.0, 1.0]), size=paninski_elements(p) // 2)
    return secret, theta


def paninski_element_probs(p: PaninskiLockParams, candidate: int) -> np.ndarray:
    """[n] distribution of the element a candidate leads to: uniform, or Paninski-perturbed."""
    n = paninski_elements(p)
    probs = np.full(n, 1.0 / n)
    if candidate == int(p.secret):
        signs = np.repeat(np.asarray(p.theta, np.float64), 2) * np.tile([1.0, -1.0], n // 2)
        probs = (1.0 + float(p.epsilon) * signs) / n
    return probs


def paninski_tabular(p: PaninskiLockParams) -> TabularPOMDP:
    """States: tree nodes (depth 0..k−1), n elements, W, L. Symbols: depth 0..k−1, pair
    0..n/2−1, w, l. Actions from an element: parity a mod 2 == element parity → W, else L."""
    a_count, k, n = p.num_actions, paninski_validate(p), paninski_elements(p)
    offsets = tree_offsets(a_count, k)
    first_element = int(offsets[k])
    win, lose = first_element + n, first_element + n + 1
    s_count, o_count = lose + 1, k + n // 2 + 2
    _check_tabular_size("PaninskiLock", s_count, "size")
    transition = np.zeros((a_count, s_count, s_count))
    tree_transitions(transition, a_count, k)
    for leaf in range(a_count ** (k - 1)):
        for a in range(a_count):
            candidate = leaf * a_count + a
            transition[a, offsets[k - 1] + leaf, first_element : first_element + n] = (
                paninski_element_probs(p, candidate)
            )
    for e in range(n):
        for a in range(a_count):
            transition[a, first_element + e, win if a % 2 == e % 2 else lose] = 1.0
    transition[:, win, win] = transition[:, lose, lose] = 1.0
    emission = np.zeros((s_count, o_count))
    for j in range(k):
        emission[offsets[j] : offsets[j + 1], j] = 1.0
    for e in range(n):
        emission[first_element + e, k + e // 2] = 1.0
    emission[win : lose + 1, k + n // 2 :] = revealing_emission(float(p.alpha))
    obs_reward = np.zeros(o_count)
    obs_reward[k + n // 2] = 1.0  # reward 1 on w
    return _model("PaninskiLock", transition, emission, obs_reward, k + 1)


def paninski_optimal_value(p: PaninskiLockParams) -> float:
    """V* = 1/2 + αε/2: the secret candidate, then the parity θ favours on the revealed pair."""
    return 0.5 + float(p.alpha) * float(p.epsilon) / 2


def paninski_blocks(p: PaninskiLockParams) -> list[EmissionBlock]:
    """(W, L) is 1-step revealing with constant α; each element pair (2i, 2i+1) emits only i, so
    it is revealed in 2 steps (pair, then W/L after parity action 0), with the same α."""
    k, n = paninski_validate(p), paninski_elements(p)
    first = int(tree_offsets(p.num_actions, k)[k])
    alpha = float(p.alpha)
    blocks = [EmissionBlock("W/L", (first + n, first + n + 1), (), alpha)]
    for i in range(n // 2):
        blocks.append(EmissionBlock(f"pair {i}", (first + 2 * i, first + 2 * i + 1), (0,), alpha))
    return blocks


# --------------------------------------------------------------------------- RevealingBandit


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


def bandit_validate(p: RevealingBanditParams | PerRoomSecretParams, family: str) -> int:
    k = selection_digits(family, "size", p.size, p.num_actions)
    check_unit_interval(family, "alpha", p.alpha)
    check_unit_interval(family, "epsilon", p.epsilon)
    check_instance_seed(family, p.instance_seed)
    return k


def bandit_secret(p: RevealingBanditParams) -> int:
    return int(np.random.default_rng([p.instance_seed, 2]).integers(p.size))


@dataclass(frozen=True)
class Candidates:
    """A candidate family without its tables: k actions pick one of A^k candidates (the first
    k − 1 through the selection tree, whose nodes emit only their depth), candidate c leads to W
    with win_probs[c], else L, and W/L emit the right symbol at (1 + α)/2; reward 1 on w.
    Candidate c = leaf · A + a, leaf the base-A digits of the first k − 1 actions. O = k + 2."""

    name: str
    num_actions: int
    depth: int  # k = H
    win_probs: np.ndarray  # [A^k]
    alpha: float


def candidate_tabular(c: Candidates, field: str) -> TabularPOMDP:
    """The same instance as dense tables (for the generic exact tools; small sizes only)."""
    a_count, k = c.num_actions, c.depth
    offsets = tree_offsets(a_count, k)
    win = int(offsets[k])
    lose, s_count, o_count = win + 1, win + 2, k + 2
    _check_tabular_size(c.name, s_count, field)
    transition = np.zeros((a_count, s_count, s_count))
    tree_transitions(transition, a_count, k)
    for leaf in range(a_count ** (k - 1)):
        for a in range(a_count):
            q = float(c.win_probs[leaf * a_count + a])
            transition[a, offsets[k - 1] + leaf, win] = q
            transition[a, offsets[k - 1] + leaf, lose] = 1.0 - q
    transition[:, win, win] = transition[:, lose, lose] = 1.0
    emission = np.zeros((s_count, o_count))
    for j in range(k):
        emission[offsets[j] : offsets[j + 1], j] = 1.0
    emission[win:, k:] = revealing_emission(c.alpha)
    obs_reward = np.zeros(o_count)
    obs_reward[k] = 1.0
    return _model(c.name, transition, emission, obs_reward, k)


def bandit_candidates(p: RevealingBanditParams) -> Candidates:
    k = bandit_validate(p, "RevealingBandit")
    win_probs = np.full(p.size, 0.5)
    win_probs[int(p.secret)] = (1 + float(p.epsilon)) / 2
    return Candidates("RevealingBandit", p.num_actions, k, win_probs, float(p.alpha))


def bandit_tabular(p: RevealingBanditParams) -> TabularPOMDP:
    return candidate_tabular(bandit_candidates(p), "size")


def bandit_optimal_value(p: RevealingBanditParams | PerRoomSecretParams) -> float:
    """V* = 1/2 + αε/2: the secret candidate wins with (1 + ε)/2, seen through the α channel."""
    return 0.5 + float(p.alpha) * float(p.epsilon) / 2


def win_loss_block(p: RevealingBanditParams | PerRoomSecretParams, k: int) -> list[EmissionBlock]:
    win = int(tree_offsets(p.num_actions, k)[k])
    return [EmissionBlock("W/L", (win, win + 1), (), float(p.alpha))]


# --------------------------------------------------------------------------- PerRoomSecret


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


def per_room_secret(p: PerRoomSecretParams) -> tuple[int, np.ndarray]:
    rng = np.random.default_rng([p.instance_seed, 3])
    return int(rng.integers(p.size)), rng.integers(p.size, size=p.size)


def per_room_candidates(p: PerRoomSecretParams) -> Candidates:
    """S² candidates (room, key) = room · S + key, spelled by 2k actions."""
    k = bandit_validate(p, "PerRoomSecret")
    win_probs = np.full(p.size * p.size, 0.5)
    live = int(p.live_room)
    win_probs[live * p.size + int(np.asarray(p.keys)[live])] = (1 + float(p.epsilon)) / 2
    return Candidates("PerRoomSecret", p.num_actions, 2 * k, win_probs, float(p.alpha))


def per_room_tabular(p: PerRoomSecretParams) -> TabularPOMDP:
    return candidate_tabular(per_room_candidates(p), "size")


# --------------------------------------------------------------------------- Tiger


@struct.dataclass
class TigerParams:
    """Kaelbling, Littman & Cassandra (1998)'s Tiger, undiscounted over a finite horizon."""

    listen_accuracy: float = 0.85
    listen_cost: float = 1.0
    tiger_penalty: float = 100.0
    treasure: float = 10.0
    max_steps_in_episode: int = 0  # set to the horizon at make()
    horizon: int = struct.field(pytree_node=False, default=4)  # H


LISTEN, OPEN_LEFT, OPEN_RIGHT = 0, 1, 2


def tiger_validate(p: TigerParams) -> None:
    need(
        isinstance(p.listen_accuracy, int | float) and 0.5 <= p.listen_accuracy <= 1.0,
        "Tiger",
        "listen_accuracy",
        p.listen_accuracy,
        "numbers in [0.5, 1]",
    )
    need(
        isinstance(p.horizon, int) and 1 <= p.horizon <= 64,
        "Tiger",
        "horizon",
        p.horizon,
        "integers 1..64",
    )
    for field in ("listen_cost", "tiger_penalty", "treasure"):
        need(float(getattr(p, field)) >= 0, "Tiger", field, getattr(p, field), "numbers >= 0")


def tiger_tabular(p: TigerParams) -> TabularPOMDP:
    """States: tiger left/right × arrived by listening / by a reset (which emits noise)."""
    tiger_validate(p)
    acc = float(p.listen_accuracy)
    # 0 left-listened, 1 right-listened, 2 left-reset, 3 right-reset; symbols: hear left/right.
    transition = np.zeros((3, 4, 4))
    for s in range(4):
        side = s % 2
        transition[LISTEN, s, side] = 1.0
        transition[OPEN_LEFT, s, 2:] = transition[OPEN_RIGHT, s, 2:] = 0.5
    emission = np.array([[acc, 1 - acc], [1 - acc, acc], [0.5, 0.5], [0.5, 0.5]])
    reward = np.zeros((4, 3))
    reward[:, LISTEN] = -float(p.listen_cost)
    for s in range(4):
        side = s % 2  # 0: tiger behind the left door
        reward[s, OPEN_LEFT] = -float(p.tiger_penalty) if side == 0 else float(p.treasure)
        reward[s, OPEN_RIGHT] = -float(p.tiger_penalty) if side == 1 else float(p.treasure)
    initial = np.array([0.0, 0.0, 0.5, 0.5])
    return _model(
        "Tiger", transition, emission, np.zeros(2), int(p.horizon), reward=reward, initial=initial
    )


def tiger_optimal_value(p: TigerParams) -> float:
    """V* by Tiger's own sufficient statistic: the belief after a reset depends only on
    d = (#hear-left − #hear-right), so V_t(d) = max(listen, open left, open right) over d."""
    tiger_validate(p)
    acc, h = float(p.listen_accuracy), int(p.horizon)

    def p_left(d: int) -> float:
        odds = (acc / (1 - acc)) ** d if acc < 1 else (math.inf if d > 0 else 0.0 if d < 0 else 1)
        return 0.5 if d == 0 else (1.0 if odds == math.inf else odds / (1 + odds))

    values: dict[int, float] = dict.fromkeys(range(-h, h + 1), 0.0)  # V_H(d) = 0
    for _ in range(h):
        after_reset = values[0]
        new: dict[int, float] = {}
        for d in values:
            b = p_left(d)
            hear_left = b * acc + (1 - b) * (1 - acc)
            listen = (
                -float(p.listen_cost)
                + hear_left * values.get(d + 1, 0.0)
                + (1 - hear_left) * values.get(d - 1, 0.0)
            )
            open_left = b * -float(p.tiger_penalty) + (1 - b) * float(p.treasure)
            open_right = (1 - b) * -float(p.tiger_penalty) + b * float(p.treasure)
            new[d] = max(listen, open_left + after_reset, open_right + after_reset)
        values = new
    return values[0]


def tiger_blocks(p: TigerParams) -> list[EmissionBlock]:
    """Listening reveals the side with σ_min = α = 2·accuracy − 1. A reset's first symbol is a
    fair coin, so the reset copies are revealed only with the listen after it (m = 2): the
    2-step matrix is ½·[[acc, 1−acc], [1−acc, acc]] ⊗ [1, 1], whose σ_min is α/√2."""
    alpha = 2 * float(p.listen_accuracy) - 1
    return [
        EmissionBlock("listened", (0, 1), (), alpha),
        EmissionBlock("reset, then listen", (2, 3), (LISTEN,), alpha / math.sqrt(2)),
    ]


# --------------------------------------------------------------------------- NoisyCombinationLock


@struct.dataclass
class NoisyCombinationLockParams:
    """H secret digits; a wrong one drops to the bad chain for good; good/bad emitted with α."""

    combination: jax.Array | None = None  # [H] int32 the secret digits
    alpha: float = 0.6
    max_steps_in_episode: int = 0  # set to the horizon at make()
    horizon: int = struct.field(pytree_node=False, default=6)  # H digits
    num_actions: int = struct.field(pytree_node=False, default=4)
    instance_seed: int = 0  # a leaf, so instances of different seeds stack into one batch


def lock_validate(p: NoisyCombinationLockParams) -> None:
    name = "NoisyCombinationLock"
    need(
        isinstance(p.horizon, int) and 1 <= p.horizon <= 64,
        name,
        "horizon",
        p.horizon,
        "integers 1..64",
    )
    need(
        isinstance(p.num_actions, int) and p.num_actions >= 2,
        name,
        "num_actions",
        p.num_actions,
        "integers >= 2",
    )
    check_unit_interval(name, "alpha", p.alpha)
    check_instance_seed(name, p.instance_seed)


def lock_secret(p: NoisyCombinationLockParams) -> np.ndarray:
    return np.random.default_rng([p.instance_seed, 5]).integers(p.num_actions, size=p.horizon)


def lock_tabular(p: NoisyCombinationLockParams) -> TabularPOMDP:
    """States good_t = 2t, bad_t = 2t + 1 (t = 0..H); symbols (t, good-looking) = 2t,
    (t, bad-looking) = 2t + 1; reward 1 for the last right digit."""
    lock_validate(p)
    h, a_count = p.horizon, p.num_actions
    combination = np.asarray(p.combination)
    s_count = 2 * (h + 1)
    transition = np.zeros((a_count, s_count, s_count))
    for t in range(h + 1):
        nxt = min(t + 1, h)
        for a in range(a_count):
            right = t < h and a == int(combination[t])
            transition[a, 2 * t, 2 * nxt + (0 if right else 1)] = 1.0
            transition[a, 2 * t + 1, 2 * nxt + 1] = 1.0
    emission = np.zeros((s_count, s_count))
    for t in range(h + 1):
        emission[2 * t : 2 * t + 2, 2 * t : 2 * t + 2] = revealing_emission(float(p.alpha))
    reward = np.zeros((s_count, a_count))
    reward[2 * (h - 1), int(combination[h - 1])] = 1.0
    initial = np.zeros(s_count)
    initial[0] = 1.0
    return _model(
        "NoisyCombinationLock",
        transition,
        emission,
        np.zeros(s_count),
        h,
        reward=reward,
        initial=initial,
    )


def lock_blocks(p: NoisyCombinationLockParams) -> list[EmissionBlock]:
    return [
        EmissionBlock(f"good/bad at {t}", (2 * t, 2 * t + 1), (), float(p.alpha))
        for t in range(p.horizon + 1)
    ]


# --------------------------------------------------------------------------- shared


def _check_tabular_size(family: str, states: int, field: str) -> None:
    if states > MAX_TABULAR_STATES:
        raise ParamError(
            f"{family}: the tabular model would have {states:,} states (limit "
            f"{MAX_TABULAR_STATES:,}: its dense transition table would need "
            f"{2 * states**2 * 8 / 2**30:.1f} GiB or more); the exact tools need a smaller {field}"
        )


def _model(
    name: str,
    transition: np.ndarray,
    emission: np.ndarray,
    obs_reward: np.ndarray,
    horizon: int,
    *,
    reward: np.ndarray | None = None,
    initial: np.ndarray | None = None,
) -> TabularPOMDP:
    """A validated model; by default the episode starts at state 0 and only symbols pay."""
    a_count, s_count, _ = transition.shape
    if initial is None:
        initial = np.zeros(s_count)
        initial[0] = 1.0
    model = TabularPOMDP(
        transition=transition,
        emission=emission,
        reward=np.zeros((s_count, a_count)) if reward is None else reward,
        obs_reward=obs_reward,
        initial=initial,
        horizon=horizon,
        obs_inputs=np.eye(emission.shape[1], dtype=np.float32),
        name=name,
    )
    model.validate()
    return model
