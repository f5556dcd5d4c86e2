"""Exact finite-horizon values of a `TabularPOMDP`: V*, a policy's value, revealing constants.

Over 400 lines: the belief DP, policy values on histories and their table-free variant share
the history expansion.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import jax
import numpy as np

from scalegym.envs.pomdp.candidates import Candidates
from scalegym.envs.pomdp.tabular import TabularPOMDP

# Shapes: N histories in one tree level, S states, A actions, O observation symbols, D input size,
# V distinct values of the state reward. A tree node holds an unnormalised belief
# alpha[s] = P(s_t = s, history): its sum is the history's probability, so a level's values add
# up to an expectation without renormalising.

MASS_EPS = 1e-15  # a child history less likely than this is pruned
TIE_RTOL = 1e-12  # actions this close (relative) count as tied; ties go to the lowest index
CHUNK_ELEMENTS = 1 << 22  # the most float64 numbers one expansion chunk holds (32 MiB)
DEFAULT_MAX_NODES = 2_000_000


@dataclass(frozen=True)
class PreviousStep:
    """Each history's last step as its agent saw it: the action played and the reward paid
    (−1 and 0 where the history is one symbol long: the episode's first step)."""

    action: np.ndarray  # [n] int64
    reward: np.ndarray  # [n] float64

    @classmethod
    def at_start(cls, n: int) -> PreviousStep:
        return cls(np.full(n, -1, np.int64), np.zeros(n))


class HistoryPolicy(Protocol):
    """A policy over observation histories, stepped one tree level at a time.

    A policy that also takes its previous action and reward (a GRU with
    `PPOConfig.prev_action_reward`) says so with `takes_previous = True`; it is then called with
    a keyword `previous` (`PreviousStep`), and the histories are (actions, symbols, rewards):
    those that differ only in a reward the symbols do not tell (Tiger's doors) are apart.
    """

    def initial(self, n: int) -> Any:
        """The carry for n fresh histories: a pytree of arrays with leading axis n, or None."""
        ...

    def __call__(
        self, carry: Any, symbols: np.ndarray, inputs: np.ndarray
    ) -> tuple[Any, np.ndarray]:
        """Take the symbols just emitted ([n] int) and their env inputs ([n, D] float32).

        Returns the new carry and the next action's probabilities [n, A].
        """
        ...


@dataclass(frozen=True)
class TablePolicy:
    """A deterministic policy: the action for each observation history (o_0, ..., o_t)."""

    table: Mapping[tuple[int, ...], int]
    num_actions: int

    def initial(self, n: int) -> np.ndarray:
        histories = np.empty(n, dtype=object)  # [n] tuples of symbols
        histories.fill(())
        return histories

    def __call__(
        self, carry: np.ndarray, symbols: np.ndarray, inputs: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        histories = np.empty(len(symbols), dtype=object)  # [n]
        actions = np.empty(len(symbols), dtype=np.int64)  # [n]
        for i, (history, symbol) in enumerate(zip(carry, symbols, strict=True)):
            histories[i] = (*history, int(symbol))
            if histories[i] not in self.table:
                raise ValueError(
                    f"TablePolicy has no action for observation history {histories[i]}"
                )
            actions[i] = self.table[histories[i]]
        probs = np.zeros((len(symbols), self.num_actions))  # [n, A]
        probs[np.arange(len(symbols)), actions] = 1.0
        return histories, probs


@dataclass(frozen=True)
class UniformPolicy:
    """Every action with probability 1/A, whatever the history."""

    num_actions: int

    def initial(self, n: int) -> None:
        return None

    def __call__(
        self, carry: None, symbols: np.ndarray, inputs: np.ndarray
    ) -> tuple[None, np.ndarray]:
        return None, np.full((len(symbols), self.num_actions), 1.0 / self.num_actions)


@dataclass(frozen=True)
class NetworkPolicy:
    """A recurrent actor `step_fn(carry [n, M], inputs [n, D]) -> (carry, logits [n, A])`; with
    `takes_previous`, `step_fn(carry, inputs, actions [n] int64, rewards [n] float64)` is also
    given each history's previous action (−1 at the first step) and reward.

    Rows go through `step_fn` in chunks of at most `chunk_rows`, each padded to a power of two so
    a jitted `step_fn` compiles for a few sizes only. Probabilities are a float64 softmax.
    """

    step_fn: Callable[..., tuple[Any, Any]]
    carry0: Any  # pytree of rows, e.g. [M]
    chunk_rows: int = 65536
    takes_previous: bool = False

    def initial(self, n: int) -> Any:
        return jax.tree.map(lambda row: np.repeat(np.asarray(row)[None], n, axis=0), self.carry0)

    def __call__(
        self,
        carry: Any,
        symbols: np.ndarray,
        inputs: np.ndarray,
        previous: PreviousStep | None = None,
    ) -> tuple[Any, np.ndarray]:
        if self.takes_previous and previous is None:
            raise ValueError("this network policy takes its previous step (previous=); none given")
        n = len(symbols)
        carries, logits = [], []
        for lo in range(0, n, self.chunk_rows):
            rows = min(self.chunk_rows, n - lo)
            padded = min(self.chunk_rows, 1 << (rows - 1).bit_length())
            chunk = lambda x, lo=lo, r=rows, p=padded: _pad(x[lo : lo + r], p)
            args = [jax.tree.map(chunk, carry), chunk(inputs)]
            if self.takes_previous:
                args += [chunk(previous.action), chunk(previous.reward)]
            out_carry, out_logits = self.step_fn(*args)
            carries.append(jax.tree.map(lambda x, r=rows: np.asarray(x)[:r], out_carry))
            logits.append(np.asarray(out_logits, dtype=np.float64)[:rows])
        new_carry = jax.tree.map(lambda *parts: np.concatenate(parts, axis=0), *carries)
        return new_carry, softmax(np.concatenate(logits, axis=0))


def network_policy(
    step_fn: Callable[..., tuple[Any, Any]],
    carry0: Any,
    *,
    chunk_rows: int = 65536,
    takes_previous: bool = False,
) -> NetworkPolicy:
    """Wrap a jitted recurrent actor (e.g. a GRU) as a `HistoryPolicy`; carry0 is one carry row.
    `takes_previous`: step_fn also takes each history's previous action and reward."""
    if chunk_rows < 1:
        raise ValueError(f"network_policy: chunk_rows={chunk_rows}; allowed: >= 1")
    return NetworkPolicy(step_fn, carry0, chunk_rows, takes_previous)


def takes_previous(policy: HistoryPolicy) -> bool:
    """Whether the policy asks for each history's previous action and reward."""
    return bool(getattr(policy, "takes_previous", False))


def _query(
    policy: HistoryPolicy,
    carry: Any,
    symbols: np.ndarray,
    inputs: np.ndarray,
    previous: PreviousStep,
) -> tuple[Any, np.ndarray]:
    """The policy's next carry and probs; `previous` goes only to a policy that asks for it."""
    if takes_previous(policy):
        return policy(carry, symbols, inputs, previous=previous)
    return policy(carry, symbols, inputs)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64; [n, A] -> [n, A]."""
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def _pad(x: Any, rows: int) -> np.ndarray:
    """Zero-pad the leading axis of x to `rows`."""
    x = np.asarray(x)
    out = np.zeros((rows, *x.shape[1:]), dtype=x.dtype)
    out[: len(x)] = x
    return out


def _take(carry: Any, index: np.ndarray) -> Any:
    """Each child history's copy of its parent's carry row."""
    return jax.tree.map(lambda x: np.take(np.asarray(x), index, axis=0), carry)


def expected_step_reward(model: TabularPOMDP) -> np.ndarray:
    """r[s, a] = reward[s, a] + E[obs_reward[o'] | s, a]: all that an action pays; [S, A]."""
    obs_pay = model.transition @ (model.emission @ model.obs_reward)  # [A, S]
    return model.reward + obs_pay.T


def _check_size(model: TabularPOMDP, count: int, step: int, max_nodes: int) -> None:
    if count > max_nodes:
        raise ValueError(
            f"{model.name}: the belief-tree DP would hold {count:,} histories at step {step} "
            f"(max_nodes={max_nodes:,}); use a smaller instance or the family's closed-form V*"
        )


def _roots(model: TabularPOMDP, max_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """The step-0 histories (one per likely first symbol): symbols [N] and alpha [N, S]."""
    alpha = model.initial[None, :] * model.emission.T  # [O, S]
    symbols = np.flatnonzero(alpha.sum(axis=1) >= MASS_EPS)
    _check_size(model, len(symbols), 0, max_nodes)
    return symbols, alpha[symbols]


def reward_classes(model: TabularPOMDP) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of the state reward [V] and where each is paid, [V, S, A] bool: the
    children of a history that sees its rewards split by them (the symbols' pay it sees anyway)."""
    values = np.unique(model.reward)
    return values, model.reward[None] == values[:, None, None]


def _expand(
    model: TabularPOMDP,
    alpha: np.ndarray,
    weights: np.ndarray | None,
    *,
    step: int,
    max_nodes: int,
    rewards: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Children of the level at `step`: alpha' = w[n, a] * (alpha[n] @ T_a) * O[:, o], pruned.

    alpha [N, S]; weights [N, A] action probabilities or None (every action, weight 1); rewards
    `reward_classes(model)` to split each child by the state reward paid on the way (alpha[n] is
    restricted to the states that pay it), or None.
    Returns parent [K], action [K], symbol [K], alpha' [K, S] and the state reward paid [K] (0
    without `rewards`) for the K children that survive.
    Raises before storing more than max_nodes children (it still counts them for the message).
    """
    num_actions, num_states, num_obs = model.num_actions, model.num_states, model.num_obs
    values, masks = (np.zeros(1), [None]) if rewards is None else rewards
    chunk = max(1, CHUNK_ELEMENTS // (num_actions * max(num_states, num_obs)))
    parts: list[tuple[np.ndarray, ...]] = []
    count = 0
    for lo in range(0, alpha.shape[0], chunk):
        block = alpha[lo : lo + chunk][None]  # [1, n, S]
        for value, mask in zip(values, masks, strict=True):
            source = block if mask is None else block * mask.T[:, None, :]  # [1 or A, n, S]
            pred = np.matmul(source, model.transition).transpose(1, 0, 2)  # [n, A, S]
            if weights is not None:
                pred *= weights[lo : lo + chunk, :, None]
            keep = pred @ model.emission >= MASS_EPS  # [n, A, O]
            count += int(np.count_nonzero(keep))
            if count > max_nodes:
                parts.clear()  # keep counting for the message, stop storing
                continue
            parent, action, symbol = np.nonzero(keep)
            child = pred[parent, action] * model.emission.T[symbol]
            parts.append((parent + lo, action, symbol, child, np.full(len(parent), value)))
    _check_size(model, count, step + 1, max_nodes)
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, np.zeros((0, num_states)), np.zeros(0)
    parent, action, symbol, child, paid = (
        np.concatenate(p, axis=0) for p in zip(*parts, strict=True)
    )
    return parent, action, symbol, child, paid


@dataclass(frozen=True)
class _Level:
    """One level of the optimal DP's tree, kept for the backward pass."""

    step_value: np.ndarray  # [N, A] alpha . expected_step_reward
    mass: np.ndarray  # [N] probability of the history
    parent: np.ndarray  # [N] index into the previous level (-1 at step 0)
    action: np.ndarray  # [N] the action that led here (-1 at step 0)
    symbol: np.ndarray  # [N] the symbol emitted on arrival


def _solve(model: TabularPOMDP, max_nodes: int) -> tuple[float, list[_Level], list[np.ndarray]]:
    """The belief-tree DP: forward over all histories, back up with a max over actions.

    Returns V*, the levels 0..H-1 and, per level, the argmax action of every node [N].
    """
    model.validate()
    step_reward = expected_step_reward(model)  # [S, A]
    symbols, alpha = _roots(model, max_nodes)
    root = np.full(len(symbols), -1, dtype=np.int64)
    levels = [_Level(alpha @ step_reward, alpha.sum(axis=1), root, root, symbols)]
    for step in range(model.horizon - 1):
        parent, action, symbol, alpha, _ = _expand(
            model, alpha, None, step=step, max_nodes=max_nodes
        )
        levels.append(_Level(alpha @ step_reward, alpha.sum(axis=1), parent, action, symbol))

    num_actions = model.num_actions
    best_actions: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * len(levels)
    value_next = np.zeros(0)  # [N_{t+1}] V of each child history
    for step in range(len(levels) - 1, -1, -1):
        level = levels[step]
        q = level.step_value.copy()  # [N, A]
        if step + 1 < len(levels):
            child = levels[step + 1]
            flat = child.parent * num_actions + child.action
            q += np.bincount(flat, weights=value_next, minlength=q.size).reshape(q.shape)
        best = q.max(axis=1)  # [N]
        tol = TIE_RTOL * (np.abs(q).max(axis=1, initial=0.0) + level.mass)
        best_actions[step] = np.argmax(q >= (best - tol)[:, None], axis=1)
        value_next = best
    return float(value_next.sum()), levels, best_actions


def optimal_value(model: TabularPOMDP, *, max_nodes: int = DEFAULT_MAX_NODES) -> float:
    """V*: the best expected return of any history-dependent policy, by the belief-tree DP.

    V(alpha, t) = max_a [alpha . r_a + sum_o V(alpha T_a diag(O_o), t + 1)], V(., H) = 0, summed
    over the first symbols, with r = `expected_step_reward` (the symbols' pay folded in); each
    level of the tree is one vectorised array. Raises ValueError when a level
    would hold more than max_nodes histories.
    """
    value, _, _ = _solve(model, max_nodes)
    return value


def optimal_policy(
    model: TabularPOMDP, *, max_nodes: int = DEFAULT_MAX_NODES
) -> tuple[float, TablePolicy]:
    """V* and a deterministic policy attaining it, one action per reachable observation history.

    The key is the symbols seen so far (o_0, ..., o_t): the policy's own actions follow from them.
    Ties (within a relative 1e-12) go to the lowest action index.
    """
    value, levels, best_actions = _solve(model, max_nodes)
    table: dict[tuple[int, ...], int] = {}
    keys: list[tuple[int, ...] | None] = [(int(o),) for o in levels[0].symbol]  # [N]
    for step, level in enumerate(levels):
        if step > 0:  # a child is on the policy's path iff its parent is and took the argmax
            taken = best_actions[step - 1][level.parent] == level.action  # [N]
            parent_keys, keys = keys, [None] * len(level.symbol)
            for i in np.flatnonzero(taken):
                if (key := parent_keys[level.parent[i]]) is not None:
                    keys[i] = (*key, int(level.symbol[i]))
        for i, key in enumerate(keys):
            if key is not None:
                table[key] = int(best_actions[step][i])
    return value, TablePolicy(table=table, num_actions=model.num_actions)


def _check_probs(probs: np.ndarray, n: int, num_actions: int) -> np.ndarray:
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape != (n, num_actions):
        raise ValueError(f"policy returned probs of shape {probs.shape}; needs {(n, num_actions)}")
    if n and (np.any(probs < 0) or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-6)):
        raise ValueError("policy returned rows of probs that are not distributions")
    return probs


def policy_value(
    model: TabularPOMDP, policy: HistoryPolicy, *, max_nodes: int = DEFAULT_MAX_NODES
) -> float:
    """The exact expected return of a (possibly stochastic) history policy.

    The same forward tree as `optimal_value`, with each action's probability folded into the
    child's alpha and the policy's carry gathered per surviving history. A policy that
    `takes_previous` is given each history's last action and reward, and the children split by
    the state reward paid (`reward_classes`), so that each history is what its agent saw. Raises
    ValueError when a level would hold more than max_nodes histories.

    `optimal_value` does not split by rewards, so it is also V* of policies that see them only
    where a reward tells nothing the symbols do not that bears on what follows; on the families
    here it is the symbol's pay, paid at the last step, or followed by a reset (Tiger's doors).
    """
    model.validate()
    step_reward = expected_step_reward(model)  # [S, A]
    rewards = reward_classes(model) if takes_previous(policy) else None
    symbols, alpha = _roots(model, max_nodes)
    carry, previous = policy.initial(len(symbols)), PreviousStep.at_start(len(symbols))
    total = 0.0
    for step in range(model.horizon):
        if len(symbols) == 0:
            break
        carry, probs = _query(policy, carry, symbols, model.obs_inputs[symbols], previous)
        probs = _check_probs(probs, len(symbols), model.num_actions)  # [N, A]
        total += float(np.sum(probs * (alpha @ step_reward)))
        if step + 1 < model.horizon:
            parent, action, symbols, alpha, paid = _expand(
                model, alpha, probs, step=step, max_nodes=max_nodes, rewards=rewards
            )
            carry = _take(carry, parent)
            previous = PreviousStep(action, paid + model.obs_reward[symbols])
    return total


def candidate_policy_value(candidates: Candidates, policy: HistoryPolicy) -> float:
    """The exact expected return of a history policy on a candidate family, without tables.

    Every history of the selection is a room and an action prefix (the room's symbol, then the
    depths), so the policy is queried on all R·A^j (room, prefix) rows at depth j and P(c | r) is
    the product of its action probabilities along c's path in room r;
    V(π) = Σ_r (1/R) Σ_c P(c | r) · P(w | r, c), P(w | r, c) = 1/2 + α(q_rc − 1/2).
    A policy that `takes_previous` is given each row's last digit and reward 0 (the selection
    pays nothing: only the last step's w does, and nothing is queried after it).
    Equals `policy_value` on the family's tabular model, and runs where that model is too big
    (PerRoomSecret's K rooms of K keys): the last depth queries R·A^(k−1) rows.
    """
    a_count, k, rooms = candidates.num_actions, candidates.depth, candidates.rooms
    inputs = np.eye(candidates.num_obs, dtype=np.float32)  # [O, O] one-hot, as `TabularPOMDP`
    symbols = np.arange(rooms)  # [n] the first symbol of each row: its room
    path = np.full(rooms, 1.0 / rooms)  # [n] the probability of each (room, action prefix)
    carry, previous = policy.initial(rooms), PreviousStep.at_start(rooms)
    for depth in range(k):
        carry, probs = _query(policy, carry, symbols, inputs[symbols], previous)
        probs = _check_probs(probs, len(path), a_count)  # [n, A]
        if depth + 1 < k:
            carry = _take(carry, np.repeat(np.arange(len(path)), a_count))  # child p·A + a
            symbols = np.full(len(path) * a_count, rooms + depth)  # depth + 1's symbol
            previous = PreviousStep(np.tile(np.arange(a_count), len(path)), np.zeros(len(symbols)))
        path = (path[:, None] * probs).reshape(-1)  # [n · A], room-major
    p_win = 0.5 + candidates.alpha * (np.asarray(candidates.win_probs, np.float64) - 0.5)
    return float(path @ p_win)


def revealing_constant(
    model: TabularPOMDP, states: Sequence[int], actions: Sequence[int] = ()
) -> float:
    """sigma_min of the m-step emission matrix of a block of states, m = len(actions) + 1.

    M[i, (o_1, ..., o_m)] = P(o_1, ..., o_m | s_1 = states[i], a_1..a_{m-1} = actions), with
    o_1 ~ emission[s_1], s_2 ~ transition[a_1, s_1], o_2 ~ emission[s_2], ... Columns run over
    all O^m sequences (o_1 slowest). With more states than columns the rank is short: returns 0.
    """
    model.validate()
    num_states, num_actions = model.num_states, model.num_actions
    if len(states) == 0:
        raise ValueError(f"{model.name}: revealing_constant needs at least one state")
    for s in states:
        if not 0 <= s < num_states:
            raise ValueError(
                f"{model.name}: state index {s} out of range; allowed: 0..{num_states - 1}"
            )
    for a in actions:
        if not 0 <= a < num_actions:
            raise ValueError(
                f"{model.name}: action index {a} out of range; allowed: 0..{num_actions - 1}"
            )
    rows = len(states)
    joint = np.eye(num_states)[list(states)][:, None, :] * model.emission.T[None]  # [k, O, S]
    for a in actions:
        moved = joint @ model.transition[a]  # [k, O^j, S]
        joint = (moved[:, :, None, :] * model.emission.T[None, None]).reshape(rows, -1, num_states)
    matrix = joint.sum(axis=2)  # [k, O^m]
    if rows > matrix.shape[1]:
        return 0.0
    return float(np.linalg.svd(matrix, compute_uv=False).min())
