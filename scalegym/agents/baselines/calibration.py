"""A calibration learner with a known rate, and the exact-optimal policy, as budget agents.

The calibration learner validates the scaling harness: on the revealing families its sample
complexity is known by construction, so a fitted exponent far from it means the harness is wrong.
It visits the S candidates (S² for PerRoomSecret) one at a time in a random order; each visit
plays `m` episodes of that candidate through the env and runs one test on them:

* count test (RevealingBandit, PerRoomSecret): Z = (2·wins − m)/√m, the standardised excess of
  w over a fair coin; m = ((τ + margin)/(2g))² with g = αε/2, so Z has mean τ + margin and
  standard deviation ≈ 1 at the secret.
* collision test (PaninskiLock): with parity action 0, each episode yields (pair i, s = ±1 for
  w/l); Z = Σ_i (Σs_i² − k_i)/2 / √(collisions), the pair-collision statistic of uniformity
  testing, whose mean under the secret is 4g²·√collisions; m = (τ + margin)·√n/(4g²). At the
  secret Z's standard deviation is ≈ √(1 + 4(τ + margin)/√n) (each pair's own signal adds
  variance when a pair holds many samples), 3.5 at n = 8 for τ + margin = 8; so its margin is
  14: with M = τ + margin = 20, M − τ ≥ 2.5 standard deviations for every n ≥ 8, the secret
  fires on its first visit with probability ≥ 99%, and m stays exactly ∝ √n.

It commits to the first candidate whose Z ≥ τ (after a full pass with none, it starts another)
and then keeps playing it, reading its parities from the signs of Σs_i (PaninskiLock). The secret
sits at a uniformly random place in the order, so the episodes to commit are m·U·S with
U ~ Uniform(0, 1]: N ∝ S/g² (RevealingBandit), S²/g² (PerRoomSecret) and S·√n/g² = S^1.5/g²
(PaninskiLock with n = S). Its policy is judged exactly: before committing it has no policy of
its own and is scored as a uniformly random candidate; after, the value of its committed policy
in closed form (`committed_value`, checked against `exact.policy_value` in the tests).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from scalegym.agents.budgets import BudgetLog, BudgetRequest, BudgetRun
from scalegym.core.fields import check_fields
from scalegym.envs.pomdp.paninski_lock import PaninskiLock
from scalegym.envs.pomdp.per_room_secret import PerRoomSecret
from scalegym.envs.pomdp.revealing_bandit import RevealingBandit

DEFAULTS = {"threshold": 6.0, "margin": None}  # τ, and the test's margin (None: the family's)
MARGINS = {"count": 2.0, "collision": 14.0}  # power ≥ 99% at the secret (see the docstring)
SETTLE = 4  # judgements every seed must pass after committing before the run stops early


@struct.dataclass
class LearnerState:
    """One seed's learner; seeds vmap over every field."""

    order: jax.Array  # [C] int32 the visiting order of the candidates
    visit: jax.Array  # [] int32 visits made (position in the order = visit mod C)
    committed: jax.Array  # [] bool
    choice: jax.Array  # [] int32 the committed candidate
    commit_visit: jax.Array  # [] int32 the visit that committed (−1 before)
    pair_sums: jax.Array  # [n/2] float32 Σs per pair of the committed candidate (PaninskiLock)
    key: jax.Array  # PRNG key


def family_of(env: Any) -> str:
    """ "collision" for PaninskiLock, "count" for the bandit families; else a clear error."""
    if isinstance(env, PaninskiLock):
        return "collision"
    if isinstance(env, RevealingBandit):  # PerRoomSecret included
        return "count"
    raise ValueError(
        f"the calibration learner needs a revealing family with a known rate; got "
        f"{type(env).__name__}; allowed: PaninskiLock, RevealingBandit, PerRoomSecret"
    )


def visit_episodes(family: str, params: Any, threshold: float, margin: float) -> int:
    """m, the episodes of one visit, from the test's mean drift at the gap g = αε/2."""
    g = float(params.alpha) * float(params.epsilon) / 2
    if family == "count":
        return max(1, math.ceil(((threshold + margin) / (2 * g)) ** 2))
    n = params.num_elements or params.size
    return max(2, math.ceil((threshold + margin) * math.sqrt(n) / (4 * g * g)))


def candidate_actions(env: Any, params: Any, candidate: jax.Array) -> jax.Array:
    """[H] int32 the actions of one episode at `candidate`: its base-A digits, then parity 0."""
    a_count, horizon = params.num_actions, env.horizon(params)
    digits = horizon - 1 if isinstance(env, PaninskiLock) else horizon
    powers = a_count ** jnp.arange(digits - 1, -1, -1, dtype=jnp.int32)
    spelled = (candidate // powers) % a_count
    return jnp.concatenate([spelled, jnp.zeros(horizon - digits, jnp.int32)]).astype(jnp.int32)


def play_episode(env: Any, params: Any, actions: jax.Array, key: jax.Array) -> tuple[Any, ...]:
    """One episode of fixed actions [H]: (symbols [H] emitted after each action, return)."""
    _, state = env.reset_env(key, params)

    def step(state: Any, xs: tuple[jax.Array, jax.Array]) -> tuple[Any, tuple[jax.Array, ...]]:
        k, a = xs
        _, state, reward, _, _ = env.step_env(k, state, a, params)
        return state, (state.symbol, reward)

    keys = jax.random.split(key, actions.shape[0])
    _, (symbols, rewards) = jax.lax.scan(step, state, (keys, actions))
    return symbols, rewards.sum()


def visit_statistics(
    env: Any, params: Any, family: str, candidate: jax.Array, m: int, half: int, key: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """(Z, pair sums [n/2]) from m episodes at `candidate` (pair sums zero for "count")."""
    actions = candidate_actions(env, params, candidate)
    symbols, wins = jax.vmap(lambda k: play_episode(env, params, actions, k))(
        jax.random.split(key, m)
    )  # [m, H], [m]
    s = 2.0 * wins - 1.0  # [m] ±1: w or l
    if family == "count":
        return jnp.sum(s) / jnp.sqrt(jnp.float32(m)), jnp.zeros(half)
    k = env.horizon(params) - 1
    pair = symbols[:, k - 1] - k  # the pair revealed after the k-th action
    sums = jnp.zeros(half).at[pair].add(s)  # [n/2]
    counts = jnp.zeros(half).at[pair].add(1.0)
    collisions = jnp.sum(counts * (counts - 1) / 2)
    u = jnp.sum((sums**2 - counts) / 2)
    return u / jnp.sqrt(jnp.maximum(collisions, 1.0)), sums


def init_learner(key: jax.Array, num_candidates: int, half: int) -> LearnerState:
    k_order, k_run = jax.random.split(key)
    return LearnerState(
        order=jax.random.permutation(k_order, num_candidates).astype(jnp.int32),
        visit=jnp.int32(0),
        committed=jnp.bool_(False),
        choice=jnp.int32(0),
        commit_visit=jnp.int32(-1),
        pair_sums=jnp.zeros(half, jnp.float32),
        key=k_run,
    )


def learner_visit(
    env: Any, params: Any, family: str, m: int, threshold: float, state: LearnerState
) -> LearnerState:
    half = state.pair_sums.shape[0]
    """One visit: test the next candidate in the order, or keep playing the committed one."""
    key, k_visit = jax.random.split(state.key)
    candidate = jnp.where(
        state.committed, state.choice, state.order[state.visit % state.order.shape[0]]
    )
    z, sums = visit_statistics(env, params, family, candidate, m, half, k_visit)
    fires = ~state.committed & (z >= threshold)
    return LearnerState(
        order=state.order,
        visit=state.visit + 1,
        committed=state.committed | fires,
        choice=jnp.where(fires, candidate, state.choice),
        commit_visit=jnp.where(fires, state.visit, state.commit_visit),
        pair_sums=jnp.where(state.committed | fires, state.pair_sums + sums, state.pair_sums),
        key=key,
    )


def is_secret(env: Any, params: Any, candidate: jax.Array) -> jax.Array:
    """Whether `candidate` is the instance's rewarded one."""
    if isinstance(env, PaninskiLock):
        return candidate == params.secret
    return env.is_secret(candidate, params)


def committed_value(env: Any, params: Any, candidate: jax.Array, parity: jax.Array) -> jax.Array:
    """Exact value of "play `candidate`, then parity[i] on pair i" (parity ignored by bandits)."""
    alpha, epsilon = jnp.float32(params.alpha), jnp.float32(params.epsilon)
    if isinstance(env, PaninskiLock):
        half = parity.shape[0]
        signs = params.theta * (1 - 2 * parity.astype(jnp.float32))
        p_win = 0.5 + epsilon * jnp.sum(signs) / (2 * half)  # P(W) at the secret
        p_win = jnp.where(candidate == params.secret, p_win, 0.5)
        return 0.5 + alpha * (p_win - 0.5)
    return 0.5 + alpha * epsilon / 2 * is_secret(env, params, candidate)


def learner_value(env: Any, params: Any, num_candidates: int, state: LearnerState) -> jax.Array:
    """Exact value of the learner's policy: its commitment, else a uniformly random candidate."""
    parity = (state.pair_sums < 0).astype(jnp.int32)  # θ̂_i = −1 → parity 1
    committed = committed_value(env, params, state.choice, parity)
    v_star = 0.5 + jnp.float32(params.alpha) * jnp.float32(params.epsilon) / 2
    uniform = 0.5 + (v_star - 0.5) / num_candidates  # parity 0 at the secret counts as half
    if isinstance(env, PaninskiLock):
        zero = committed_value(env, params, params.secret, jnp.zeros_like(parity))
        uniform = 0.5 + (zero - 0.5) / num_candidates
    return jnp.where(state.committed, committed, uniform)


def settled(state: LearnerState, passes: np.ndarray) -> bool:
    """All seeds committed and passing at each of the last SETTLE judgements (passes [K, e])."""
    recent = passes[:, -SETTLE:]
    return bool(np.all(np.asarray(state.committed))) and recent.shape[1] == SETTLE and recent.all()


def calibration_budget_run(request: BudgetRequest, log: BudgetLog) -> BudgetRun:
    """The calibration learner on every seed (vmapped), judged exactly at each budget."""
    check_fields("calibration agent_params", request.agent_params, DEFAULTS)
    settings = {**DEFAULTS, **request.agent_params}
    unit, criterion, num_seeds = request.unit, request.criterion, request.num_seeds
    if unit != "episodes" or criterion.on != "exact":
        raise ValueError(
            'the calibration learner counts episodes and is judged exactly: set unit = "episodes" '
            f'and criterion = "exact" (got unit = "{unit}", criterion = "{criterion.on}")'
        )
    env, params = request.env.env, request.env.params
    family = family_of(env)
    if settings["margin"] is None:
        settings["margin"] = MARGINS[family]
    m = visit_episodes(family, params, settings["threshold"], settings["margin"])
    num_candidates = params.size**2 if isinstance(env, PerRoomSecret) else params.size
    half = (params.num_elements or params.size) // 2 if family == "collision" else 1
    v_star = env.optimal_value(params)

    visit = partial(learner_visit, env, params, family, m, float(settings["threshold"]))
    advance = jax.jit(
        jax.vmap(lambda s, n: jax.lax.fori_loop(0, n, lambda _, x: visit(x), s), (0, None))
    )
    value = jax.jit(jax.vmap(partial(learner_value, env, params, num_candidates)))
    secret_of = lambda s: s.committed & is_secret(env, params, s.choice)
    keys = jax.random.split(jax.random.key(request.seed), num_seeds)
    state = jax.vmap(lambda k: init_learner(k, num_candidates, half))(keys)

    budgets = np.asarray(request.budgets, np.int64)
    metric = np.zeros((num_seeds, budgets.size))  # [K, E]
    label, done = request.label, 0
    stopped_at: int | None = None
    for e, budget in enumerate(budgets):
        visits = int(budget // m)  # a visit is m episodes; never more than the budget
        if stopped_at is None and visits > done:
            state = advance(state, visits - done)
            done = visits
        if stopped_at is None:
            judged = v_star - np.asarray(value(state), np.float64)
        metric[:, e] = judged
        if stopped_at is None and settled(state, criterion.passes(metric[:, : e + 1])):
            # Every seed has committed and passed its last SETTLE judgements: a committed
            # learner only adds samples of its own candidate, so later budgets repeat this one.
            stopped_at = int(budget)
        passed = criterion.passes(judged)
        log(
            label,
            int(budget),
            {
                "scaling/pass_fraction": float(passed.mean()),
                "scaling/metric_mean": float(judged.mean()),
            },
        )
    return BudgetRun(
        budgets=budgets,
        unit=unit,
        metric=metric,
        passes=criterion.passes(metric),
        criterion=criterion,
        extra={
            "visit_episodes": m,
            "candidates": num_candidates,
            "optimal_value": v_star,
            "commit_episodes": [
                None if v < 0 else int((v + 1) * m) for v in np.asarray(state.commit_visit)
            ],
            "stopped_at": stopped_at,
            "committed_to_secret": int(np.sum(np.asarray(jax.vmap(secret_of)(state)))),
            **settings,
        },
    )


def optimal_budget_run(request: BudgetRequest, log: BudgetLog) -> BudgetRun:
    """The ceiling: the belief-tree DP's optimal policy, judged by its exact value at every budget
    (it needs no samples, so it passes from the first budget on)."""
    from scalegym.envs.pomdp import exact

    check_fields("optimal agent_params", request.agent_params, ())
    env, params, criterion = request.env.env, request.env.params, request.criterion
    if not hasattr(env, "tabular"):
        raise ValueError(f"{request.env.id}: the optimal agent needs a family with exact tools")
    model = env.tabular(params)
    _, policy = exact.optimal_policy(model)
    gap = env.optimal_value(params) - exact.policy_value(model, policy)
    budgets = np.asarray(request.budgets, np.int64)
    metric = np.full((request.num_seeds, budgets.size), gap)
    scalars = {"scaling/pass_fraction": float(criterion.passes(np.array([gap]))[0])}
    scalars["scaling/metric_mean"] = gap
    for budget in budgets:
        log(request.label, int(budget), scalars)
    passes = criterion.passes(metric)
    return BudgetRun(budgets, request.unit, metric, passes, criterion, {"gap": gap})
