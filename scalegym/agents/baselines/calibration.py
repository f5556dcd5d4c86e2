"""A calibration learner with a known rate, and the exact-optimal policy, as budget agents.

Over 400 lines: the count and collision tests, the per-room learner and their exact values
share state.

The calibration learner validates the scaling harness: on the revealing families its sample
complexity is known by construction, so a fitted exponent far from it means the harness is wrong.
It visits the S candidates one at a time in a random order; each visit plays `m` episodes of that
candidate through the env and runs one test on them:

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
U ~ Uniform(0, 1]: N ∝ S/g² (RevealingBandit) and S·√n/g² = S^1.5/g² (PaninskiLock with n = S).

PerRoomSecret draws each episode's room and shows it, so the learner cannot choose the room: it
keeps one such count-test learner per room (its own order of the room's C keys, its own visit of
m episodes), reads the room from the episode's first observation and plays that room's current
key. A room gets 1/K of the episodes and needs m·U·C of its own, and the value averages over the
rooms, so N ∝ K·C/g² = K²/g² (C = K).

Its policy is judged exactly: before committing (in a room) it has no policy of its own and is
scored as a uniformly random candidate; after, the value of its committed policy in closed form
(`committed_value`, checked against `exact.policy_value` in the tests). A request's `instances`
(params stacked [K, ...] along the seed axis) give each seed its own instance: seed k learns and
is judged, with its own V*, on instance k.
"""

from __future__ import annotations

import math
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
# power ≥ 99% at the secret (see the docstring); "rooms" runs the count test in each room
MARGINS = {"count": 2.0, "collision": 14.0, "rooms": 2.0}
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


@struct.dataclass
class RoomLearnerState:
    """One seed's PerRoomSecret learner: a count-test learner per room; seeds vmap over it."""

    order: jax.Array  # [K, C] int32 each room's visiting order of its keys
    visit: jax.Array  # [K] int32 visits completed in each room
    played: jax.Array  # [K] int32 episodes of the room's current visit
    wins: jax.Array  # [K] float32 Σs (±1 for w/l) of the room's current visit
    committed: jax.Array  # [K] bool
    choice: jax.Array  # [K] int32 each room's committed key
    commit_episode: jax.Array  # [K] int32 the episodes played when the room committed (−1 before)
    episodes: jax.Array  # [] int32 episodes played
    key: jax.Array  # PRNG key


def family_of(env: Any) -> str:
    """ "collision" for PaninskiLock, "count" for RevealingBandit, "rooms" for PerRoomSecret;
    else a clear error."""
    if isinstance(env, PaninskiLock):
        return "collision"
    if isinstance(env, PerRoomSecret):
        return "rooms"
    if isinstance(env, RevealingBandit):
        return "count"
    raise ValueError(
        f"the calibration learner needs a revealing family with a known rate; got "
        f"{type(env).__name__}; allowed: PaninskiLock, RevealingBandit, PerRoomSecret"
    )


def visit_episodes(family: str, params: Any, threshold: float, margin: float) -> int:
    """m, the episodes of one visit, from the test's mean drift at the gap g = αε/2."""
    g = float(params.alpha) * float(params.epsilon) / 2
    if family in ("count", "rooms"):
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


def play_from(
    env: Any, params: Any, state: Any, actions: jax.Array, key: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """The rest of an episode from `state` with fixed actions [H]: (symbols [H], return)."""

    def step(state: Any, xs: tuple[jax.Array, jax.Array]) -> tuple[Any, tuple[jax.Array, ...]]:
        k, a = xs
        _, state, reward, _, _ = env.step_env(k, state, a, params)
        return state, (state.symbol, reward)

    keys = jax.random.split(key, actions.shape[0])
    # H is a few steps: unrolled, a loop of episodes holds no inner loop
    _, (symbols, rewards) = jax.lax.scan(step, state, (keys, actions), unroll=True)
    return symbols, rewards.sum()


def play_episode(env: Any, params: Any, actions: jax.Array, key: jax.Array) -> tuple[Any, ...]:
    """One episode of fixed actions [H]: (symbols [H] emitted after each action, return)."""
    k_reset, k_steps = jax.random.split(key)
    _, state = env.reset_env(k_reset, params)
    return play_from(env, params, state, actions, k_steps)


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
    env: Any, family: str, m: int, threshold: float, state: LearnerState, params: Any
) -> LearnerState:
    """One visit: test the next candidate in the order, or keep playing the committed one."""
    half = state.pair_sums.shape[0]
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


def init_room_learners(seed: int, num_seeds: int, rooms: int) -> RoomLearnerState:
    """Every seed's PerRoomSecret learner, leaves [seeds, ...]; the rooms' orders of their keys
    are shuffled on the host (NumPy: nothing to compile for each K)."""
    rng = np.random.default_rng([seed, 5])
    key_ids = np.broadcast_to(np.arange(rooms, dtype=np.int32), (num_seeds, rooms, rooms))
    zeros = np.zeros((num_seeds, rooms), np.int32)
    return RoomLearnerState(
        order=jnp.asarray(rng.permuted(key_ids, axis=2)),  # [seeds, K, C], C = K
        visit=jnp.asarray(zeros),
        played=jnp.asarray(zeros),
        wins=jnp.zeros((num_seeds, rooms), jnp.float32),
        committed=jnp.zeros((num_seeds, rooms), bool),
        choice=jnp.asarray(zeros),
        commit_episode=jnp.full((num_seeds, rooms), -1, jnp.int32),
        episodes=jnp.zeros(num_seeds, jnp.int32),
        key=jax.random.split(jax.random.key(seed), num_seeds),
    )


def room_episode(
    env: Any, m: int, threshold: float, state: RoomLearnerState, params: Any
) -> RoomLearnerState:
    """One episode: the env draws the room, the learner reads it from the first observation and
    plays that room's committed key, else the key its current visit tests."""
    key, k_reset, k_steps = jax.random.split(state.key, 3)
    obs, env_state = env.reset_env(k_reset, params)
    room = jnp.argmax(obs).astype(jnp.int32)  # the first observation shows the room
    num_keys = state.order.shape[1]
    committed = state.committed[room]
    candidate = jnp.where(
        committed, state.choice[room], state.order[room, state.visit[room] % num_keys]
    )
    _, win = play_from(env, params, env_state, candidate_actions(env, params, candidate), k_steps)
    played, wins = state.played[room] + 1, state.wins[room] + 2.0 * win - 1.0
    ends = ~committed & (played == m)  # the visit's m-th episode: test it
    fires = ends & (wins / jnp.sqrt(jnp.float32(m)) >= threshold)
    restart = ends | committed
    return RoomLearnerState(
        order=state.order,
        visit=state.visit.at[room].add(ends.astype(jnp.int32)),
        played=state.played.at[room].set(jnp.where(restart, 0, played)),
        wins=state.wins.at[room].set(jnp.where(restart, 0.0, wins)),
        committed=state.committed.at[room].set(committed | fires),
        choice=state.choice.at[room].set(jnp.where(fires, candidate, state.choice[room])),
        commit_episode=state.commit_episode.at[room].set(
            jnp.where(fires, state.episodes + 1, state.commit_episode[room])
        ),
        episodes=state.episodes + 1,
        key=key,
    )


def is_secret(env: Any, params: Any, candidate: jax.Array) -> jax.Array:
    """Whether `candidate` is the instance's rewarded one (PerRoomSecret: [K], room by room)."""
    if isinstance(env, PaninskiLock):
        return candidate == params.secret
    if isinstance(env, PerRoomSecret):
        return candidate == params.keys
    return env.is_secret(candidate, params)


def committed_value(env: Any, params: Any, candidate: jax.Array, parity: jax.Array) -> jax.Array:
    """Exact value of "play `candidate`, then parity[i] on pair i" (parity ignored by bandits);
    PerRoomSecret: candidate [K] is the key played in each room."""
    alpha, epsilon = jnp.float32(params.alpha), jnp.float32(params.epsilon)
    if isinstance(env, PaninskiLock):
        half = parity.shape[0]
        signs = params.theta * (1 - 2 * parity.astype(jnp.float32))
        p_win = 0.5 + epsilon * jnp.sum(signs) / (2 * half)  # P(W) at the secret
        p_win = jnp.where(candidate == params.secret, p_win, 0.5)
        return 0.5 + alpha * (p_win - 0.5)
    return 0.5 + alpha * epsilon / 2 * jnp.mean(is_secret(env, params, candidate))


def learner_value(env: Any, num_candidates: int, state: LearnerState, params: Any) -> jax.Array:
    """Exact value of the learner's policy: its commitment, else a uniformly random candidate."""
    parity = (state.pair_sums < 0).astype(jnp.int32)  # θ̂_i = −1 → parity 1
    committed = committed_value(env, params, state.choice, parity)
    v_star = 0.5 + jnp.float32(params.alpha) * jnp.float32(params.epsilon) / 2
    uniform = 0.5 + (v_star - 0.5) / num_candidates  # parity 0 at the secret counts as half
    if isinstance(env, PaninskiLock):
        zero = committed_value(env, params, params.secret, jnp.zeros_like(parity))
        uniform = 0.5 + (zero - 0.5) / num_candidates
    return jnp.where(state.committed, committed, uniform)


def room_learner_value(env: Any, state: RoomLearnerState, params: Any) -> jax.Array:
    """Exact value of the PerRoomSecret learner's policy: the average over rooms of its
    committed key's value, or a uniformly random key's where the room has not committed."""
    g = jnp.float32(params.alpha) * jnp.float32(params.epsilon) / 2
    hit = jnp.where(state.committed, is_secret(env, params, state.choice), 1.0 / params.size)
    return 0.5 + g * jnp.mean(hit)


def settled(state: Any, passes: np.ndarray) -> bool:
    """All seeds (and rooms) committed and passing at each of the last SETTLE judgements
    (passes [K, e])."""
    recent = passes[:, -SETTLE:]
    return bool(np.all(np.asarray(state.committed))) and recent.shape[1] == SETTLE and recent.all()


def instance_of(instances: Any, seed: int) -> Any:
    """Seed `seed`'s instance of params stacked [K, ...] along the seed axis, on the host:
    scalars as Python numbers (as `make_params` validates them), arrays as NumPy."""
    take = lambda x: np.asarray(x)[seed].item() if np.ndim(x) == 1 else np.asarray(x)[seed]
    return jax.tree.map(take, instances)


def seed_instances(request: BudgetRequest) -> tuple[Any, int | None, list[Any]]:
    """(params for the vmap, their vmap axis, each seed's own params): `request.instances`
    [K, ...] vmapped along the seeds, else `request.env.params` shared by all (axis None)."""
    params, num_seeds = request.env.params, request.num_seeds
    if request.instances is None:
        return params, None, [params] * num_seeds
    leading = {np.shape(leaf)[:1] for leaf in jax.tree.leaves(request.instances)}
    if leading != {(num_seeds,)}:
        raise ValueError(
            f"{request.label}: instances must stack one instance per seed along the first axis "
            f"of every leaf ({num_seeds} seeds); got leading axes {sorted(leading)}"
        )
    return request.instances, 0, [instance_of(request.instances, k) for k in range(num_seeds)]


def calibration_budget_run(request: BudgetRequest, log: BudgetLog) -> BudgetRun:
    """The calibration learner on every seed (vmapped, each with its instance when the request
    has `instances`), judged exactly at each budget against its instance's V*."""
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
    params_batch, params_axis, per_seed = seed_instances(request)
    for field in ("alpha", "epsilon"):  # m is one static length for every seed
        values = [float(getattr(p, field)) for p in per_seed]  # stacked leaves are float32
        if not np.allclose(values, float(getattr(params, field)), rtol=1e-6, atol=0.0):
            raise ValueError(
                f"{request.label}: the calibration learner needs one {field} for every instance "
                f"(its visit length depends on it); instances differ from {getattr(params, field)}"
            )
    m = visit_episodes(family, params, settings["threshold"], settings["margin"])
    threshold = float(settings["threshold"])
    v_star = np.array([env.optimal_value(p) for p in per_seed], np.float64)  # [K]
    if family == "rooms":
        # One loop step is one episode: the env draws the room, so visits interleave.
        step_of = lambda s, p: room_episode(env, m, threshold, s, p)
        value_of = lambda s, p: room_learner_value(env, s, p)
        state = init_room_learners(request.seed, num_seeds, params.size)
        per_step, num_candidates = 1, params.size
    else:
        num_candidates = params.size
        half = (params.num_elements or params.size) // 2 if family == "collision" else 1
        step_of = lambda s, p: learner_visit(env, family, m, threshold, s, p)
        value_of = lambda s, p: learner_value(env, num_candidates, s, p)
        keys = jax.random.split(jax.random.key(request.seed), num_seeds)
        state = jax.jit(jax.vmap(lambda k: init_learner(k, num_candidates, half)))(keys)
        per_step = m  # a visit is m episodes; never more than the budget

    advance = jax.jit(
        jax.vmap(
            lambda s, p, n: jax.lax.fori_loop(0, n, lambda _, x: step_of(x, p), s),
            (0, params_axis, None),
        )
    )
    value = jax.jit(jax.vmap(value_of, (0, params_axis)))

    budgets = np.asarray(request.budgets, np.int64)
    metric = np.zeros((num_seeds, budgets.size))  # [K, E]
    label, done = request.label, 0
    stopped_at: int | None = None
    for e, budget in enumerate(budgets):
        steps = int(budget // per_step)
        if stopped_at is None and steps > done:
            state = advance(state, params_batch, steps - done)
            done = steps
        if stopped_at is None:
            judged = v_star - np.asarray(value(state, params_batch), np.float64)
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
    on_secret = jax.vmap(lambda s, p: s.committed & is_secret(env, p, s.choice), (0, params_axis))
    if family == "rooms":  # the episodes by which every room had committed
        commits = np.asarray(state.commit_episode)  # [K seeds, K rooms]
        commit_episodes = [None if c.min() < 0 else int(c.max()) for c in commits]
    else:
        commit_episodes = [
            None if v < 0 else int((v + 1) * m) for v in np.asarray(state.commit_visit)
        ]
    secret = np.asarray(on_secret(state, params_batch)).reshape(num_seeds, -1).all(axis=1)
    return BudgetRun(
        budgets=budgets,
        unit=unit,
        metric=metric,
        passes=criterion.passes(metric),
        criterion=criterion,
        extra={
            "visit_episodes": m,
            "candidates": num_candidates,
            "optimal_value": float(v_star[0]) if np.all(v_star == v_star[0]) else v_star.tolist(),
            "commit_episodes": commit_episodes,
            "stopped_at": stopped_at,
            "committed_to_secret": int(secret.sum()),
            **settings,
        },
    )


def optimal_budget_run(request: BudgetRequest, log: BudgetLog) -> BudgetRun:
    """The ceiling: the belief-tree DP's optimal policy, judged by its exact value at every budget
    (it needs no samples, so it passes from the first budget on); with `instances`, each seed's
    policy is its own instance's, judged against that instance's V*."""
    from scalegym.envs.pomdp import exact

    check_fields("optimal agent_params", request.agent_params, ())
    env, criterion = request.env.env, request.criterion
    if not hasattr(env, "tabular"):
        raise ValueError(f"{request.env.id}: the optimal agent needs a family with exact tools")
    _, _, per_seed = seed_instances(request)
    solved: dict[bytes, float] = {}  # one DP per distinct instance
    gaps = np.zeros(request.num_seeds)  # [K]
    for k, params in enumerate(per_seed):
        instance = b"".join(np.asarray(leaf).tobytes() for leaf in jax.tree.leaves(params))
        if instance not in solved:
            model = env.tabular(params)
            _, policy = exact.optimal_policy(model)
            solved[instance] = env.optimal_value(params) - exact.policy_value(model, policy)
        gaps[k] = solved[instance]
    budgets = np.asarray(request.budgets, np.int64)
    metric = np.repeat(gaps[:, None], budgets.size, axis=1)  # [K, E]
    scalars = {
        "scaling/pass_fraction": float(criterion.passes(gaps).mean()),
        "scaling/metric_mean": float(gaps.mean()),
    }
    for budget in budgets:
        log(request.label, int(budget), scalars)
    passes = criterion.passes(metric)
    extra = {"gap": float(gaps.max()), "gaps": gaps.tolist()}
    return BudgetRun(budgets, request.unit, metric, passes, criterion, extra)
