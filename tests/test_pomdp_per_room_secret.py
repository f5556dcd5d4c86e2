"""PerRoomSecret-v1 as designed: the room is drawn at each reset and shown, every room hides its
own key, drawn uniformly from the instance seed; fixed policies' exact values against Monte Carlo
on the JAX env; the belief planner plans on it; v0 is retired with the reason. (Closed-form V*
against the belief DP and the stated revealing constants are in `test_pomdp_families.py`, the
table-free value in `test_pomdp_policy_values.py`, the calibration learner in
`test_calibration.py`.)"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from pomdp_rollouts import (
    assert_matches_monte_carlo,
    candidate_digits,
    episode_returns,
    history_log_probs,
    make,
    table_rollout,
    uniform_rollout,
)
from scipy import stats

import scalegym
from scalegym.agents.planners.belief import BeliefPlanner, PlannerHistoryPolicy, instance_prior
from scalegym.envs.pomdp import exact
from scalegym.envs.pomdp.per_room_secret import PerRoomSecretParams, draw_keys

ID = "PerRoomSecret-v1"
FILTER = {"num_particles": 8, "filter_proposals": 16}


@pytest.mark.parametrize("size", [4, 8])
def test_each_room_s_key_is_uniform_over_instance_seeds(size):
    keys = np.stack(
        [draw_keys(PerRoomSecretParams(size=size, instance_seed=s)) for s in range(1000)]
    )  # [1000, K]
    for room in range(size):
        counts = np.bincount(keys[:, room], minlength=size)
        assert stats.chisquare(counts).pvalue > 0.01, (room, counts)
    # Rooms 0 and 1 jointly: one room's key says nothing of the other's.
    table = np.zeros((size, size))
    np.add.at(table, (keys[:, 0], keys[:, 1]), 1)
    assert stats.chi2_contingency(table).pvalue > 0.01
    # make() holds the same draw in its params.
    made = scalegym.make(ID, size=size, instance_seed=7)[1]
    assert np.array_equal(np.asarray(made.keys), keys[7])


def test_the_room_is_drawn_uniformly_at_reset_and_shown():
    env, params = make(ID, size=4)
    trajectory, _ = uniform_rollout(env, params, jax.random.key(4))
    first = trajectory["obs"][trajectory["time"] == 1]  # [N, O] obs the first action was taken on
    rooms = first.argmax(axis=-1)
    assert np.all(rooms < params.size)  # the first symbol is a room, never a depth or w/l
    assert stats.chisquare(np.bincount(rooms, minlength=params.size)).pvalue > 0.01
    # H = 2: the second action (after which the env resets: time 0) sees the depth-1 symbol K.
    later = trajectory["obs"][trajectory["time"] == 0].argmax(axis=-1)
    assert np.all(later == params.size)


def knows_rooms(keys: np.ndarray, known: set[int], k: int, sure: float):
    """A history policy on K = 2^k rooms: spell the room's key (each digit with probability
    `sure`) in the `known` rooms, key 0 elsewhere. history = (room, depth symbols...)."""

    def probs_of(history: tuple[int, ...]) -> np.ndarray:
        room, depth = history[0], len(history) - 1
        if room >= len(keys) or depth >= k:
            return np.full(2, 0.5)  # no such history on the env
        digit = candidate_digits(int(keys[room]), 2, k)[depth] if room in known else 0
        return np.where(np.arange(2) == digit, sure, 1.0 - sure)

    return probs_of


class FunctionPolicy:
    """The exact tools' `HistoryPolicy` of a function (o_0, ..., o_t) -> probs [A]."""

    def __init__(self, probs_of, num_actions: int):
        self.probs_of, self.num_actions = probs_of, num_actions

    def initial(self, n: int) -> np.ndarray:
        return exact.TablePolicy({}, self.num_actions).initial(n)

    def __call__(self, carry, symbols, inputs):
        histories = np.empty(len(symbols), dtype=object)  # [n]
        for i, (history, symbol) in enumerate(zip(carry, symbols, strict=True)):
            histories[i] = (*history, int(symbol))
        return histories, np.stack([self.probs_of(h) for h in histories])


@pytest.mark.parametrize(
    ("known", "sure"),
    [({0, 1, 2, 3}, 1.0), ({0, 1}, 0.9), (set(), 1.0)],  # every room, two rooms, none (key 0)
)
def test_fixed_policy_value_matches_monte_carlo(known, sure):
    env, params = make(ID, size=4, alpha=0.9, epsilon=0.9, instance_seed=5)
    model = env.tabular(params)
    keys, k = np.asarray(params.keys), env.horizon(params)
    probs_of = knows_rooms(keys, known, k, sure)
    expected = exact.policy_value(model, FunctionPolicy(probs_of, 2))
    candidates = env.candidates(params)
    assert exact.candidate_policy_value(candidates, FunctionPolicy(probs_of, 2)) == pytest.approx(
        expected, abs=1e-12
    )
    # By hand: room r pays 1/2 + g·P(spelling r's key), averaged over the rooms; each digit is
    # the aimed one (the key's, or 0) with probability `sure`.
    g = 0.9 * 0.9 / 2
    hit = []
    for room in range(params.size):
        key = candidate_digits(int(keys[room]), 2, k)
        aim = key if room in known else [0] * k
        hit.append(np.prod([sure if d == a else 1 - sure for d, a in zip(key, aim, strict=True)]))
    assert expected == pytest.approx(0.5 + g * np.mean(hit), abs=1e-12)
    log_probs = history_log_probs(probs_of, model.num_obs, 2, k)
    trajectory, _ = table_rollout(env, params, jax.random.key(8), log_probs)
    assert_matches_monte_carlo(
        expected, episode_returns(env, params, trajectory), tolerance=g / params.size
    )


def test_v0_is_retired_with_the_reason():
    with pytest.raises(ValueError, match="replaced by PerRoomSecret-v1") as caught:
        scalegym.make("PerRoomSecret-v0")
    assert caught.match("RevealingBandit over S²") and caught.match("exponent 2 in K")


def test_belief_planner_plans_on_the_shown_room():
    # K = 2 rooms, H = 1, α = ε = 1: a room's key wins surely, the other key half the time. The
    # fair planner with the instance known filters its particles to the room the reset showed
    # and earns V* = 1 exactly; drawing the keys from the prior (`per_room_secret.draw_keys`'s
    # distribution) it cannot know them and earns 1/2 + g·(rooms it happens to hit)/K.
    env, params = make(ID, size=2, alpha=1.0, epsilon=1.0, instance_seed=1)
    model, key = env.tabular(params), jax.random.PRNGKey(0)
    values = {}
    for prior in ("known", "prior"):
        planner = BeliefPlanner(budget=64, model=prior, search="rollouts", **FILTER)
        values[prior] = exact.policy_value(model, PlannerHistoryPolicy(env, params, planner, key))
    assert values["known"] == pytest.approx(env.optimal_value(params), abs=1e-9)
    assert values["prior"] in [pytest.approx(0.5 + 0.5 * hits / 2) for hits in range(3)]
    drawn = jax.vmap(instance_prior(env), in_axes=(0, None))(
        jax.random.split(jax.random.PRNGKey(1), 2000), params
    )
    assert drawn.keys.shape == (2000, 2)
    for room in range(2):
        counts = np.bincount(np.asarray(drawn.keys[:, room]), minlength=2)
        assert stats.chisquare(counts).pvalue > 0.01, counts
