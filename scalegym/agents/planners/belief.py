"""Planners for the POMDP families: a fair one on belief samples, an oracle on the truth.

Over 400 lines: the fair and the oracle planner share the particle filter and rollouts here.

Shapes: P particles, R rollout slots per action, A actions, H the horizon; one env (no batch axis).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from scalegym.agents.planners import pomcp
from scalegym.agents.planners.planning import Decision, rollout
from scalegym.envs.pomdp.noisy_combination_lock import NoisyCombinationLock
from scalegym.envs.pomdp.paninski_lock import PaninskiLock, element_count
from scalegym.envs.pomdp.per_room_secret import PerRoomSecret
from scalegym.envs.pomdp.revealing_bandit import RevealingBandit
from scalegym.envs.pomdp.tiger import Tiger

PriorSampler = Callable[[jax.Array, Any], Any]  # (key, params) -> params with a drawn secret


def _sign(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    return jnp.where(jax.random.bernoulli(key, 0.5, shape), 1.0, -1.0).astype(jnp.float32)


def _paninski_prior(key: jax.Array, params: Any) -> Any:
    """secret ~ U{0..S−1}, θ ~ U{±1}^(n/2): `paninski_lock.draw_secret`'s distribution."""
    k_secret, k_theta = jax.random.split(key)
    half = element_count(params) // 2
    secret = jax.random.randint(k_secret, (), 0, params.size, jnp.int32)
    return params.replace(secret=secret, theta=_sign(k_theta, (half,)), instance_seed=0)


def _bandit_prior(key: jax.Array, params: Any) -> Any:
    secret = jax.random.randint(key, (), 0, params.size, jnp.int32)
    return params.replace(secret=secret, instance_seed=0)


def _per_room_prior(key: jax.Array, params: Any) -> Any:
    """keys ~ U{0..K−1}^K: `per_room_secret.draw_keys`'s distribution (the room is drawn at
    reset)."""
    keys = jax.random.randint(key, (params.size,), 0, params.size, jnp.int32)
    return params.replace(keys=keys, instance_seed=0)


def _lock_prior(key: jax.Array, params: Any) -> Any:
    combination = jax.random.randint(key, (params.horizon,), 0, params.num_actions, jnp.int32)
    return params.replace(combination=combination, instance_seed=0)


def _no_secret(key: jax.Array, params: Any) -> Any:
    return params  # Tiger: the side is hidden state (drawn at reset), the params hold no secret


PRIORS: tuple[tuple[type, PriorSampler], ...] = (
    (PaninskiLock, _paninski_prior),
    (PerRoomSecret, _per_room_prior),
    (RevealingBandit, _bandit_prior),
    (Tiger, _no_secret),
    (NoisyCombinationLock, _lock_prior),
)


def instance_prior(env: Any, planner: str = "BeliefPlanner") -> PriorSampler:
    """The family's instance prior as a jittable sampler; ValueError naming an unsupported env."""
    for cls, sampler in PRIORS:
        if isinstance(env, cls):
            return sampler
    supported = ", ".join(cls.__name__ for cls, _ in PRIORS)
    name = getattr(env, "name", type(env).__name__)
    raise ValueError(f"{planner} does not support {name}; supported POMDP families: {supported}")


@struct.dataclass
class BeliefMemory:
    """Particles of (instance, hidden state) and what the filter still has to absorb."""

    params: Any  # instance params, leaves [P, ...]: secrets drawn from the prior
    states: Any  # POMDPState, leaves [P]
    time: jax.Array  # [] int32 decisions taken (the planner's own count)
    last_action: jax.Array  # [] int32
    last_obs: jax.Array  # [D] the observation after last_action
    pending: jax.Array  # [] bool: a real step not yet absorbed by the filter
    lost: jax.Array  # [] bool: some update had no proposal matching (particles kept unfiltered)


def _resample(key: jax.Array, match: jax.Array, count: int) -> tuple[jax.Array, jax.Array]:
    """`count` indices drawn uniformly among matching proposals [Q] (all, if none): (idx, lost)."""
    lost = ~jnp.any(match)
    logits = jnp.where(match | lost, 0.0, -jnp.inf)
    return jax.random.categorical(key, logits, shape=(count,)), lost


def _rollouts(
    env: Any,
    params: Any,
    states: Any,
    *,
    num_actions: int,
    slots: int,
    live_per_action: jax.Array,
    horizon: int,
    key: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """Q [A] from rollouts of each action from particles [P] (slot r uses particle r mod P).

    Returns (Q [A], simulated steps []): slots r >= live_per_action are computed and discarded.
    """
    count = jax.tree.leaves(states)[0].shape[0]
    first = jnp.repeat(jnp.arange(num_actions, dtype=jnp.int32), slots)  # [A·R]
    slot = jnp.tile(jnp.arange(slots), num_actions)  # [A·R]
    k_act, k_env = jax.random.split(key)
    tails = jax.random.randint(k_act, (num_actions * slots, horizon), 0, num_actions, jnp.int32)
    actions = jnp.concatenate([first[:, None], tails[:, :-1]], axis=1)  # [A·R, H]

    def one(idx: jax.Array, acts: jax.Array, k: jax.Array) -> tuple[jax.Array, jax.Array]:
        p = jax.tree.map(lambda x: x[idx], params)
        s = jax.tree.map(lambda x: x[idx], states)
        return rollout(env, p, s, acts, k, unroll=True)[:2]  # (return, live steps)

    keys = jax.random.split(k_env, num_actions * slots)
    returns, steps = jax.vmap(one)(slot % count, actions, keys)  # [A·R], [A·R]
    live = slot < live_per_action
    returns = jnp.where(live, returns, 0.0).reshape(num_actions, slots)
    q = returns.sum(axis=1) / jnp.maximum(live_per_action, 1).astype(jnp.float32)
    return q, jnp.sum(jnp.where(live, steps, 0)).astype(jnp.int32)


def _check_budget(env: Any, params: Any, budget: int, owner: str) -> tuple[int, int]:
    """(A, H); ValueError when `budget` cannot try every action once from the first decision."""
    num_actions, horizon = int(env.action_space(params).n), env.fixed_episode_length(params)
    if budget < num_actions * horizon:
        raise ValueError(
            f"{owner}: {budget} simulated steps left for search on {env.name}, which needs at "
            f"least A·H = {num_actions}·{horizon} = {num_actions * horizon} (one simulation per "
            "action from the first decision); raise budget"
        )
    return num_actions, horizon


def _plan(
    env: Any,
    params: Any,
    states: Any,
    time: jax.Array,
    budget: int,
    key: jax.Array,
    owner: str,
) -> Decision:
    """argmax_a Q(a) with `budget` rollout steps spread over the remaining rem = H − time."""
    num_actions, horizon = _check_budget(env, params, budget, owner)
    remaining = jnp.clip(horizon - time, 1, horizon)
    live = budget // (num_actions * remaining)
    q, steps = _rollouts(
        env,
        params,
        states,
        num_actions=num_actions,
        slots=budget // num_actions,
        live_per_action=live,
        horizon=horizon,
        key=key,
    )
    return Decision(action=jnp.argmax(q).astype(jnp.int32), sim_steps=steps)


def _tree_plan(
    env: Any, params: Any, states: Any, time: jax.Array, budget: int, key: jax.Array, **how: Any
) -> Decision:
    """The POMCP-style search (`pomcp.search`; `how`: exploration, max_nodes) from the
    particles: the root's best tried action."""
    _check_budget(env, params, budget, "BeliefPlanner")
    q, visits, steps = pomcp.search(env, params, states, time, budget=budget, key=key, **how)
    return Decision(action=pomcp.root_action(q, visits), sim_steps=steps)


MODELS = ("known", "prior")
SEARCHES = ("tree", "rollouts")


@struct.dataclass
class BeliefPlanner:
    """The fair planner: search from particles (instance, hidden state) of the posterior.

    - `model`: "known" (default) takes the instance in `params` as the model, as V* does: only
      the hidden state is uncertain. "prior" draws the instance too, from the family's prior
      (`instance_prior`, the distribution make() draws the secret from), overwriting every
      secret field (`secret`, `theta`, `keys`, `combination`) and `instance_seed`:
      its value is the Bayes value under the prior. In PaninskiLock, RevealingBandit and
      PerRoomSecret no observation before the last action depends on the secret, so with
      "prior" that value is 1/2 at every budget; Tiger has no secret, the two coincide.
    - `search`: "tree" (default) is the POMCP-style search of `pomcp.py` (UCB1 over
      action–observation histories, one particle per simulation); with model="known" its value
      approaches V* as the budget grows. "rollouts" scores each action by Monte-Carlo rollouts
      (the action, then uniform-random actions to the end; Q(a) the mean; ties: lowest index).
    - The filter: `filter_proposals` model steps propose successors under the real action, those
      that emit the real observation are kept and `num_particles` resampled from them (exact
      posterior sampling as the proposals grow: the symbol is part of the state).

    It reads observations, its own actions and `params`, never `state` (tests hand it garbage).
    `budget` counts simulated env steps per decision exactly: the filter's `filter_proposals`
    (after every real step; the first filter's resets are not steps) plus every search step.
    The tree runs ⌊(budget − filter) / (H − t)⌋ whole simulations at decision t; rollout slots
    are static (`budget // A`), and a decision with `rem` steps left uses the first
    `(budget − filter) // (A · rem)` of each action. `exploration` is UCB1's c for search="tree",
    in reward units; None (default) takes the family's one-step reward span (`reward_span`: 1
    for the families paying in [0, 1], 110 for Tiger), as POMCP sets c to the range of rewards.
    """

    budget: int = struct.field(pytree_node=False, default=256)  # simulated env steps per decision
    num_particles: int = struct.field(pytree_node=False, default=16)  # P
    filter_proposals: int = struct.field(pytree_node=False, default=64)  # Q model steps per update
    model: str = struct.field(pytree_node=False, default="known")  # MODELS
    search: str = struct.field(pytree_node=False, default="tree")  # SEARCHES
    exploration: float | None = struct.field(pytree_node=False, default=None)  # UCB1 c; see below
    max_nodes: int = struct.field(pytree_node=False, default=4096)  # tree nodes (search="tree")
    oracle: bool = struct.field(pytree_node=False, default=False)

    def __post_init__(self) -> None:
        for field in ("budget", "num_particles", "filter_proposals", "max_nodes"):
            value = getattr(self, field)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"BeliefPlanner: {field}={value!r}; allowed: integers >= 1")
        for field, allowed in (("model", MODELS), ("search", SEARCHES)):
            value = getattr(self, field)
            if value not in allowed:
                raise ValueError(f"BeliefPlanner: {field}={value!r}; allowed: {', '.join(allowed)}")
        if self.exploration is not None and (
            not isinstance(self.exploration, int | float) or self.exploration < 0
        ):
            raise ValueError(
                f"BeliefPlanner: exploration={self.exploration!r}; allowed: numbers >= 0, or "
                "None (the family's reward span)"
            )
        if self.filter_proposals < self.num_particles:
            raise ValueError(
                f"BeliefPlanner: filter_proposals={self.filter_proposals} < num_particles="
                f"{self.num_particles}; allowed: >= num_particles (one proposal per particle)"
            )
        if self.oracle:
            raise ValueError("BeliefPlanner is the fair planner: oracle must stay False")

    @property
    def name(self) -> str:
        return (
            f"belief-{self.search}(budget={self.budget}, particles={self.num_particles}, "
            f"model={self.model})"
        )

    def _particles(
        self, env: Any, params: Any, obs: jax.Array, key: jax.Array
    ) -> tuple[Any, Any, jax.Array]:
        """The first filter: instances from the prior, their resets, kept where obs matches."""
        k_prior, k_reset, k_pick = jax.random.split(key, 3)
        count = self.filter_proposals
        if self.model == "prior":
            prior = instance_prior(env)
            drawn = jax.vmap(prior, in_axes=(0, None))(jax.random.split(k_prior, count), params)
        else:  # the instance is the known model: every particle carries it
            drawn = jax.tree.map(lambda x: jnp.broadcast_to(x, (count, *jnp.shape(x))), params)
        seen, states = jax.vmap(env.reset_env)(jax.random.split(k_reset, count), drawn)
        match = jnp.all(seen == obs, axis=tuple(range(1, seen.ndim)))  # [Q]
        idx, lost = _resample(k_pick, match, self.num_particles)
        take = lambda x: x[idx]
        return jax.tree.map(take, drawn), jax.tree.map(take, states), lost

    def init(self, env: Any, params: Any, obs: Any, state: Any, key: jax.Array) -> BeliefMemory:
        instance_prior(env)  # a supported family, or a ValueError naming the env
        particles, states, lost = self._particles(env, params, obs, key)
        return BeliefMemory(
            params=particles,
            states=states,
            time=jnp.int32(0),
            last_action=jnp.int32(0),
            last_obs=jnp.asarray(obs),
            pending=jnp.bool_(False),
            lost=lost,
        )

    def _absorb(self, env: Any, memory: BeliefMemory, key: jax.Array) -> BeliefMemory:
        """Step proposals under the real action; keep those that saw the real observation."""
        k_step, k_pick = jax.random.split(key)
        parent = jnp.arange(self.filter_proposals) % self.num_particles  # [Q]
        params = jax.tree.map(lambda x: x[parent], memory.params)
        states = jax.tree.map(lambda x: x[parent], memory.states)
        keys = jax.random.split(k_step, self.filter_proposals)
        step = lambda k, s, p: env.step_env(k, s, memory.last_action, p)[:2]
        seen, moved = jax.vmap(step)(keys, states, params)
        match = jnp.all(seen == memory.last_obs, axis=tuple(range(1, seen.ndim)))  # [Q]
        idx, lost = _resample(k_pick, match, self.num_particles)
        take = lambda x: x[idx]
        return memory.replace(
            params=jax.tree.map(take, params),
            states=jax.tree.map(take, moved),
            pending=jnp.bool_(False),
            lost=memory.lost | lost,
        )

    def act(
        self, env: Any, params: Any, memory: BeliefMemory, obs: Any, state: Any, key: jax.Array
    ) -> tuple[Decision, BeliefMemory]:
        k_filter, k_plan = jax.random.split(key)
        absorbed = self._absorb(env, memory, k_filter)
        memory = jax.tree.map(
            lambda new, old: jnp.where(memory.pending, new, old), absorbed, memory
        )
        filtered = jnp.where(memory.pending, self.filter_proposals, 0)
        if self.search == "tree":
            scale = env.reward_span(params) if self.exploration is None else self.exploration
            plan = functools.partial(_tree_plan, exploration=scale, max_nodes=self.max_nodes)
        else:
            plan = functools.partial(_plan, owner="BeliefPlanner")
        budget = self.budget - self.filter_proposals
        decision = plan(env, memory.params, memory.states, memory.time, budget, k_plan)
        decision = decision.replace(sim_steps=decision.sim_steps + filtered)
        return decision, memory

    def observe(
        self, env: Any, params: Any, memory: BeliefMemory, action: jax.Array, obs: Any
    ) -> BeliefMemory:
        return memory.replace(
            time=memory.time + 1,
            last_action=jnp.asarray(action, jnp.int32),
            last_obs=jnp.asarray(obs),
            pending=jnp.bool_(True),
        )


@struct.dataclass
class OraclePlanner:
    """The oracle: flat rollouts (`search="rollouts"`) from the true hidden state and params.

    It reads `state` (the node: tree position, element, W/L, Tiger's side) and the instance's
    secret through `params`; its values bound what search can get with full information, not
    what a fair agent can.
    """

    budget: int = struct.field(pytree_node=False, default=256)  # simulated env steps per decision
    oracle: bool = struct.field(pytree_node=False, default=True)

    def __post_init__(self) -> None:
        if not isinstance(self.budget, int) or self.budget < 1:
            raise ValueError(f"OraclePlanner: budget={self.budget!r}; allowed: integers >= 1")
        if not self.oracle:
            raise ValueError("OraclePlanner reads the hidden state: oracle must stay True")

    @property
    def name(self) -> str:
        return f"oracle-rollouts(budget={self.budget}, true hidden state)"

    def init(self, env: Any, params: Any, obs: Any, state: Any, key: jax.Array) -> jax.Array:
        instance_prior(env, "OraclePlanner")
        return jnp.int32(0)  # decisions taken

    def act(
        self, env: Any, params: Any, memory: jax.Array, obs: Any, state: Any, key: jax.Array
    ) -> tuple[Decision, jax.Array]:
        one = lambda x: jnp.asarray(x)[None]
        decision = _plan(
            env,
            jax.tree.map(one, params),
            jax.tree.map(one, state),
            memory,
            self.budget,
            key,
            "OraclePlanner",
        )
        return decision, memory

    def observe(
        self, env: Any, params: Any, memory: jax.Array, action: jax.Array, obs: Any
    ) -> jax.Array:
        return memory + 1


class PlannerHistoryPolicy:
    """A fair planner with fixed keys as an `exact.HistoryPolicy`, for `exact.policy_value`.

    Decision t uses key fold_in(key, t) and init uses fold_in(key, 2³¹ − 1), the same for
    every history, so the planner is one deterministic history policy and its exact value is a
    weighted sum over every reachable history (no Monte-Carlo error; the planner's own
    randomness is fixed by `key`). The planner gets a zeroed `state` (fair planners never read
    it); rows go through in padded chunks of `chunk_rows`, and the two functions compile once per
    (env, planner): params and key are their arguments, so many keys cost one compile.
    """

    def __init__(
        self, env: Any, params: Any, planner: Any, key: jax.Array, *, chunk_rows: int = 64
    ) -> None:
        if getattr(planner, "oracle", False):
            raise ValueError(f"PlannerHistoryPolicy: {planner.name} reads the hidden state")
        self.key, self.chunk_rows, self.num_actions = key, chunk_rows, env.action_space(params).n
        self.params = params
        self._first, self._later = _history_steps(env, planner)

    def initial(self, n: int) -> dict[str, np.ndarray]:
        return {"t": np.zeros(n, np.int32)}

    def __call__(
        self, carry: dict[str, Any], symbols: np.ndarray, inputs: np.ndarray
    ) -> tuple[dict[str, Any], np.ndarray]:
        n = len(symbols)
        t = int(carry["t"][0]) if n else 0
        memories, actions = [], []
        for lo in range(0, n, self.chunk_rows):
            rows = min(self.chunk_rows, n - lo)
            pad = lambda x, lo=lo, rows=rows: _pad_rows(x[lo : lo + rows], self.chunk_rows)
            if "memory" not in carry:
                memory, action = self._first(self.params, self.key, pad(inputs), t)
            else:
                memory, action = self._later(
                    self.params,
                    self.key,
                    jax.tree.map(pad, carry["memory"]),
                    pad(carry["action"]),
                    pad(inputs),
                    t,
                )
            memories.append(jax.tree.map(lambda x, r=rows: np.asarray(x)[:r], memory))
            actions.append(np.asarray(action)[:rows])
        action = np.concatenate(actions)
        memory = jax.tree.map(lambda *xs: np.concatenate(xs), *memories)
        probs = np.zeros((n, self.num_actions))
        probs[np.arange(n), action] = 1.0
        carry = {"t": np.full(n, t + 1, np.int32), "memory": memory, "action": action}
        return carry, probs


@functools.lru_cache(maxsize=32)  # one compile per (env, planner): params and key are arguments
def _history_steps(env: Any, planner: Any) -> tuple[Callable, Callable]:
    """Jitted (first, later) decisions of `planner` over rows of histories (see
    `PlannerHistoryPolicy`): first(params, key, obs [N, D], t), later(params, key, memory [N],
    action [N], obs [N, D], t) → (memory [N], action [N])."""

    def blank(params: Any) -> Any:
        _, state = env.reset_env(jax.random.PRNGKey(0), params)
        return jax.tree.map(jnp.zeros_like, state)

    def first(params: Any, key: jax.Array, obs: jax.Array, t: jax.Array) -> tuple:
        init_key = jax.random.fold_in(key, 2**31 - 1)
        memory = planner.init(env, params, obs, blank(params), init_key)
        decision, memory = planner.act(
            env, params, memory, obs, blank(params), jax.random.fold_in(key, t)
        )
        return memory, decision.action

    def later(params: Any, key: jax.Array, memory: Any, action: Any, obs: Any, t: Any) -> tuple:
        memory = planner.observe(env, params, memory, action, obs)
        decision, memory = planner.act(
            env, params, memory, obs, blank(params), jax.random.fold_in(key, t)
        )
        return memory, decision.action

    return (
        jax.jit(jax.vmap(first, in_axes=(None, None, 0, None))),
        jax.jit(jax.vmap(later, in_axes=(None, None, 0, 0, 0, None))),
    )


def _pad_rows(x: Any, rows: int) -> np.ndarray:
    x = np.asarray(x)
    out = np.zeros((rows, *x.shape[1:]), x.dtype)
    out[: len(x)] = x
    return out
