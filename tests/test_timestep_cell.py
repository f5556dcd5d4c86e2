"""The `timestep` cell: PPO trained to pick ThreeBody's step, judged against every fixed μ."""

import json

import pytest

from scalegym.cli import main
from scalegym.suites.spec import SuiteError, parse_suite
from scalegym.suites.timestep import verdict

TINY = b"""
[suite]
name = "threebody-tiny"
seeds = 1

[[cell]]
name = "ppo-vs-fixed-mu"
kind = "timestep"
env = "ThreeBody-v0"
env_params = { max_substeps = 2000 }
agent = "ppo"
steps = 800
agent_params = { num_envs = 8, num_steps = 100, num_minibatches = 2 }
instances = 2
eval_steps = 3
baseline_actions = [9, 6]
transfer = ["leapfrog"]
transfer_instances = 1
"""


def row(policy, error, substeps, reward):
    return {
        "policy": policy,
        "median_log10_error": error,
        "total_substeps": substeps,
        "mean_paper_reward": reward,
    }


def test_verdict_names_the_dominating_fixed_steps_and_the_best_one():
    rows = [
        row("ppo seed 0", -8.0, 1000, 2.5),
        row("fixed 0.1", -3.0, 100, -10.0),  # cheaper, but worse
        row("fixed 0.01", -9.0, 900, 2.0),  # better and cheaper: dominates
        row("fixed 0.001", -12.0, 9000, 1.4),  # better, dearer
    ]
    v = verdict(rows)
    assert v["best_fixed"] == "fixed 0.01"
    assert v["seeds"] == [
        {"policy": "ppo seed 0", "dominated_by": ["fixed 0.01"], "beats_best_fixed": True}
    ]


@pytest.mark.parametrize(
    "line, field",
    [('transfer = ["rk4"]', "transfer"), ("baseline_actions = [-1]", "baseline_actions")],
)
def test_bad_fields_are_named(line, field):
    key = line.split(" =")[0].encode()
    start = TINY.index(key)
    source = TINY[:start] + line.encode() + TINY[TINY.index(b"\n", start) :]
    with pytest.raises(SuiteError, match=field):
        parse_suite(source, "tiny.toml")


def test_a_tiny_cell_trains_judges_transfers_and_reports(tmp_path):
    suite = tmp_path / "tiny.toml"
    suite.write_bytes(TINY)
    run = tmp_path / "run"
    assert main(["run", str(suite), "--out", str(run), "--no-progress"]) == 0
    record = json.loads((run / "results.jsonl").read_text().splitlines()[-1])
    result = record["result"]
    assert record["status"] == "ok" and result["train"]["steps"] == 800
    names = [r["policy"] for r in result["rows"]]
    assert names == ["ppo seed 0", "fixed 0.1", "fixed 0.01"]
    for r in result["rows"]:
        assert r["episodes"] == 2 and r["total_substeps"] > 0
        assert len(result["episodes"][r["policy"]]["substeps"]) == 2
    # Fixed μ = 1e-2 takes more substeps and errs less than 1e-1 on the same two systems.
    coarse, fine = result["rows"][1], result["rows"][2]
    assert fine["total_substeps"] > coarse["total_substeps"]
    assert fine["median_log10_error"] < coarse["median_log10_error"]
    assert result["transfer"][0]["integrator"] == "leapfrog"
    assert result["transfer"][0]["episodes"] == 1
    report = (run / "report.md").read_text()
    assert "| fixed 0.01 |" in report and "Transfer of the first seed's policy" in report
    assert (run / "plots" / "ppo-vs-fixed-mu.png").stat().st_size > 0
