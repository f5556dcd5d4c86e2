"""Search planners on the env's own model: random shooting (best-of-N), CEM-MPC and beam search.

Each planner is a frozen, hashable `flax.struct.dataclass` whose fields are all static (changing
one recompiles) and implements the protocol of `scalegym.agents.planners.planning`: `init`, `act`,
`observe`. `budget` is the number of simulated env steps per decision; `Decision.sim_steps`
reports every `model_step` a decision computed, steps past a simulated episode's end included
(their rewards are dropped), so it is a host-known constant per planner and env, never above
`budget`; `Decision.sim_work` sums those steps' work (ThreeBody: Hermite substeps). All model
keys come from the `key` given to `act`.

The model steps the true state, so on a partially observed env these planners are oracles: build
them with `oracle=True` there, which labels them so in reports.

Shapes: one env (no batch axis), as in `planning`; N sequences, P population, H horizon,
A actions, K beam nodes.
"""

from __future__ import annotations

from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import struct

from scalegym.agents.planners.planning import Decision, model_step, rollout
from scalegym.core.fields import is_int, is_number, require


def _check_common(planner: str, budget: Any, discount: Any) -> None:
    require(is_int(budget, 1), planner, "budget", budget, "integers >= 1")
    require(
        is_number(discount) and 0.0 < discount <= 1.0,
        planner,
        "discount",
        discount,
        "0 < discount <= 1",
    )


def _returns(
    env: Any, params: Any, state: Any, sequences: jax.Array, key: jax.Array, discount: float
) -> tuple[jax.Array, jax.Array]:
    """Model returns of the action sequences [N, H] from `state`, one key each: ([N] float32,
    their work summed [] int32)."""
    keys = jax.random.split(key, sequences.shape[0])  # [N]
    one = lambda actions, k: rollout(env, params, state, actions, k, discount)
    returns, _, work = jax.vmap(one)(sequences, keys)
    return returns, work.sum()


@struct.dataclass
class RandomShooting:
    """Random-shooting MPC: the first action of the best of budget // horizon random sequences.

    Every decision rolls out N uniformly random sequences of `horizon` actions in the model
    (vmapped) and takes the first action of the one with the highest discounted return (ties: the
    lowest index). With `horizon=1` it is best-of-N over first actions. No memory.
    """

    name: ClassVar[str] = "random-shooting"
    budget: int = struct.field(pytree_node=False)
    horizon: int = struct.field(pytree_node=False, default=8)
    discount: float = struct.field(pytree_node=False, default=1.0)
    oracle: bool = struct.field(pytree_node=False, default=False)

    def __post_init__(self) -> None:
        _check_common("RandomShooting", self.budget, self.discount)
        h = self.horizon
        require(is_int(h, 1), "RandomShooting", "horizon", h, "integers >= 1")
        require(
            h <= self.budget,
            "RandomShooting",
            "horizon",
            h,
            f"at most budget={self.budget} (one sequence must fit the budget)",
        )

    @property
    def num_sequences(self) -> int:
        return self.budget // self.horizon

    def init(self, env: Any, params: Any, obs: Any, state: Any, key: jax.Array) -> None:
        return None

    def act(
        self, env: Any, params: Any, memory: None, obs: Any, state: Any, key: jax.Array
    ) -> tuple[Decision, None]:
        n, h = self.num_sequences, self.horizon
        k_seq, k_model = jax.random.split(key)
        sequences = jax.random.randint(k_seq, (n, h), 0, env.num_actions, jnp.int32)  # [N, H]
        returns, work = _returns(env, params, state, sequences, k_model, self.discount)  # [N]
        action = sequences[jnp.argmax(returns), 0]
        return Decision(action=action, sim_steps=jnp.int32(n * h), sim_work=work), memory

    def observe(self, env: Any, params: Any, memory: None, action: jax.Array, obs: Any) -> None:
        return memory


@struct.dataclass
class CEM:
    """Cross-entropy method over per-step categorical action distributions [H, A] (CEM-MPC).

    Each of `iterations` rounds samples `population` sequences from the distribution, rolls them
    out in the model, and moves the distribution to the elites' action frequencies:
    `probs ← smoothing·probs + (1 − smoothing)·freq(elites)`, with `num_elites =
    max(1, int(elite_frac·population))`. The action taken is the first action of the best
    sequence sampled in any round (not the argmax of the final distribution): a sequence found
    is never lost to averaging. Warm start: the memory is the final distribution shifted by one
    step, the new last step uniform, then mixed with the uniform distribution by `uniform_mix`
    (0: the shift alone) so that a distribution that collapsed onto a bad plan can leave it, as
    CEM-MPC resets its variance at each decision (on 5×5 Rearrange-v1 at budget 256 the shift
    alone succeeded in 20 of 32 episodes, `uniform_mix=0.3` in 29). `population=None` takes as
    many as the budget allows, budget // (iterations·horizon); population·iterations·horizon
    must not exceed `budget`.
    """

    name: ClassVar[str] = "cem"
    budget: int = struct.field(pytree_node=False)
    horizon: int = struct.field(pytree_node=False, default=8)
    population: int | None = struct.field(pytree_node=False, default=None)
    iterations: int = struct.field(pytree_node=False, default=4)
    elite_frac: float = struct.field(pytree_node=False, default=0.1)
    discount: float = struct.field(pytree_node=False, default=1.0)
    smoothing: float = struct.field(pytree_node=False, default=0.0)
    uniform_mix: float = struct.field(pytree_node=False, default=0.3)
    oracle: bool = struct.field(pytree_node=False, default=False)

    def __post_init__(self) -> None:
        _check_common("CEM", self.budget, self.discount)
        for field in ("horizon", "iterations"):
            value = getattr(self, field)
            require(is_int(value, 1), "CEM", field, value, "integers >= 1")
        p = self.population
        require(
            p is None or is_int(p, 1),
            "CEM",
            "population",
            p,
            "integers >= 1, or None for budget // (iterations·horizon)",
        )
        per_sample = self.iterations * self.horizon
        if p is None:
            require(
                per_sample <= self.budget,
                "CEM",
                "budget",
                self.budget,
                f"at least iterations·horizon = {per_sample} (one sample per round)",
            )
        else:
            require(
                p * per_sample <= self.budget,
                "CEM",
                "population",
                p,
                f"at most budget // (iterations·horizon) = {self.budget // per_sample} "
                f"(population·iterations·horizon = {p * per_sample} exceeds budget={self.budget}; "
                "lower population, iterations or horizon)",
            )
        f = self.elite_frac
        require(
            is_number(f) and 0.0 < f <= 1.0,
            "CEM",
            "elite_frac",
            f,
            "0 < elite_frac <= 1",
        )
        for field in ("smoothing", "uniform_mix"):
            value = getattr(self, field)
            require(
                is_number(value) and 0.0 <= value < 1.0,
                "CEM",
                field,
                value,
                f"0 <= {field} < 1",
            )

    @property
    def population_size(self) -> int:
        if self.population is not None:
            return self.population
        return self.budget // (self.iterations * self.horizon)

    @property
    def num_elites(self) -> int:
        return max(1, int(self.elite_frac * self.population_size))

    def init(self, env: Any, params: Any, obs: Any, state: Any, key: jax.Array) -> jax.Array:
        a = env.num_actions
        return jnp.full((self.horizon, a), 1.0 / a, jnp.float32)  # [H, A]

    def act(
        self, env: Any, params: Any, memory: jax.Array, obs: Any, state: Any, key: jax.Array
    ) -> tuple[Decision, jax.Array]:
        p, h, a = self.population_size, self.horizon, env.num_actions

        def round_(carry: tuple, k: jax.Array) -> tuple[tuple, None]:
            probs, best_return, best_action, work = carry  # [H, A], [], [], []
            k_sample, k_model = jax.random.split(k)
            sequences = jax.random.categorical(k_sample, jnp.log(probs), shape=(p, h))  # [P, H]
            returns, spent = _returns(env, params, state, sequences, k_model, self.discount)
            _, elites = jax.lax.top_k(returns, self.num_elites)  # [E]
            freq = jax.nn.one_hot(sequences[elites], a).mean(axis=0)  # [H, A]
            probs = self.smoothing * probs + (1.0 - self.smoothing) * freq
            i = jnp.argmax(returns)
            better = returns[i] > best_return  # ties keep the earlier round's sequence
            best_return = jnp.where(better, returns[i], best_return)
            best_action = jnp.where(better, sequences[i, 0], best_action)
            return (probs, best_return, best_action, work + spent), None

        init = (memory, jnp.float32(-jnp.inf), jnp.int32(0), jnp.int32(0))
        keys = jax.random.split(key, self.iterations)  # [I]
        (probs, _, action, work), _ = jax.lax.scan(round_, init, keys)
        uniform = jnp.full((1, a), 1.0 / a, jnp.float32)
        shifted = jnp.concatenate([probs[1:], uniform], axis=0)  # [H, A]
        shifted = (1.0 - self.uniform_mix) * shifted + self.uniform_mix / a
        sim_steps = jnp.int32(p * self.iterations * h)
        decision = Decision(action=action.astype(jnp.int32), sim_steps=sim_steps, sim_work=work)
        return decision, shifted

    def observe(
        self, env: Any, params: Any, memory: jax.Array, action: jax.Array, obs: Any
    ) -> jax.Array:
        return memory


def beam_schedule(budget: int, width: int, num_actions: int) -> tuple[tuple[int, ...], int, int]:
    """Levels a beam search can afford: (nodes expanded at each ramp level, full levels, steps).

    The first level expands the root (A steps; needs budget >= A); the beam then grows by a
    factor A per level until it holds `width` nodes (the ramp: the root's level and at most
    ~log_A(width) more, unrolled), after which every level expands `width` nodes (width·A steps,
    under `lax.scan`).
    """
    require(
        budget >= num_actions,
        "BeamSearch",
        "budget",
        budget,
        f"at least the env's number of actions, {num_actions} (one level)",
    )
    ramp, used, k = [1], num_actions, min(width, num_actions)  # the root's level
    while k < width and used + k * num_actions <= budget:
        ramp.append(k)
        used += k * num_actions
        grown = min(width, k * num_actions)
        if grown == k:  # one action: the beam cannot grow
            break
        k = grown
    full = (budget - used) // (k * num_actions)
    return tuple(ramp), full, used + full * k * num_actions


@struct.dataclass
class BeamSearch:
    """Breadth-first beam search over action sequences, by cumulative discounted model reward.

    Every kept node is expanded by all A actions; the `width` best children are kept (ties: the
    lower index, node-major then action). A node whose simulated episode ended keeps its value
    and stops expanding: of its A children only one survives, with the parent's value. Depth is as
    many levels as the budget allows (`beam_schedule`: the root's level costs A steps, a full
    level width·A); the action taken is the first action of the best final node. No memory.
    """

    name: ClassVar[str] = "beam"
    budget: int = struct.field(pytree_node=False)
    width: int = struct.field(pytree_node=False, default=8)
    discount: float = struct.field(pytree_node=False, default=1.0)
    oracle: bool = struct.field(pytree_node=False, default=False)

    def __post_init__(self) -> None:
        _check_common("BeamSearch", self.budget, self.discount)
        w = self.width
        require(is_int(w, 1), "BeamSearch", "width", w, "integers >= 1")

    def init(self, env: Any, params: Any, obs: Any, state: Any, key: jax.Array) -> None:
        return None

    def act(
        self, env: Any, params: Any, memory: None, obs: Any, state: Any, key: jax.Array
    ) -> tuple[Decision, None]:
        a = env.num_actions
        ramp, full, sim_steps = beam_schedule(self.budget, self.width, a)

        def expand(beam: tuple, scale: jax.Array, k: jax.Array, root: bool) -> tuple:
            states, values, dones, firsts, work = beam  # [K] pytree, [K], [K] bool, [K], []
            n = values.shape[0] * a
            parent = jnp.repeat(jnp.arange(values.shape[0]), a)  # [K·A]
            actions = jnp.tile(jnp.arange(a, dtype=jnp.int32), values.shape[0])  # [K·A]
            parents = jax.tree.map(lambda x: x[parent], states)
            step = lambda s, act, kk: model_step(env, params, s, act, kk)
            nxt, reward, done, cost = jax.vmap(step)(parents, actions, jax.random.split(k, n))
            ended = dones[parent]  # [K·A]
            child_values = values[parent] + jnp.where(ended, 0.0, scale * reward)
            child_values = jnp.where(ended & (actions != 0), -jnp.inf, child_values)
            child_firsts = actions if root else firsts[parent]
            top, keep = jax.lax.top_k(child_values, min(self.width, n))  # [K']
            children = jax.tree.map(lambda x: x[keep], nxt)
            return children, top, (ended | done)[keep], child_firsts[keep], work + cost.sum()

        one = lambda x: jnp.asarray(x)[None]
        root = (jnp.zeros(1), jnp.zeros(1, bool), jnp.zeros(1, jnp.int32), jnp.int32(0))
        beam = (jax.tree.map(one, state), *root)
        keys = jax.random.split(key, len(ramp) + 1)
        scale = jnp.float32(1.0)
        for level in range(len(ramp)):  # ~log_A(width) levels until the beam is full
            beam = expand(beam, scale, keys[level], root=level == 0)
            scale = scale * self.discount

        def level_(carry: tuple, k: jax.Array) -> tuple[tuple, None]:
            beam, scale = carry
            return (expand(beam, scale, k, root=False), scale * self.discount), None

        if full:  # else the budget ran out on the ramp, below `width` nodes
            level_keys = jax.random.split(keys[-1], full)  # [full]
            (beam, _), _ = jax.lax.scan(level_, (beam, scale), level_keys)
        _, values, _, firsts, work = beam
        action = firsts[jnp.argmax(values)]
        return Decision(action=action, sim_steps=jnp.int32(sim_steps), sim_work=work), memory

    def observe(self, env: Any, params: Any, memory: None, action: jax.Array, obs: Any) -> None:
        return memory
