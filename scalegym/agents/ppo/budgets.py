"""PPO as a budget agent: all seeds trained in compiled chunks, each judged at every budget.

Over 400 lines: the compiled runs, the budget plan and the two judges (fresh envs, exact) belong
together.

One run per value of a scaling cell: K seeds vmapped, seed k on its own env instance (the
request's `instances`, params stacked [K, ...]; else every seed on `env.params`), trained to each
budget in turn and judged there — on fresh envs of its instance (success or return), or exactly
(V* − V(π) on its instance) for a family with exact tools. The chunks take the env params as an
argument, so the geometric budgets share at most two compilations, and so do the values of a
scaling cell that leave the env's shapes alone.

A budget's run never depends on the grid it is judged on. The learning rate is constant
(`anneal_lr=False`, in the recorded config): PPO's linear annealing reaches 0 at the run's last
update, so with it the grid's largest budget would set the rate at every smaller one. Budgets are
whole PPO updates: each asked budget is rounded down to updates (at least one, so the grid starts
at one update), asked budgets that round to the same update are judged once, and the run records
what was trained (`BudgetRun.budgets`; `extra` says which asked budgets each one answers).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from scalegym.agents.budgets import BudgetLog, BudgetRequest, BudgetRun
from scalegym.agents.ppo.algorithm import (
    PPO,
    RunnerState,
    init_runner,
    learner_reward,
    make_ppo,
    ppo_update,
)
from scalegym.agents.ppo.config import PPOConfig, default_config
from scalegym.agents.ppo.evaluation import EVAL_SEED_OFFSET, eval_scalars, evaluate_policy
from scalegym.agents.ppo.networks import Previous
from scalegym.agents.ppo.normalization import ObsNorm, normalize
from scalegym.agents.ppo.policy import add_time
from scalegym.core.resolve import ResolvedEnv

if TYPE_CHECKING:
    from scalegym.envs.pomdp.exact import NetworkPolicy

Judge = Callable[[RunnerState], np.ndarray]  # runner over K seeds -> metric [K]


class CompiledPPO:
    """PPO's init, update chunks and evaluation, jitted over K seeds with the env params as an
    argument (`traced`) or, for an env that reads its params' values in Python, as constants.
    `per_seed`: the params lead with the seed axis [K, ...] (seed k plays instance k)."""

    def __init__(self, ppo: PPO, traced: bool, per_seed: bool = False) -> None:
        self.ppo, self.traced, self.per_seed = ppo, traced, per_seed
        axis = 0 if per_seed else None
        self.init = jax.jit(jax.vmap(lambda k, p: init_runner(self.at(p), k), in_axes=(0, axis)))
        self._chunks: dict[int, Any] = {}
        self._evaluate = jax.jit(jax.vmap(self._evaluate_one, in_axes=(0, 0, axis)))

    def at(self, params: Any) -> PPO:
        """The PPO of these env params (the constant ones unless `traced`)."""
        return self.ppo._replace(env_params=params) if self.traced else self.ppo

    def chunk(self, length: int) -> Any:
        """(runner [K], params) -> (runner, metrics) after `length` updates of every seed."""
        if length not in self._chunks:

            def scan(runner: RunnerState, params: Any) -> Any:
                ppo = self.at(params)
                return jax.lax.scan(lambda r, _: ppo_update(ppo, r), runner, None, length=length)

            axis = 0 if self.per_seed else None
            self._chunks[length] = jax.jit(jax.vmap(scan, in_axes=(0, axis)))
        return self._chunks[length]

    def evaluate(self, runner: RunnerState, params: Any, seed: int) -> dict[str, Any]:
        """Each seed's policy on fresh envs: `eval_scalars` with its per-seed lists."""
        keys = jax.random.split(jax.random.key(seed + EVAL_SEED_OFFSET), runner.update.shape[0])
        return eval_scalars(self._evaluate(runner, keys, params))

    def _evaluate_one(self, runner: RunnerState, key: jax.Array, params: Any) -> Any:
        ppo = self.at(params)
        env_params = ppo.env_params
        if self.traced and hasattr(env_params, "max_steps_in_episode"):
            # the evaluation's scan length: a Python int, part of what this object compiled for
            env_params = env_params.replace(max_steps_in_episode=self.episode_limit)
        return evaluate_policy(ppo, runner, key, env_params, ppo.config.eval_envs)

    @property
    def episode_limit(self) -> int:
        return int(getattr(self.ppo.env_params, "max_steps_in_episode", 500))


_LAST: dict[Hashable, CompiledPPO] = {}  # the last traced build: the next value of a cell reuses it


def compiled_ppo(resolved: ResolvedEnv, config: PPOConfig, per_seed: bool = False) -> CompiledPPO:
    """The compiled PPO of this env and config, shared with the previous call where it can be;
    `per_seed`: it takes params stacked [K, ...], one instance per seed."""
    env, params = resolved.env, resolved.params
    limit = getattr(params, "max_steps_in_episode", None)
    key = (resolved.id, type(env), repr(getattr(env, "__dict__", env)), config, per_seed)
    key += (int(env.action_space(params).n), None if limit is None else int(limit))
    if key in _LAST:
        return _LAST[key]
    ppo = make_ppo(env, params, config)
    compiled = CompiledPPO(ppo, traced=traces_params(ppo), per_seed=per_seed)
    if compiled.traced:
        _LAST.clear()
        _LAST[key] = compiled
    return compiled


def traces_params(ppo: PPO) -> bool:
    """Whether one PPO update traces with the env params as an argument (shapes only, cheap)."""

    def update(key: jax.Array, params: Any) -> Any:
        with_params = ppo._replace(env_params=params)
        return ppo_update(with_params, init_runner(with_params, key))

    try:
        jax.eval_shape(update, jax.random.key(0), ppo.env_params)
    except (TypeError, IndexError):  # jax's errors for Python use of a traced value
        return False
    return True


@dataclass(frozen=True)
class BudgetPlan:
    """A grid's judgements in whole PPO updates, and the asked budgets each one answers."""

    updates: np.ndarray  # [J] int64 strictly increasing, >= 1: updates trained at judgement j
    trained: np.ndarray  # [J] int64 strictly increasing: the budget unit trained (rounded down)
    asked: tuple[tuple[int, ...], ...]  # [J] the asked budgets that round to judgement j


def budget_plan(asked: np.ndarray, batch_size: int, steps_per_unit: int) -> BudgetPlan:
    """Asked budgets [E] (a unit of `steps_per_unit` env steps: 1, or the episode length) as whole
    updates of `batch_size` steps: rounded down, at least one; budgets that round to the same
    update are one judgement. Needs `batch_size >= steps_per_unit` (else two updates could train the
    same whole number of episodes)."""
    asked = np.asarray(asked, np.int64)
    if batch_size < steps_per_unit:
        raise ValueError(
            f"one PPO update (num_envs * num_steps = {batch_size} env steps) is shorter than one "
            f"episode ({steps_per_unit} steps): raise num_steps or num_envs, or count steps"
        )
    rounded = np.maximum(1, asked * steps_per_unit // batch_size)  # [E]
    updates = np.unique(rounded)  # [J]
    return BudgetPlan(
        updates=updates,
        trained=updates * batch_size // steps_per_unit,
        asked=tuple(tuple(int(b) for b in asked[rounded == u]) for u in updates),
    )


def unit_steps(resolved: ResolvedEnv, unit: str) -> int:
    """Env steps per unit of budget: 1 for steps, the episode length for episodes (an env whose
    episodes all last the same number of steps)."""
    if unit == "steps":
        return 1
    length = getattr(resolved.env, "fixed_episode_length", None)
    if unit != "episodes" or length is None:
        raise ValueError(
            f'{resolved.id}: unit = "{unit}": unit = "episodes" needs an env whose episodes all '
            'last the same number of steps (a `fixed_episode_length(params)` method); use "steps"'
        )
    return int(length(resolved.params))


def budget_config(resolved: ResolvedEnv, agent_params: dict[str, Any]) -> PPOConfig:
    """The family's PPO settings with `agent_params`, at a constant learning rate (see the
    module docstring); the run records `total_timesteps` as the steps its last budget trained."""
    if agent_params.get("anneal_lr", False):
        raise ValueError(
            f"{resolved.id}: agent_params anneal_lr = true: the ppo scaling agent trains at a "
            "constant learning rate, so that a budget's run does not depend on the grid's end"
        )
    return default_config(resolved).replace(**{**agent_params, "anneal_lr": False})


def ppo_budget_run(request: BudgetRequest, log: BudgetLog) -> BudgetRun:
    """Train PPO on every seed (on its own instance) to each budget and judge every seed there;
    the budgets recorded are those trained, in whole updates."""
    resolved, criterion, num_seeds = request.env, request.criterion, request.num_seeds
    if resolved.kind != "jax":
        raise ValueError(f"{resolved.id}: the ppo scaling agent needs a functional JAX env")
    config = budget_config(resolved, request.agent_params)
    steps_per_unit = unit_steps(resolved, request.unit)
    try:
        plan = budget_plan(request.budgets, config.batch_size, steps_per_unit)
    except ValueError as err:
        raise ValueError(f"{resolved.id}: {err}") from None
    with resolved.precision():
        # At a constant rate nothing compiled reads `total_timesteps`, so the compilation is the
        # config's without it: a longer grid (a cell extends one) reuses it.
        compiled = compiled_ppo(resolved, config, per_seed=request.instances is not None)
        params = seed_params(request, compiled)
        judge, facts = make_judge(request, compiled, params)
        runner = compiled.init(jax.random.split(jax.random.key(request.seed), num_seeds), params)
        metric = np.zeros((num_seeds, len(plan.updates)))  # [K, J]
        chunk, done = chunk_length(plan.updates), 0
        for j, (target, budget) in enumerate(zip(plan.updates, plan.trained, strict=True)):
            runner = train_updates(compiled, runner, params, int(target) - done, chunk)
            done = int(target)
            metric[:, j] = judged = judge(runner)
            scalars = {"scaling/pass_fraction": float(criterion.passes(judged).mean())}
            scalars["scaling/metric_mean"] = float(judged.mean())
            log(request.label, int(budget), scalars)
    return BudgetRun(
        budgets=plan.trained,
        unit=request.unit,
        metric=metric,
        passes=criterion.passes(metric),
        criterion=criterion,
        extra={
            "budgets_trained": plan.trained.tolist(),
            "budgets_asked": [list(group) for group in plan.asked],
            "updates": plan.updates.tolist(),
            "env_steps": (plan.updates * config.batch_size).tolist(),
            "config": config.replace(
                total_timesteps=int(plan.updates[-1]) * config.batch_size
            ).as_dict(),
            **facts,
        },
    )


def seed_params(request: BudgetRequest, compiled: CompiledPPO) -> Any:
    """The env params the run passes: the request's instances [K, ...], else `env.params`."""
    resolved, instances = request.env, request.instances
    if instances is None:
        return resolved.params
    if not compiled.traced:
        raise ValueError(
            f"{resolved.id}: one instance per seed needs an env whose params can be traced; its "
            "step reads its params' values in Python"
        )
    leading = {tuple(np.shape(x)[:1]) for x in jax.tree.leaves(instances)}
    if leading != {(request.num_seeds,)}:
        raise ValueError(
            f"{resolved.id}: instances lead with {sorted(leading)} along the seed axis; every "
            f"leaf needs [num_seeds = {request.num_seeds}, ...]"
        )
    return instances


def chunk_length(targets: np.ndarray) -> int:
    """The compiled chunk: the smallest step between targets, so most budgets land on chunks."""
    gaps = np.diff(np.concatenate([[0], targets]))
    return int(gaps[gaps > 0].min())


def train_updates(
    compiled: CompiledPPO, runner: RunnerState, params: Any, updates: int, chunk: int
) -> RunnerState:
    """`updates` more PPO updates on all seeds: chunks of `chunk`, the remainder one by one."""
    lengths = [chunk] * (updates // chunk) + [1] * (updates % chunk)
    for length in lengths:
        runner, _ = compiled.chunk(length)(runner, params)
    return jax.block_until_ready(runner)


def make_judge(
    request: BudgetRequest, compiled: CompiledPPO, params: Any
) -> tuple[Judge, dict[str, Any]]:
    """The per-seed metric of the request's criterion — an evaluation on fresh envs of `params`
    (each seed's own instance where they are stacked) or V* − V(π) on its instance — and facts
    for the record (V* per seed)."""
    resolved, criterion = request.env, request.criterion
    if criterion.on == "exact":
        values = exact_values(resolved, request.instances)
        v_star = np.broadcast_to(values.v_star, (request.num_seeds,))
        return exact_judge(compiled.ppo, values), {"v_star": v_star.tolist()}
    key = {"success": "per_seed_success", "return": "per_seed_return"}[criterion.on]

    def judge(runner: RunnerState) -> np.ndarray:
        scalars = compiled.evaluate(runner, params, request.seed)
        if key not in scalars:
            raise ValueError(
                f'{resolved.id}: criterion "success" needs an env that reports info["success"]; '
                'use criterion = "return"'
            )
        return np.asarray(scalars[key], np.float64)

    return judge, {}


@dataclass(frozen=True)
class ExactValues:
    """V* and the exact value of a history policy, per instance: seed k is judged on instance
    k, or every seed on the one instance there is."""

    v_star: np.ndarray  # [K] or [1] float64
    value_of: tuple[Callable[[Any], float], ...]  # [K] or [1]: HistoryPolicy -> V(π)

    def suboptimality(self, policies: list[Any]) -> np.ndarray:
        """V* − V(π) [K] of seed k's policy on its own instance."""
        if len(self.value_of) not in (1, len(policies)):
            raise ValueError(f"{len(policies)} policies for {len(self.value_of)} instances")
        index = [k if len(self.value_of) > 1 else 0 for k in range(len(policies))]
        values = [self.value_of[i](policy) for i, policy in zip(index, policies, strict=True)]
        return self.v_star[index] - np.asarray(values, np.float64)


def exact_values(resolved: ResolvedEnv, instances: Any = None) -> ExactValues:
    """The exact tools of `resolved.params`, or of each instance of params stacked [K, ...]."""
    env = resolved.env
    if not (hasattr(env, "tabular") and hasattr(env, "optimal_value")):
        raise ValueError(
            f'{resolved.id}: criterion "exact" needs a family with exact tools '
            "(`tabular(params)` and `optimal_value(params)`); allowed here: success, return"
        )
    from scalegym.envs.pomdp import exact

    def value_of(params: Any) -> Callable[[Any], float]:
        if hasattr(env, "candidates"):  # no tables: any size (PerRoomSecret-v1 at any K)
            return functools.partial(exact.candidate_policy_value, env.candidates(params))
        return functools.partial(exact.policy_value, env.tabular(params))

    if instances is None:
        each = [resolved.params]
    else:
        count = np.shape(jax.tree.leaves(instances)[0])[0]
        each = [host_instance(instances, k) for k in range(count)]
    v_star = np.array([float(env.optimal_value(p)) for p in each], np.float64)
    return ExactValues(v_star, tuple(value_of(p) for p in each))


def host_instance(instances: Any, k: int) -> Any:
    """Instance k of params stacked [K, ...], as host values (0-d leaves as Python numbers: the
    families' checks take numbers)."""
    return jax.tree.map(lambda x: _host(np.asarray(x)[k]), instances)


def _host(x: np.ndarray) -> Any:
    return x.item() if x.ndim == 0 else x


def exact_judge(ppo: PPO, values: ExactValues) -> Judge:
    """V* − V(π) per seed on its own instance, π its network queried on every reachable
    history."""
    step = jax.jit(functools.partial(policy_step, ppo))

    def judge(runner: RunnerState) -> np.ndarray:
        memory = runner.carry.shape[-1]
        policies = []
        for k in range(runner.carry.shape[0]):
            p, norm = seed_slice((runner.train_state.params, runner.obs_norm), k)
            policies.append(seed_policy(ppo, step, p, norm, memory))
        return values.suboptimality(policies)

    return judge


def seed_policy(
    ppo: PPO, step: Callable[..., Any], params: Any, obs_norm: ObsNorm, memory: int
) -> NetworkPolicy:
    """One seed's network as the exact tools query it (`exact.network_policy`): `step` is
    `policy_step` of `ppo` (jitted); with `prev_action_reward` each history's previous action and
    reward go in too."""
    from scalegym.envs.pomdp import exact

    carry0 = np.zeros(memory, np.float32)  # [M]
    if not ppo.config.prev_action_reward:
        return exact.network_policy(lambda c, x: step(params, obs_norm, c, x), carry0)
    return exact.network_policy(
        lambda c, x, a, r: step(params, obs_norm, c, x, a, r), carry0, takes_previous=True
    )


def seed_slice(tree: Any, k: int) -> Any:
    """Seed `k` of a tree whose leaves lead with the seed axis [K, ...]."""
    return jax.tree.map(lambda x: x[k], tree)


def policy_step(
    ppo: PPO,
    params: Any,
    obs_norm: ObsNorm,
    carry: jax.Array,
    inputs: jax.Array,
    actions: jax.Array | None = None,
    rewards: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """One step of one seed's policy on n histories: carry [n, M], inputs [n, D] -> logits.

    A GRU with `prev_action_reward` also takes each history's previous action [n] (−1 at the
    episode's first step) and the reward it paid [n], fed as the rollout feeds them: the reward
    × reward_scale (`learner_reward`), and the first step a start (zeros in, carry reset).
    """
    x = normalize(obs_norm, jnp.asarray(inputs, jnp.float32), ppo.config.normalize_obs)
    if actions is None:
        starts, prev = jnp.zeros((1, x.shape[0]), bool), None
    else:
        actions = jnp.asarray(actions, jnp.int32)
        starts = (actions < 0)[None]
        prev = add_time(Previous(actions, learner_reward(ppo.config, jnp.asarray(rewards))))
    carry, logits, _ = ppo.apply(params, jnp.asarray(carry, jnp.float32), x[None], starts, prev)
    return carry, logits[0]  # [n, M], [n, A]
