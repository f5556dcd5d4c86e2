"""The `timestep` cell: PPO trained to pick ThreeBody's step, judged against every fixed μ."""

import json
from typing import ClassVar

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import pytest
from flax import struct

import scalegym
from scalegym.agents.planners.planning import Decision
from scalegym.agents.registry import make_planner
from scalegym.cli import main
from scalegym.envs.threebody import evaluation
from scalegym.envs.threebody.verdict import select_seed, verdict
from scalegym.suites.cells.timestep import report_lines, timestep_figure
from scalegym.suites.spec import SuiteError, parse_suite

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
# 8 evaluation envs, not 64: the integrator compiles a copy of its step per lane-group size
agent_params = { num_envs = 8, num_steps = 100, num_minibatches = 2, eval_envs = 8 }
instances = 2
validation_instances = 2
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


def test_the_selected_seed_is_undominated_first_then_best_paid():
    rows = [
        row("ppo seed 0", -6.2, 760, 1.9),  # the best reward, but dominated by fixed 0.02
        row("ppo seed 1", -8.0, 1000, 1.85),
        row("ppo seed 2", -8.1, 1200, 1.80),
        row("fixed 0.02", -6.3, 400, 1.8),
        row("fixed 0.01", -7.9, 850, 1.83),
    ]
    assert select_seed(rows) == "ppo seed 1"
    # Every seed dominated: the highest reward of them all.
    assert select_seed([*rows[:1], *rows[3:]]) == "ppo seed 0"
    with pytest.raises(ValueError, match="no PPO rows"):
        select_seed(rows[3:])


@pytest.mark.parametrize(
    "line, field",
    [
        ("validation_instances = 999", "validation_instances"),
        ('transfer = ["rk4"]', "transfer"),
        ("baseline_actions = [-1]", "baseline_actions"),
        ('transfer_instances = 1\nplanner = "beam"', "planner_budgets"),
        ('transfer_instances = 1\nplanner = "gumbel-muzero"\nplanner_budgets = [10]', "planner"),
        (
            'transfer_instances = 1\nplanner = "beam"\nplanner_budgets = [10]\n'
            "planner_params = { depth = 2 }",
            "planner_params",
        ),
    ],
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
    # Validation: the same policies on instance seeds 2-3, other systems than the verdict's 0-1.
    validation = result["validation"]
    assert validation["instances"] == [2, 3] and validation["selected"] == "ppo seed 0"
    assert [r["policy"] for r in validation["rows"]] == names
    assert all(r["episodes"] == 2 for r in validation["rows"])
    assert validation["rows"][2]["median_log10_error"] != result["rows"][2]["median_log10_error"]
    assert result["verdict"]["selected"] == "ppo seed 0"
    report = (run / "report.md").read_text()
    assert "| fixed 0.01 |" in report and "Transfer of the first seed's policy" in report
    assert "**The trained policy: ppo seed 0**, selected on validation instance seeds 2–3" in report
    assert (run / "plots" / "ppo-vs-fixed-mu.png").stat().st_size > 0


def test_one_step_lookahead_takes_the_best_mu_and_pays_for_every_simulation():
    # Beam search at budget A = 10 expands the root once: every μ simulated one step from the
    # same state, the best paper reward taken. Known answer from stepping each μ for real.
    with jax.enable_x64(True):
        env, params = scalegym.make("ThreeBody-v0", num_instances=2)
        params = params.replace(instance=1, reward="paper")
        step = jax.jit(env.step_env)
        obs, state = env.reset_env(jax.random.key(0), params)
        obs, state, *_ = step(jax.random.key(1), state, 5, params)  # t = 2 pays the formula
        outcomes = [step(jax.random.key(2), state, a, params) for a in range(len(env.actions))]
        rewards = np.array([float(o[2]) for o in outcomes])
        substeps = np.array([int(o[4]["substeps"]) for o in outcomes])
        planner = make_planner("beam", len(env.actions), {})
        decision, _ = jax.jit(planner.act, static_argnums=0)(
            env, params, None, obs, state, jax.random.key(3)
        )
    assert int(decision.action) == int(rewards.argmax()) and len(set(rewards)) > 1
    assert int(decision.sim_steps) == len(env.actions)
    assert int(decision.sim_work) == substeps.sum() > substeps.max()


def test_a_planners_own_substeps_are_charged_beside_the_env_ones():
    # One step from each instance's start: the planner simulates every μ (their substeps are
    # planner_substeps); the step pays 0 for every μ (t = 1), so it takes the first, μ index 0.
    with jax.enable_x64(True):
        env, params = scalegym.make("ThreeBody-v0", num_instances=2)
        instances = (0, 1)
        step = jax.jit(env.step_env)  # the program the test above compiled (params are data)
        simulated = np.zeros((len(env.actions), len(instances)), np.int64)  # [A, instances]
        for i in instances:
            lane = params.replace(instance=i, reward="paper")
            _, state = env.reset_env(jax.random.key(0), lane)
            for a in range(len(env.actions)):
                info = step(jax.random.key(1), state, a, lane)[4]
                simulated[a, i] = int(info["substeps"])
        planned = evaluation.evaluate_planner_instances(
            env, params, make_planner("beam", len(env.actions), {}), instances, 1
        )
    np.testing.assert_array_equal(planned["planner_substeps"], simulated.sum(0))
    np.testing.assert_array_equal(planned["substeps"], simulated[0])
    row = evaluation.summarize(planned)
    assert row["total_substeps"] == row["env_substeps"] + row["planner_substeps"]
    assert row["env_substeps"] == simulated[0].sum()
    with jax.enable_x64(True), pytest.raises(ValueError, match="does not count its simulated"):
        evaluation.evaluate_planner_instances(env, params, Uncounted(), (0,), 1)


@struct.dataclass
class Uncounted:
    """A planner that reports simulated steps but not their work."""

    name: ClassVar[str] = "uncounted"

    def init(self, env, params, obs, state, key):
        return None

    def act(self, env, params, memory, obs, state, key):
        return Decision(action=jnp.int32(0), sim_steps=jnp.int32(1)), memory

    def observe(self, env, params, memory, action, obs):
        return memory


def test_planner_rows_are_reported_and_drawn_apart():
    rows = [
        row("ppo seed 0", -8.0, 1000, 2.5),
        row("fixed 0.01", -9.0, 900, 2.0),
        {**row("beam budget 10", -9.5, 5000, 2.6), "env_substeps": 800, "planner_substeps": 4200},
    ]
    for r in rows:
        r.update(iqr_log10_error=[r["median_log10_error"] - 1, r["median_log10_error"]])
        r.update(ended_early=0)
    episodes = {
        r["policy"]: {"substeps": [r["total_substeps"]] * 2, "final_log10_error": [-8.0, -9.0]}
        for r in rows
    }
    result = {"instances": 2, "eval_steps": 3, "rows": rows, "verdict": verdict(rows)}
    text = "\n".join(report_lines("cell", {**result, "episodes": episodes}))
    assert "| beam budget 10 | -9.50" in text and "800 stepping the env + 4,200" in text
    assert result["verdict"]["seeds"][0]["dominated_by"] == ["fixed 0.01"]  # not the planner
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = timestep_figure(plt, "cell", "ThreeBody-v0", {**result, "episodes": episodes})
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert "beam budget 10" in labels
    assert "a planner's own included" in fig.axes[0].get_xlabel()
    plt.close(fig)


@pytest.mark.parametrize(
    ("validation_cost", "how"),
    [
        (800, "the highest mean paper reward of the seeds no fixed μ dominates there"),
        (2000, "every seed is dominated by a fixed μ there, so the highest mean paper reward"),
    ],
)
def test_the_report_says_how_the_seed_was_selected(validation_cost, how):
    rows = [row("ppo seed 0", -8.0, 1000, 2.5), row("fixed 0.01", -7.9, 900, 2.0)]
    for r in rows:
        r.update(iqr_log10_error=[r["median_log10_error"] - 1, r["median_log10_error"]])
        r.update(ended_early=0)
    checks = [row("ppo seed 0", -8.0, validation_cost, 1.5), row("fixed 0.01", -9.0, 1000, 2.0)]
    selected = select_seed(checks)
    judged = {**verdict(rows), "selected": selected}
    validation = {"instances": [2, 3], "rows": checks, "selected": selected}
    result = {"instances": 2, "eval_steps": 3, "rows": rows, "verdict": judged}
    text = "\n".join(report_lines("cell", {**result, "validation": validation}))
    assert "**The trained policy: ppo seed 0**, selected on validation instance seeds 2–3" in text
    assert how in text and "On the evaluation seeds it is dominated by none" in text
    dominated = "none" if validation_cost < 1000 else "fixed 0.01"
    assert f"| ppo seed 0 | -8.00 | {validation_cost:,} | 1.500 | {dominated} |" in text
