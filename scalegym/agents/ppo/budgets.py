"""PPO as a budget agent: all seeds trained in compiled chunks, each judged at every budget.

One run per env instance: K seeds vmapped, trained to each budget in turn and judged there — on
fresh envs (success or return), or exactly (V* − V(π)) for a family with exact tools. The chunks
take the env params as an argument, so the geometric budgets share at most two compilations,
and so do the values of a scaling cell that leave the env's shapes alone.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from scalegym.agents.budgets import BudgetLog, BudgetRequest, BudgetRun, Criterion
from scalegym.agents.ppo.algorithm import PPO, RunnerState, init_runner, make_ppo, ppo_update
from scalegym.agents.ppo.config import PPOConfig, default_config
from scalegym.agents.ppo.evaluation import EVAL_SEED_OFFSET, eval_scalars, evaluate_policy
from scalegym.agents.ppo.normalization import ObsNorm, normalize
from scalegym.core.resolve import ResolvedEnv

Judge = Callable[[RunnerState], np.ndarray]  # runner over K seeds -> metric [K]


class CompiledPPO:
    """PPO's init, update chunks and evaluation, jitted over K seeds with the env params as an
    argument (`traced`) or, for an env that reads its params' values in Python, as constants."""

    def __init__(self, ppo: PPO, traced: bool) -> None:
        self.ppo, self.traced = ppo, traced
        self.init = jax.jit(jax.vmap(lambda k, p: init_runner(self.at(p), k), in_axes=(0, None)))
        self._chunks: dict[int, Any] = {}
        self._evaluate = jax.jit(jax.vmap(self._evaluate_one, in_axes=(0, 0, None)))

    def at(self, params: Any) -> PPO:
        """The PPO of these env params (the constant ones unless `traced`)."""
        return self.ppo._replace(env_params=params) if self.traced else self.ppo

    def chunk(self, length: int) -> Any:
        """(runner [K], params) -> (runner, metrics) after `length` updates of every seed."""
        if length not in self._chunks:

            def scan(runner: RunnerState, params: Any) -> Any:
                ppo = self.at(params)
                return jax.lax.scan(lambda r, _: ppo_update(ppo, r), runner, None, length=length)

            self._chunks[length] = jax.jit(jax.vmap(scan, in_axes=(0, None)))
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


def compiled_ppo(resolved: ResolvedEnv, config: PPOConfig) -> CompiledPPO:
    """The compiled PPO of this env and config, shared with the previous call where it can be."""
    env, params = resolved.env, resolved.params
    limit = getattr(params, "max_steps_in_episode", None)
    key = (resolved.id, type(env), repr(getattr(env, "__dict__", env)), config)
    key += (int(env.action_space(params).n), None if limit is None else int(limit))
    if key in _LAST:
        return _LAST[key]
    ppo = make_ppo(env, params, config)
    compiled = CompiledPPO(ppo, traced=traces_params(ppo))
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


def ppo_budget_run(request: BudgetRequest, log: BudgetLog) -> BudgetRun:
    """Train PPO on every seed up to each budget [E] and judge every seed there."""
    resolved, budgets, criterion = request.env, request.budgets, request.criterion
    if resolved.kind != "jax":
        raise ValueError(f"{resolved.id}: the ppo scaling agent needs a functional JAX env")
    env_steps = budget_env_steps(resolved, budgets, request.unit)  # [E]
    config = default_config(resolved).replace(
        total_timesteps=int(env_steps[-1]), **request.agent_params
    )
    with resolved.precision():
        compiled = compiled_ppo(resolved, config)
        judge = make_judge(resolved, compiled, criterion, request.seed)
        targets = update_counts(env_steps, config.batch_size)  # [E]
        chunk = chunk_length(targets)
        keys = jax.random.split(jax.random.key(request.seed), request.num_seeds)
        runner = compiled.init(keys, resolved.params)
        metric = np.zeros((request.num_seeds, len(targets)))  # [K, E]
        done = 0
        for e, target in enumerate(targets):
            if target > done or e == 0:  # budgets that round to one update share a judgement
                runner = train_updates(compiled, runner, resolved.params, int(target - done), chunk)
                done, judged = int(target), judge(runner)
            metric[:, e] = judged
            scalars = {"scaling/pass_fraction": float(criterion.passes(judged).mean())}
            scalars["scaling/metric_mean"] = float(judged.mean())
            log(request.label, int(budgets[e]), scalars)
    return BudgetRun(
        budgets=np.asarray(budgets, np.int64),
        unit=request.unit,
        metric=metric,
        passes=criterion.passes(metric),
        criterion=criterion,
        extra={"env_steps": (targets * config.batch_size).tolist(), "config": config.as_dict()},
    )


def budget_env_steps(resolved: ResolvedEnv, budgets: np.ndarray, unit: str) -> np.ndarray:
    """Budgets [E] as env steps per seed; episodes need an env of one fixed episode length."""
    budgets = np.asarray(budgets, np.int64)
    if unit == "steps":
        return budgets
    length = getattr(resolved.env, "fixed_episode_length", None)
    if unit != "episodes" or length is None:
        raise ValueError(
            f'{resolved.id}: unit = "{unit}": unit = "episodes" needs an env whose episodes all '
            'last the same number of steps (a `fixed_episode_length(params)` method); use "steps"'
        )
    return budgets * int(length(resolved.params))


def update_counts(env_steps: np.ndarray, batch_size: int) -> np.ndarray:
    """PPO updates per budget [E]: env steps rounded down to whole updates, at least one."""
    return np.maximum(1, np.asarray(env_steps, np.int64) // batch_size)


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
    resolved: ResolvedEnv, compiled: CompiledPPO, criterion: Criterion, seed: int
) -> Judge:
    """The per-seed metric of `criterion`: an evaluation on fresh envs or V* − V(π)."""
    if criterion.on == "exact":
        return exact_judge(resolved, compiled.ppo)
    key = {"success": "per_seed_success", "return": "per_seed_return"}[criterion.on]

    def judge(runner: RunnerState) -> np.ndarray:
        scalars = compiled.evaluate(runner, resolved.params, seed)
        if key not in scalars:
            raise ValueError(
                f'{resolved.id}: criterion "success" needs an env that reports info["success"]; '
                'use criterion = "return"'
            )
        return np.asarray(scalars[key], np.float64)

    return judge


def exact_judge(resolved: ResolvedEnv, ppo: PPO) -> Judge:
    """V* − V(π) per seed, π each seed's network queried on every reachable history."""
    env, params = resolved.env, resolved.params
    if not (hasattr(env, "tabular") and hasattr(env, "optimal_value")):
        raise ValueError(
            f'{resolved.id}: criterion "exact" needs a family with exact tools '
            "(`tabular(params)` and `optimal_value(params)`); allowed here: success, return"
        )
    from scalegym.envs.pomdp import exact

    v_star = float(env.optimal_value(params))
    if hasattr(env, "candidates"):  # no tables: any size (PerRoomSecret's S² candidates)
        candidates = env.candidates(params)
        value_of = functools.partial(exact.candidate_policy_value, candidates)
    else:
        value_of = functools.partial(exact.policy_value, env.tabular(params))
    step = jax.jit(lambda p, norm, carry, x: policy_step(ppo, p, norm, carry, x))

    def judge(runner: RunnerState) -> np.ndarray:
        carry0 = np.zeros(runner.carry.shape[-1], np.float32)  # [M]
        values = []
        for k in range(runner.carry.shape[0]):
            p, norm = seed_slice((runner.train_state.params, runner.obs_norm), k)
            policy = exact.network_policy(lambda c, x, p=p, n=norm: step(p, n, c, x), carry0)
            values.append(value_of(policy))
        return v_star - np.asarray(values, np.float64)

    return judge


def seed_slice(tree: Any, k: int) -> Any:
    """Seed `k` of a tree whose leaves lead with the seed axis [K, ...]."""
    return jax.tree.map(lambda x: x[k], tree)


def policy_step(
    ppo: PPO, params: Any, obs_norm: ObsNorm, carry: jax.Array, inputs: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """One step of one seed's policy on n histories: carry [n, M], inputs [n, D] -> logits."""
    x = normalize(obs_norm, jnp.asarray(inputs, jnp.float32), ppo.config.normalize_obs)
    starts = jnp.zeros((1, x.shape[0]), bool)
    carry, logits, _ = ppo.apply(params, jnp.asarray(carry, jnp.float32), x[None], starts)
    return carry, logits[0]  # [n, M], [n, A]
