"""The `search` cell: return against budget for a planner, the slope fit, the suite schema."""

import json

import numpy as np
import pytest

from scalegym.cli import main
from scalegym.suites.cells.search import return_slope
from scalegym.suites.spec import SuiteError, parse_suite

TINY = """
[suite]
name = "search-tiny"
seeds = 2

[[cell]]
name = "shoot"
kind = "search"
env = "Rearrange-v1"
env_params = {{ height = 5, width = 5, num_objects = 1 }}
planner = "random-shooting"
planner_params = {planner_params}
budgets = {budgets}
episodes = 4
max_steps = 30
"""


def tiny(planner_params="{ horizon = 8 }", budgets="[8, 64]") -> bytes:
    return TINY.format(planner_params=planner_params, budgets=budgets).encode()


def test_return_slope_recovers_a_known_slope_and_its_interval_narrows_with_seeds():
    rng = np.random.default_rng(0)
    budgets = [1, 10, 100, 1000]

    def fitted(seeds):
        per_seed = [[2.0 + 1.5 * i + rng.normal(0, 1.0) for _ in range(seeds)] for i in range(4)]
        return return_slope(budgets, per_seed, seed=1)

    few, many = fitted(8), fitted(128)
    for fit in (few, many):
        assert fit["low"] <= 1.5 <= fit["high"], fit
    assert many["high"] - many["low"] < 0.5 * (few["high"] - few["low"])
    assert return_slope([4], [[1.0, 2.0]]) is None


@pytest.mark.parametrize(
    "source, field",
    [
        (tiny(budgets="[64, 8]"), "budgets"),
        (tiny(planner_params="{ horizon = 0 }"), "planner_params"),
        (tiny(planner_params="{ depth = 3 }"), "planner_params"),
        (tiny().replace(b'"random-shooting"', b'"mcts"'), "planner"),
    ],
)
def test_bad_fields_are_named(source, field):
    with pytest.raises(SuiteError, match=f'field "{field}"'):
        parse_suite(source, "tiny.toml")


def test_a_tiny_search_cell_runs_reports_and_plots(tmp_path):
    suite = tmp_path / "tiny.toml"
    suite.write_bytes(tiny())
    run = tmp_path / "run"
    assert main(["run", str(suite), "--out", str(run), "--no-progress"]) == 0
    record = json.loads((run / "results.jsonl").read_text().splitlines()[-1])
    assert record["status"] == "ok", record
    rows = record["result"]["rows"]
    assert [r["budget"] for r in rows] == [8, 64]
    for r in rows:
        # Random shooting spends exactly its budget on every decision.
        assert r["sim_steps_per_decision"] == r["budget"]
        assert len(r["per_seed_return"]) == 2 and not r["oracle"]
    # On a 5x5 room with one object, 64 simulated steps per decision solve most episodes and
    # 8 solve almost none (measured: success 0.88 against 0.00).
    assert rows[1]["success"] >= rows[0]["success"] + 0.5
    assert record["result"]["slope"]["slope"] > 0
    report = (run / "report.md").read_text()
    assert "## Return against search budget" in report and "| 64 |" in report
    assert (run / "plots" / "shoot.png").stat().st_size > 0
    assert any((run / "tb" / "shoot").iterdir())


def test_the_exact_optimal_value_is_recorded_where_the_env_has_one():
    import scalegym
    from scalegym.suites.cells.search import optimal_value, report_lines

    env, params = scalegym.make("PaninskiLock-v0", num_elements=4)
    v_star = optimal_value(env, params)
    assert v_star == pytest.approx(env.optimal_value(params)) and 0.5 < v_star < 1.0
    assert optimal_value(*scalegym.make("Rearrange-v1")) is None
    row = {"budget": 8, "return": 0.5, "return_sem": 0.01, "success": 1.0}
    row |= {"sim_steps_per_decision": 8, "wall_ms_per_decision": 0.1, "oracle": False}
    result = {"planner": "belief", "seeds": 2, "episodes": 4, "rows": [row]}
    lines = report_lines("c", "PaninskiLock-v0", {**result, "optimal_value": v_star})
    assert f"V* of this instance (exact): {v_star:.4f}" in "\n".join(lines)


PRIOR_SUITE = """
[suite]
name = "prior"
seeds = 2

[[cell]]
name = "ppo"
kind = "train"
env = "ToyChain-v0"
agent = "ppo"
steps = 1536  # test_ppo_runs.py's checkpoint run: the same compiled programs
agent_params = {{ num_envs = 16, num_steps = 16 }}

[[cell]]
name = "gumbel"
kind = "search"
env = "ToyChain-v0"
env_params = {search_params}
planner = "gumbel-muzero"
checkpoint = "{checkpoint}"
budgets = [4]
episodes = 4
max_steps = 12
"""


@pytest.mark.parametrize(
    "checkpoint, search_params, message",
    [
        ("cell:nope", "{}", "'cell:nope' names no earlier train cell; allowed: cell:ppo"),
        ("cell:ppo", "{ length = 7 }", "they must match"),
    ],
)
def test_a_checkpoint_cell_reference_must_name_an_earlier_matching_train_cell(
    checkpoint, search_params, message
):
    source = PRIOR_SUITE.format(checkpoint=checkpoint, search_params=search_params)
    with pytest.raises(SuiteError, match=message):
        parse_suite(source.encode(), "prior.toml")


def test_gumbel_plans_with_the_prior_of_the_suites_own_train_cell(tmp_path):
    suite = tmp_path / "prior.toml"
    suite.write_text(PRIOR_SUITE.format(checkpoint="cell:ppo", search_params="{}"))
    run = tmp_path / "run"
    assert main(["run", str(suite), "--out", str(run), "--no-progress"]) == 0
    records = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    assert [(r["cell"], r["status"]) for r in records] == [("ppo", "ok"), ("gumbel", "ok")]
    (row,) = records[1]["result"]["rows"]
    assert row["budget"] == 4 and row["sim_steps_per_decision"] <= 4
    assert (run / "checkpoints" / "ppo" / "progress.json").exists()  # the prior it read
