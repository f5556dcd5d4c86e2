"""The `scaling` cell: its schema, a synthetic learner end to end, and PPO on budgets."""

from __future__ import annotations

import json
import sys
import types
from dataclasses import replace
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pytest
from toy_envs import ToyChain

from scalegym.agents import registry
from scalegym.agents.budgets import (
    BudgetLog,
    BudgetRequest,
    BudgetRun,
    Criterion,
    budget_request,
    geometric_budgets,
)
from scalegym.agents.ppo import budgets as ppo_budgets
from scalegym.agents.ppo.algorithm import PPOConfig, make_ppo
from scalegym.core.resolve import ResolvedEnv, resolve_env
from scalegym.suites.cells import ScalingCell
from scalegym.suites.rundir import read_records
from scalegym.suites.runner import run_suite
from scalegym.suites.spec import SuiteError, parse_suite
from scalegym.suites.tensorboard import read_scalars

HEADER = '[suite]\nname = "s"\ndescription = "scaling"\nseeds = 20\n'
SYNTHETIC = """
[[cell]]
name = "law"
kind = "scaling"
env = "ToyChain-v0"
agent = "optimal"
vary = "length"
values = [4, 8, 16, 32, 64, 128]
budgets = { start = 16, stop = 8192, per_octave = 8 }
threshold = 0.9
lower_bound = 1.5
lower_bound_source = "the synthetic law"
"""
SCALE, NOISE = (
    10.0,
    0.15,
)  # the synthetic learner's first pass: SCALE · length^1.5 · e^(N(0, NOISE))


def synthetic_learner(request: BudgetRequest, log: BudgetLog) -> BudgetRun:
    """A budget agent whose seeds start passing for good at SCALE · length^1.5 (with noise)."""
    length, budgets = request.env.overrides["length"], request.budgets
    rng = np.random.default_rng([request.seed, length])
    first = SCALE * length**1.5 * np.exp(rng.normal(0.0, NOISE, request.num_seeds))  # [seeds]
    passes = budgets[None, :] >= first[:, None]  # [seeds, E]
    metric = passes.astype(np.float64)
    for e, budget in enumerate(budgets):
        log(request.label, int(budget), {"scaling/pass_fraction": passes[:, e].mean()})
    return BudgetRun(
        budgets, request.unit, metric, passes, request.criterion, {"truth": first.tolist()}
    )


def as_optimal(monkeypatch: pytest.MonkeyPatch, agent: Any) -> None:
    """`agent` registered as the scaling agent "optimal" for one test."""
    spec = replace(registry.SPECS["optimal"], entry_points={"scaling": agent})
    monkeypatch.setitem(registry.SPECS, "optimal", spec)


def test_spec_reports_every_scaling_mistake_in_one_pass() -> None:
    cells = [
        SYNTHETIC.replace('"law"', '"typo"').replace('vary = "length"', 'vary = "lenght"'),
        SYNTHETIC.replace('"law"', '"order"').replace("[4, 8, 16, 32, 64, 128]", "[8, 4]"),
        SYNTHETIC.replace('"law"', '"nobudget"').replace("budgets = {", "budget_table = {"),
        SYNTHETIC.replace('"law"', '"rate"').replace("threshold = 0.9", "threshold = 1.5"),
        SYNTHETIC.replace('"law"', '"agent"').replace('agent = "optimal"', 'agent = "dqn"'),
        SYNTHETIC.replace('"law"', '"short"').replace("[4, 8, 16, 32, 64, 128]", "[1, 4, 8]"),
        SYNTHETIC.replace('"law"', '"exact"') + 'criterion = "exact"\n',
    ]
    with pytest.raises(SuiteError) as caught:
        parse_suite((HEADER + "".join(cells)).encode(), "bad.toml")
    errors = caught.value.errors

    def one(cell: str, *needles: str) -> None:
        found = [e for e in errors if f'cell[{cell}] "' in e]
        assert any(all(n in e for n in needles) for e in found), (cell, needles, errors)

    one("0", 'field "vary"', "lenght = 4, 8, 16", '"lenght"', "length")
    one("1", 'field "values"', "[8, 4]", "strictly increasing")
    one("2", 'unknown field "budget_table"')
    one("2", 'missing field "budgets"')
    one("3", 'field "threshold"', "1.5", "0.0..1.0")
    one("4", 'field "agent"', '"dqn"', "allowed: ppo, calibration, optimal")
    one("5", 'field "values"', "length = 1:", "length must be >= 2")
    one("6", 'field "criterion"', "exact tools", "ToyChain-v0")
    assert all(e.startswith("bad.toml: cell[") for e in errors)
    assert len(errors) == 8, errors


def test_scaling_cell_fields_and_defaults() -> None:
    text = HEADER + SYNTHETIC.replace('vary = "length"', 'vary = ["length"]')
    (cell,) = parse_suite(text.encode(), "ok.toml").cells
    assert isinstance(cell, ScalingCell) and cell.vary == ("length",)
    assert (cell.unit, cell.criterion, cell.delta, cell.seeds) == ("steps", "success", 0.1, 20)
    assert cell.budgets == {"start": 16, "stop": 8192, "per_octave": 8, "cap": None}
    assert cell.overrides(8.0) == {"length": 8} and type(cell.overrides(8.0)["length"]) is int
    assert cell.overrides(2.5) == {"length": 2.5}


def test_synthetic_law_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    as_optimal(monkeypatch, synthetic_learner)
    spec = parse_suite((HEADER + SYNTHETIC).encode(), "law.toml")
    run_dir = run_suite(spec, tmp_path / "run", progress=False, command=["test"])

    (record,) = read_records(run_dir / "results.jsonl")
    assert record["status"] == "ok", record.get("error")
    result = record["result"]
    fit = result["fit"]
    assert fit["ci_low"] <= 1.5 <= fit["ci_high"] and abs(fit["exponent"] - 1.5) < 0.2
    assert result["lower_bound"] == 1.5 and result["unit"] == "steps"
    assert result["budgets"] == geometric_budgets(16, 8192, 8).tolist()
    rows = {row["value"]: row for row in result["values"]}
    assert list(rows) == [4, 8, 16, 32, 64, 128]
    # 10 · 128^1.5 ≈ 14,500 > 8192: the largest length never settles, and says so.
    assert rows[128]["n_hat"] is None and rows[128]["censored"] == 20
    assert rows[128]["first_budgets"] == [None] * 20
    assert fit["excluded"] == [128.0] and 128.0 not in fit["sizes"]
    assert rows[4]["censored"] == 0 and rows[4]["n_hat"] >= SCALE * 4**1.5 * 0.9
    assert len(rows[4]["pass_fraction"]) == len(result["budgets"])
    assert json.loads(json.dumps(result)) == result  # plain JSON: no inf, no NaN

    report = (run_dir / "report.md").read_text()
    assert "## Sample-complexity scaling" in report and "| value | N̂ (steps) |" in report
    assert "| 128 | censored | 20 of 20 | 8,192 | no (N̂ censored) |" in report
    assert f"fitted exponent b = {fit['exponent']:.2f}" in report
    assert "lower bound 1.5 (the synthetic law)" in report
    (bound,) = result["censored_bounds"]  # 128 from 64, whose N̂ is below the largest budget
    assert bound["from"] == 64 and bound["to"] == 128 and bound["exponent_above"] > 0
    assert f"64→128: b > {bound['exponent_above']:.2f}" in report
    assert "the env has no instance field" in report
    summary = (run_dir / "summary.csv").read_text()
    assert "exponent" in summary.splitlines()[0] and "law,scaling" in summary
    assert (run_dir / "plots" / "law.png").stat().st_size > 0

    per_value = read_scalars(run_dir / "tb" / "law" / "length=16")
    steps = [step for step, _ in per_value["scaling/pass_fraction"]]
    assert steps == result["budgets"]
    n_hat = read_scalars(run_dir / "tb" / "law")["scaling/n_hat"]
    assert [step for step, _ in n_hat] == [4, 8, 16, 32, 64]  # 128 is censored: no point


def test_a_failing_value_keeps_the_values_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def breaks_at_32(request: BudgetRequest, log: BudgetLog) -> BudgetRun:
        if request.env.overrides["length"] == 32:
            raise RuntimeError("out of memory")
        return synthetic_learner(request, log)

    as_optimal(monkeypatch, breaks_at_32)
    spec = parse_suite((HEADER + SYNTHETIC).encode(), "law.toml")
    run_dir = run_suite(spec, tmp_path / "run", progress=False, command=["test"])
    (record,) = read_records(run_dir / "results.jsonl")
    assert record["status"] == "failed" and "length=32" in record["error"]
    assert [row["value"] for row in record["result"]["values"]] == [4, 8, 16]
    # Three values done: too few settled sizes for an exponent, and the record says so.
    assert record["result"]["fit"] is None
    assert record["result"]["fit_error"].startswith("too few settled sizes")
    assert "FAILED, values done so far" in (run_dir / "report.md").read_text()


PPO_CELL = """
[[cell]]
name = "ppo-chain"
kind = "scaling"
env = "ToyChain-v0"
env_params = { slip_prob = 0.0 }
agent = "ppo"
vary = "length"
values = [4, 5]
budgets = { start = 512, stop = 2048, per_octave = 2 }
threshold = 0.5
seeds = 2
agent_params = { num_envs = 4, num_steps = 32, num_minibatches = 2, update_epochs = 2 }
"""


def test_ppo_scaling_cell_end_to_end(tmp_path: Path) -> None:
    spec = parse_suite((HEADER + PPO_CELL).encode(), "ppo.toml")
    run_dir = run_suite(spec, tmp_path / "run", progress=False, command=["test"])
    (record,) = read_records(run_dir / "results.jsonl")
    assert record["status"] == "ok", record.get("error")
    result = record["result"]
    budgets = geometric_budgets(512, 2048, 2).tolist()  # asked: 512, 724, 1024, 1448, 2048
    assert (
        result["budgets"] == budgets and result["criterion"] == "eval success >= 0.5 (fresh envs)"
    )
    trained = [512, 640, 1024, 1408, 2048]  # whole updates of 128 steps, what each seed trained
    for row in result["values"]:
        assert np.array(row["passes"]).shape == (2, len(trained))
        assert all(0.0 <= m <= 1.0 for seed in row["metric"] for m in seed)  # success rates
        assert row["extra"]["budgets_trained"] == row["extra"]["env_steps"] == trained
        assert row["extra"]["budgets_asked"] == [[b] for b in budgets]
    assert result["fit"] is not None or "fit_error" in result
    curves = read_scalars(run_dir / "tb" / "ppo-chain" / "length=5")
    assert [s for s, _ in curves["scaling/metric_mean"]] == trained


def test_ppo_refuses_what_the_env_cannot_give() -> None:
    def ask(unit: str, criterion: Criterion) -> BudgetRequest:
        return budget_request(
            resolve_env("ToyChain-v0"),
            budgets=np.array([64, 128]),
            unit=unit,
            criterion=criterion,
            num_seeds=1,
            seed=0,
        )

    log = lambda *a: None
    with pytest.raises(ValueError, match='unit = "episodes" needs an env whose episodes'):
        ppo_budgets.ppo_budget_run(ask("episodes", Criterion("success", 0.5)), log)
    with pytest.raises(ValueError, match='criterion "exact" needs a family with exact tools'):
        ppo_budgets.ppo_budget_run(ask("steps", Criterion("exact", 0.1)), log)


class ExactToyChain(ToyChain):
    """ToyChain (box obs) claiming exact tools and a fixed episode length, for the plumbing."""

    def tabular(self, params: Any) -> str:
        return "model"

    def optimal_value(self, params: Any) -> float:
        return 1.0

    def fixed_episode_length(self, params: Any) -> int:
        return 4


def fake_exact_module(calls: list[tuple[tuple[int, ...], tuple[int, ...]]]) -> types.ModuleType:
    """`exact` whose policy value is the mean probability of action 1 on two observations."""
    module = types.ModuleType("scalegym.envs.pomdp.exact")

    def network_policy(step_fn: Any, carry0: np.ndarray) -> Any:
        return step_fn, carry0

    def policy_value(model: str, policy: Any) -> float:
        step_fn, carry0 = policy
        inputs = np.array([[0.0], [1.0]], np.float32)  # [n=2, D=1]
        carry = np.broadcast_to(carry0, (2, *carry0.shape))  # [n, M]
        carry, logits = step_fn(carry, inputs)
        calls.append((tuple(carry.shape), tuple(logits.shape)))
        probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        return float(probs[:, 1].mean())

    module.network_policy = network_policy  # type: ignore[attr-defined]
    module.policy_value = policy_value  # type: ignore[attr-defined]
    return module


def test_exact_judge_queries_each_seeds_network(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
    fake = fake_exact_module(calls)
    monkeypatch.setitem(sys.modules, "scalegym.envs.pomdp.exact", fake)
    # `from scalegym.envs.pomdp import exact` reads the package attribute once it is imported.
    import scalegym.envs.pomdp

    monkeypatch.setattr(scalegym.envs.pomdp, "exact", fake, raising=False)
    env = ExactToyChain(box_obs=True)
    resolved = ResolvedEnv("ExactToy-v0", "jax", env=env, params=env.default_params)
    assert ppo_budgets.unit_steps(resolved, "episodes") == 4
    config = PPOConfig(num_envs=2, num_steps=8, num_minibatches=1)
    ppo = make_ppo(env, env.default_params, config)
    runner = jax.jit(jax.vmap(ppo.init))(jax.random.split(jax.random.key(0), 2))  # 2 untrained
    metric = ppo_budgets.exact_judge(ppo, ppo_budgets.exact_values(resolved))(runner)
    assert calls == [((2, 1), (2, 2))] * 2  # per seed: carry [n, M=1], logits [n, A=2]
    assert metric.shape == (2,) and np.all((metric > 0.0) & (metric < 1.0))  # 1 - P(right)
    assert metric[0] != metric[1]  # each seed's own network


class PythonParamsChain(ToyChain):
    """ToyChain whose reset reads a param's value in Python: it cannot take traced params."""

    def reset_env(self, key: jax.Array, params: Any) -> tuple[Any, Any]:
        if int(params.start_max) > 100:
            raise AssertionError("unreachable")
        return super().reset_env(key, params)


def test_params_are_traced_only_where_the_env_allows() -> None:
    config = PPOConfig(num_envs=2, num_steps=8, num_minibatches=1)
    for env, traced in ((ToyChain(box_obs=True), True), (PythonParamsChain(box_obs=True), False)):
        ppo = make_ppo(env, env.default_params, config)
        assert ppo_budgets.traces_params(ppo) is traced
