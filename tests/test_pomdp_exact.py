"""Known answers for the exact POMDP tools: Tiger by hand and in print, brute force on tiny ones."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scalegym.envs.pomdp.exact import (
    PreviousStep,
    TablePolicy,
    UniformPolicy,
    network_policy,
    optimal_policy,
    optimal_value,
    policy_value,
    revealing_constant,
)
from scalegym.envs.pomdp.tabular import TabularPOMDP

LISTEN, OPEN_LEFT, OPEN_RIGHT = 0, 1, 2
HEAR_LEFT, HEAR_RIGHT = 0, 1

# Published undiscounted horizon-2 Tiger value function (alpha vectors over (tiger-left,
# tiger-right)): Svalorzen/AI-Toolbox, test/POMDP/IncrementalPruningTests.cpp, test case
# `undiscountedHorizon` (Tiger with discount 1.0, horizon 2), which says it agrees with Cassandra's
# pomdp-solve except for which action is named where listening and opening tie.
TIGER_H2_ALPHAS = np.array(
    [[-2.0, -2.0], [7.35, -16.85], [-16.85, 7.35], [9.0, -101.0], [-101.0, 9.0]]
)


def tiger(horizon: int, p_left: float = 0.5) -> TabularPOMDP:
    """Kaelbling, Littman & Cassandra's Tiger (AIJ 101, 1998) with arrival-state emissions.

    States: 0 tiger-left / 1 tiger-right reached by listening, 2 / 3 the same reached by a reset.
    Listening keeps the side (hears it right w.p. 0.85); opening pays +10 or -100 and resets the
    tiger uniformly, after which the hear-symbols are 0.5/0.5. s_0 is a reset copy, so o_0 is noise.
    """
    transition = np.zeros((3, 4, 4))  # [A, S, S]
    for s in range(4):
        transition[LISTEN, s, s % 2] = 1.0
        transition[OPEN_LEFT:, s, 2:] = 0.5
    emission = np.array([[0.85, 0.15], [0.15, 0.85], [0.5, 0.5], [0.5, 0.5]])  # [S, O]
    reward = np.array([[-1.0, -100.0, 10.0], [-1.0, 10.0, -100.0]] * 2)  # [S, A]
    return TabularPOMDP(
        transition=transition,
        emission=emission,
        reward=reward,
        obs_reward=np.zeros(2),
        initial=np.array([0.0, 0.0, p_left, 1.0 - p_left]),
        horizon=horizon,
        obs_inputs=np.eye(2, dtype=np.float32),
        name="Tiger",
    )


def random_model(seed: int, *, states: int = 3, actions: int = 2, obs: int = 2, horizon: int = 3):
    """A random instance with sparse-ish rows (so some histories have probability zero)."""
    rng = np.random.default_rng(seed)

    def rows(shape: tuple[int, ...], keep: float) -> np.ndarray:
        x = rng.random(shape) * (rng.random(shape) < keep)
        x[..., 0] += (x.sum(-1) == 0) * 1.0  # no empty row
        return x / x.sum(-1, keepdims=True)

    return TabularPOMDP(
        transition=rows((actions, states, states), 0.5),
        emission=rows((states, obs), 0.6),
        reward=rng.normal(size=(states, actions)),
        obs_reward=rng.normal(size=obs),
        initial=rows((states,), 0.7),
        horizon=horizon,
        obs_inputs=np.eye(obs, dtype=np.float32),
        name="Random",
    )


# -- brute force in plain Python over normalised beliefs -------------------------------------


def _posteriors(model: TabularPOMDP, belief: list[float], action: int):
    """(o, P(o | belief, a), posterior belief) for every symbol with P > 0."""
    t, e, n = model.transition.tolist(), model.emission.tolist(), model.num_states
    pred = [sum(belief[s] * t[action][s][s2] for s in range(n)) for s2 in range(n)]
    for o in range(model.num_obs):
        p = sum(pred[s] * e[s][o] for s in range(n))
        if p > 0:
            yield o, p, [pred[s] * e[s][o] / p for s in range(n)]


def _roots(model: TabularPOMDP):
    e, n = model.emission.tolist(), model.num_states
    for o in range(model.num_obs):
        p = sum(model.initial[s] * e[s][o] for s in range(n))
        if p > 0:
            yield o, p, [model.initial[s] * e[s][o] / p for s in range(n)]


def _step_reward(model: TabularPOMDP, belief: list[float], action: int) -> float:
    return sum(b * r for b, r in zip(belief, model.reward[:, action].tolist(), strict=True))


def expectimax(model: TabularPOMDP) -> float:
    """V* by plain recursion over (normalised belief, t)."""

    def value(belief: list[float], t: int) -> float:
        if t == model.horizon:
            return 0.0
        return max(
            _step_reward(model, belief, a)
            + sum(
                p * (model.obs_reward[o] + value(post, t + 1))
                for o, p, post in _posteriors(model, belief, a)
            )
            for a in range(model.num_actions)
        )

    return sum(p * value(b, 0) for _, p, b in _roots(model))


def brute_policy_value(model: TabularPOMDP, probs_of: Callable[[tuple[int, ...]], list]) -> float:
    """A history policy's value by plain recursion; probs_of maps (o_0, ..., o_t) to [A] probs."""

    def value(belief: list[float], history: tuple[int, ...], t: int) -> float:
        if t == model.horizon:
            return 0.0
        total = 0.0
        for a, pa in enumerate(probs_of(history)):
            if pa > 0:
                future = sum(
                    p * (model.obs_reward[o] + value(post, (*history, o), t + 1))
                    for o, p, post in _posteriors(model, belief, a)
                )
                total += pa * (_step_reward(model, belief, a) + future)
        return total

    return sum(p * value(b, (o,), 0) for o, p, b in _roots(model))


def all_histories(num_obs: int, horizon: int) -> list[tuple[int, ...]]:
    """Every decision point's observation history (o_0, ..., o_t), t < horizon."""
    return [h for t in range(1, horizon + 1) for h in itertools.product(range(num_obs), repeat=t)]


def one_hot(action: int, num_actions: int) -> list[float]:
    return [1.0 if a == action else 0.0 for a in range(num_actions)]


# -- Tiger ------------------------------------------------------------------------------------


def test_tiger_optimal_values_by_hand():
    """Undiscounted V* at belief 0.5 (my derivation; n = #hear-left - #hear-right since a reset).

    P(tiger-left | n) = 0.85^n / (0.85^n + 0.15^n); opening the far door at |n| = 1 is worth
    0.85*10 - 0.15*100 = -6.5 < -1, at |n| = 2 it is (0.7225*10 - 0.0225*100) / 0.745 = 6.678.
    H=1: listen, -1 (opening at 0.5 is 0.5*10 - 0.5*100 = -45).
    H=2: listen twice, -2 (listen then open: -1 - 6.5 = -7.5).
    H=3: listen, listen, open when the two agree (P = 0.745), else listen:
         -2 + (0.7225*10 - 0.0225*100) - 0.255*1 = -2 + 4.975 - 0.255 = 2.72.
    H=4: listen, listen; on agreement listen once more and open on a net count of 3, else listen
         (that third listen beats opening at once and listening after: 2.465625 vs 2.115 per
         branch of mass 0.5); on disagreement listen twice. In probabilities of whole histories:
         -1 + 2 * (-0.5 + [-0.3725 + 2.901875 - 0.06375] - 0.1275 * 2) = 2.42125.
    H=2 also matches the published alpha vectors (see `test_tiger_horizon_2_published`).
    """
    for horizon, expected in [(1, -1.0), (2, -2.0), (3, 2.72), (4, 2.42125)]:
        assert optimal_value(tiger(horizon)) == pytest.approx(expected, abs=1e-12), horizon


def test_tiger_horizon_2_published():
    """V*_2(b) = max over the alpha vectors in Svalorzen/AI-Toolbox's `undiscountedHorizon` test."""
    for p_left in np.linspace(0.0, 1.0, 11):
        expected = np.max(TIGER_H2_ALPHAS @ np.array([p_left, 1.0 - p_left]))
        assert optimal_value(tiger(2, p_left)) == pytest.approx(expected, abs=1e-12), p_left


def test_tiger_optimal_policy_horizon_3():
    """The published horizon-3 solution (R package pomdp, Hahsler & Cassandra, `?policy`:
    `solve_POMDP(Tiger, method = "incprune", horizon = 3, discount = 1)`, "it is initially better
    to listen till we make a decision in the final epoch") states the policy, not the value:
    listen, listen, then open. The value 2.72 is derived by hand in the test above."""
    value, policy = optimal_policy(tiger(3))
    assert value == pytest.approx(2.72, abs=1e-12)
    for o0 in (HEAR_LEFT, HEAR_RIGHT):  # o_0 is noise
        assert policy.table[(o0,)] == LISTEN
        assert policy.table[(o0, HEAR_LEFT)] == LISTEN
        assert policy.table[(o0, HEAR_LEFT, HEAR_LEFT)] == OPEN_RIGHT
        assert policy.table[(o0, HEAR_RIGHT, HEAR_RIGHT)] == OPEN_LEFT
        assert policy.table[(o0, HEAR_LEFT, HEAR_RIGHT)] == LISTEN
    assert len(policy.table) == 2 + 4 + 8  # every reachable history, one action each


def test_tiger_policies_evaluate_exactly():
    model = tiger(4)
    value, policy = optimal_policy(model)
    assert policy_value(model, policy) == pytest.approx(value, abs=1e-9)
    # Uniform: the door belief stays 0.5, so each step pays (-1 - 45 - 45) / 3.
    assert policy_value(model, UniformPolicy(3)) == pytest.approx(4 * -91.0 / 3, abs=1e-9)


def test_max_nodes_error_names_model_step_and_limit():
    with pytest.raises(ValueError, match=r"Tiger: .* histories at step \d+ \(max_nodes=50\)"):
        optimal_value(tiger(6), max_nodes=50)
    with pytest.raises(ValueError, match=r"max_nodes=50"):
        policy_value(tiger(6), UniformPolicy(3), max_nodes=50)
    assert optimal_value(tiger(3), max_nodes=72) == pytest.approx(2.72)  # 2 * 6^2 at step 2


# -- random tiny models against brute force ---------------------------------------------------


@pytest.mark.parametrize("seed", range(30))
def test_optimal_value_matches_expectimax(seed):
    model = random_model(seed)
    value, policy = optimal_policy(model)
    assert optimal_value(model) == value
    assert value == pytest.approx(expectimax(model), abs=1e-9)
    assert policy_value(model, policy) == pytest.approx(value, abs=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_optimal_value_is_best_deterministic_policy(seed):
    """H=2: enumerate all 2^(2 + 4) deterministic history policies."""
    model = random_model(100 + seed, horizon=2)
    histories = all_histories(model.num_obs, model.horizon)
    values = []
    for choice in itertools.product(range(2), repeat=len(histories)):
        table = dict(zip(histories, choice, strict=True))
        values.append(brute_policy_value(model, lambda h, table=table: one_hot(table[h], 2)))
    best = max(values)
    assert optimal_value(model) == pytest.approx(best, abs=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_uniform_policy_matches_brute_force(seed):
    model = random_model(200 + seed, actions=3, horizon=3)
    expected = brute_policy_value(model, lambda h: [1 / 3] * 3)
    assert policy_value(model, UniformPolicy(3)) == pytest.approx(expected, abs=1e-9)


class RandomHistoryPolicy:
    """A stochastic history policy: fixed random probs (some exactly 0) per observation history."""

    def __init__(self, probs: dict[tuple[int, ...], np.ndarray], num_actions: int):
        self.probs, self.num_actions = probs, num_actions

    def initial(self, n: int) -> np.ndarray:
        return TablePolicy({}, self.num_actions).initial(n)

    def __call__(self, carry, symbols, inputs):
        histories = np.empty(len(symbols), dtype=object)
        for i, (h, o) in enumerate(zip(carry, symbols, strict=True)):
            histories[i] = (*h, int(o))
        return histories, np.stack([self.probs[h] for h in histories])


@pytest.mark.parametrize("seed", range(8))
def test_random_policies_match_brute_force_and_never_beat_optimum(seed):
    model = random_model(300 + seed, actions=3, horizon=3)
    rng = np.random.default_rng(seed)
    probs = {}
    for h in all_histories(model.num_obs, model.horizon):
        p = rng.random(3) * (rng.random(3) < 0.7)
        p[rng.integers(3)] += 0.1
        probs[h] = p / p.sum()
    stochastic = RandomHistoryPolicy(probs, 3)
    deterministic = TablePolicy({h: int(rng.integers(3)) for h in probs}, 3)
    best = optimal_value(model)
    for policy, probs_of in [
        (stochastic, lambda h: probs[h].tolist()),
        (deterministic, lambda h: one_hot(deterministic.table[h], 3)),
    ]:
        value = policy_value(model, policy)
        assert value == pytest.approx(brute_policy_value(model, probs_of), abs=1e-9)
        assert value <= best + 1e-9


def test_network_policy_matches_brute_force():
    """A jitted 'RNN' whose carry counts symbols; logits are exact in float32 (multiples of 1/4)."""
    model = random_model(400, states=3, actions=3, obs=2, horizon=4)
    weight = np.array([[0.5, -0.25, 0.0], [-0.75, 1.0, 0.25]], dtype=np.float32)  # [O, A]
    bias = np.array([0.0, 0.25, -0.5], dtype=np.float32)  # [A]

    @jax.jit
    def step_fn(carry, inputs):
        carry = carry + inputs  # [n, O] counts of each symbol
        return carry, carry @ jnp.asarray(weight) + jnp.asarray(bias)

    def probs_of(history: tuple[int, ...]) -> list[float]:
        logits = np.bincount(history, minlength=2) @ weight.astype(np.float64) + bias
        z = np.exp(logits - logits.max())
        return (z / z.sum()).tolist()

    expected = brute_policy_value(model, probs_of)
    for chunk_rows in (4, 65536):  # 4: several padded chunks per level
        policy = network_policy(step_fn, np.zeros(2, np.float32), chunk_rows=chunk_rows)
        assert policy_value(model, policy) == pytest.approx(expected, abs=1e-9)
    assert policy_value(model, policy) <= optimal_value(model) + 1e-9


# A history as the agent sees it with its previous steps: (o_0, (a_0, r_0, o_1), ...).
FullHistory = tuple


def brute_previous_value(model: TabularPOMDP, probs_of: Callable[[FullHistory], list]) -> float:
    """The value of a policy of (action, reward, symbol) histories by plain recursion: an action's
    state reward splits the belief into the states that pay each value."""

    def value(belief: list[float], history: FullHistory, t: int) -> float:
        if t == model.horizon:
            return 0.0
        total = 0.0
        for a, pa in enumerate(probs_of(history)):
            paid = model.reward[:, a].tolist()
            for r in sorted({paid[s] for s, b in enumerate(belief) if b > 0}):
                mass = sum(b for s, b in enumerate(belief) if paid[s] == r)
                part = [b / mass if paid[s] == r else 0.0 for s, b in enumerate(belief)]
                seen = r + model.obs_reward  # [O] the reward the agent is told, by symbol
                future = sum(
                    p * (model.obs_reward[o] + value(post, (*history, (a, seen[o], o)), t + 1))
                    for o, p, post in _posteriors(model, part, a)
                )
                total += pa * mass * (r + future)
        return total

    return sum(p * value(b, (o,), 0) for o, p, b in _roots(model))


def full_history_probs(history: FullHistory, num_actions: int) -> list[float]:
    """A stochastic policy that reads every action, reward and symbol of its history."""
    x = 0.3 * history[0]
    for a, r, o in history[1:]:
        x = math.sin(1.7 * x + 0.9 * a + 0.5 * r + 0.4 * o)
    z = np.exp([2.0 * math.sin(3.1 * x + b) for b in range(num_actions)])
    return (z / z.sum()).tolist()


class FullHistoryPolicy:
    """`full_history_probs` as a `HistoryPolicy` that takes its previous steps."""

    takes_previous = True

    def __init__(self, num_actions: int):
        self.num_actions = num_actions

    def initial(self, n: int) -> np.ndarray:
        return TablePolicy({}, self.num_actions).initial(n)

    def __call__(self, carry, symbols, inputs, *, previous: PreviousStep):
        histories = np.empty(len(symbols), dtype=object)
        steps = zip(carry, symbols, previous.action, previous.reward, strict=True)
        for i, (h, o, a, r) in enumerate(steps):
            histories[i] = (int(o),) if a < 0 else (*h, (int(a), float(r), int(o)))
            assert (a < 0) == (len(h) == 0) and (a >= 0 or r == 0.0)
        return histories, np.stack([full_history_probs(h, self.num_actions) for h in histories])


@pytest.mark.parametrize("seed", range(6))
def test_previous_steps_are_passed_and_split_by_reward(seed):
    # Rewards drawn per state, so every action's reward tells the state apart; Tiger's doors too.
    model = random_model(500 + seed, states=3, actions=3, obs=2, horizon=3) if seed else tiger(3)
    policy = FullHistoryPolicy(model.num_actions)
    expected = brute_previous_value(model, lambda h: full_history_probs(h, model.num_actions))
    assert policy_value(model, policy) == pytest.approx(expected, abs=1e-9)
    # the same probabilities read off the symbols alone (no actions, no rewards) are worth another
    a_count = model.num_actions
    blind = RandomHistoryPolicy(
        {
            h: np.array(full_history_probs((h[0], *((0, 0.0, o) for o in h[1:])), a_count))
            for h in all_histories(model.num_obs, model.horizon)
        },
        a_count,
    )
    assert abs(policy_value(model, blind) - expected) > 1e-3


def test_policy_errors_are_named():
    model = tiger(2)
    with pytest.raises(ValueError, match="no action for observation history"):
        policy_value(model, TablePolicy({(0,): LISTEN}, 3))
    with pytest.raises(ValueError, match="shape"):
        policy_value(model, UniformPolicy(2))


# -- revealing constants ----------------------------------------------------------------------


def revealing_model(emission: np.ndarray, transition: np.ndarray | None = None) -> TabularPOMDP:
    states, obs = emission.shape
    transition = np.eye(states)[None] if transition is None else transition
    return TabularPOMDP(
        transition=transition,
        emission=emission,
        reward=np.zeros((states, transition.shape[0])),
        obs_reward=np.zeros(obs),
        initial=np.full(states, 1.0 / states),
        horizon=1,
        obs_inputs=np.eye(obs, dtype=np.float32),
        name="Revealing",
    )


@pytest.mark.parametrize("a", [0.0, 0.3, 1.0])
def test_revealing_constant_of_noisy_bit(a):
    """[[(1+a)/2, (1-a)/2], [(1-a)/2, (1+a)/2]] has singular values 1 and a."""
    emission = np.array([[(1 + a) / 2, (1 - a) / 2], [(1 - a) / 2, (1 + a) / 2]])
    model = revealing_model(emission)
    assert revealing_constant(model, [0, 1]) == pytest.approx(a, abs=1e-12)
    # Two looks at an unmoving state: rows p (x) p; M M^T has eigenvalues (p^2 + q^2) +- 2pq.
    assert revealing_constant(model, [0, 1], [0]) == pytest.approx(a, abs=1e-12)


def test_revealing_constant_identical_rows_and_two_steps():
    """States 0, 1 emit alike but move to states 2, 3 that emit 0 and 1 exactly."""
    emission = np.array([[0.5, 0.5], [0.5, 0.5], [1.0, 0.0], [0.0, 1.0]])
    transition = np.eye(4)[None].copy()
    transition[0, 0], transition[0, 1] = np.eye(4)[2], np.eye(4)[3]
    model = revealing_model(emission, transition)
    assert revealing_constant(model, [0, 1]) == pytest.approx(0.0, abs=1e-12)
    # M = [[.5, 0, .5, 0], [0, .5, 0, .5]] over (o1, o2) = 00, 01, 10, 11: orthogonal rows.
    assert revealing_constant(model, [0, 1], [0]) == pytest.approx(math.sqrt(0.5), abs=1e-12)
    assert revealing_constant(model, [2, 3]) == pytest.approx(1.0, abs=1e-12)
    assert revealing_constant(model, [0, 1, 2]) == 0.0  # 3 rows, 2 columns: rank-deficient


def test_revealing_constant_rejects_bad_indices():
    model = revealing_model(np.eye(2))
    with pytest.raises(ValueError, match=r"state index 2 .* 0\.\.1"):
        revealing_constant(model, [0, 2])
    with pytest.raises(ValueError, match=r"action index 1 .* 0\.\.0"):
        revealing_constant(model, [0, 1], [1])


def test_tiger_revealing_blocks():
    """Listening reveals the side with a = 2 * 0.85 - 1; a reset's coin, then a listen: a/sqrt2."""
    model = tiger(3)
    assert revealing_constant(model, [0, 1]) == pytest.approx(0.7, abs=1e-12)
    assert revealing_constant(model, [2, 3]) == pytest.approx(0.0, abs=1e-12)
    assert revealing_constant(model, [2, 3], [LISTEN]) == pytest.approx(0.7 / math.sqrt(2))
