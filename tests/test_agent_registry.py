"""The agents registry (names by role, planners built and checked, budget agents, fakes) and the
requests the agents take (`training_request` refuses what the run would)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from scalegym.agents import registry
from scalegym.agents.budgets import BudgetRun, Criterion, budget_request
from scalegym.agents.planners.search import CEM, BeamSearch, RandomShooting
from scalegym.agents.train import training_request
from scalegym.cli import main
from scalegym.core.resolve import resolve_env

PLANNERS = ("random-shooting", "cem", "beam", "gumbel-muzero", "belief", "oracle")


def test_names_by_role() -> None:
    assert registry.names("train") == ("ppo",)
    assert registry.names("scaling") == ("ppo", "calibration", "optimal")
    assert registry.names("plan") == PLANNERS
    work = [n for n in registry.names("plan") if registry.SPECS[n].counts_work]
    assert work == ["random-shooting", "cem", "beam"]
    with pytest.raises(ValueError, match="allowed: train, scaling, plan"):
        registry.names("search")


def test_make_planner_builds_and_names_bad_options() -> None:
    assert registry.make_planner("random-shooting", 10, {"horizon": 2}) == RandomShooting(
        10, horizon=2
    )
    assert registry.make_planner("cem", 64, {"population": 8, "horizon": 2}) == CEM(
        64, horizon=2, population=8
    )
    assert registry.make_planner("beam", 10, {}) == BeamSearch(10)
    assert registry.make_planner("gumbel-muzero", 16, {}).budget == 16
    assert registry.make_planner("belief", 64, {"num_particles": 8}).num_particles == 8
    with pytest.raises(ValueError, match="unknown planner 'mcts'; allowed: random-shooting"):
        registry.make_planner("mcts", 10, {})
    with pytest.raises(ValueError, match='unknown field "widht"'):
        registry.make_planner("beam", 10, {"widht": 2})
    with pytest.raises(ValueError, match='unknown field "depth"'):
        registry.make_planner("oracle", 10, {"depth": 2})
    with pytest.raises(ValueError, match="takes no checkpoint; only gumbel-muzero"):
        registry.make_planner("cem", 64, {}, checkpoint="runs/x")


def test_describe_is_plain_data_for_help_and_list(capsys: pytest.CaptureFixture[str]) -> None:
    rows = registry.describe()
    assert [row["name"] for row in rows] == ["ppo", "calibration", "optimal", *PLANNERS]
    assert json.loads(json.dumps(rows)) == rows
    assert main(["list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["agents"] == rows


def test_a_fake_budget_agent_is_registered_and_called_with_a_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:

    seen = []

    def fake(request, log):  # type: ignore[no-untyped-def]
        seen.append(request)
        log(request.label, int(request.budgets[0]), {"scaling/pass_fraction": 1.0})
        passes = np.ones((request.num_seeds, request.budgets.size), bool)
        return BudgetRun(request.budgets, request.unit, passes * 1.0, passes, request.criterion, {})

    spec = registry.AgentSpec("fake", "a test double", {"scaling": fake})
    monkeypatch.setitem(registry.SPECS, "fake", spec)
    assert registry.budget_agent("fake") is fake
    request = budget_request(
        resolve_env("ToyChain-v0", length=4),
        budgets=np.array([8, 16]),
        unit="steps",
        criterion=Criterion("success", 0.5),
        num_seeds=2,
        seed=0,
    )
    logged = []
    run = fake(request, lambda *args: logged.append(args))
    assert request.label == "length=4" and run.passes.shape == (2, 2)


@pytest.mark.parametrize(
    "env_id, agent, params, message",
    [
        ("ToyChain-v0", "dqn", {}, "unknown agent 'dqn'; allowed: ppo"),
        ("ToyChain-v0", "ppo", {"lr": 1e-3}, 'unknown field "lr"'),
        ("ToyChain-v0", "ppo", {"num_envs": "8"}, "expects int"),
        ("ToyChain-v0", "ppo", {"total_timesteps": 8}, "set by the step budget"),
        # the whole config: num_minibatches (4) must divide num_envs x num_steps = 15
        ("ToyChain-v0", "ppo", {"num_envs": 3, "num_steps": 5}, "num_minibatches=4 must divide"),
        ("CartPole-v1", "ppo", {"network": "gru"}, "host path trains feed-forward"),
    ],
)
def test_training_request_refuses_what_the_run_would(
    env_id: str, agent: str, params: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        training_request(
            resolve_env(env_id), agent, steps=512, agent_params=params, num_seeds=1, seed=0
        )


def test_training_request_checks_counts_and_devices() -> None:
    env = resolve_env("ToyChain-v0")
    with pytest.raises(ValueError, match="steps=0; allowed: integers >= 1"):
        training_request(env, "ppo", steps=0, agent_params={}, num_seeds=1, seed=0)
    with pytest.raises(ValueError, match="devices=99"):
        training_request(env, "ppo", steps=8, agent_params={}, num_seeds=1, seed=0, devices=99)
    request = training_request(
        env, "ppo", steps=512, agent_params={"num_envs": 16}, num_seeds=2, seed=3
    )
    assert request.config.total_timesteps == 512 and request.config.num_envs == 16
    assert (request.num_seeds, request.seed, request.checkpoint_dir) == (2, 3, None)


def test_load_trained_takes_the_training_request(tmp_path: Path) -> None:
    from scalegym.agents.ppo.trained import load_trained
    from scalegym.agents.train import train_agent

    request = training_request(
        resolve_env("ToyChain-v0"),
        "ppo",
        steps=512,
        agent_params={"num_envs": 16, "num_steps": 16},
        num_seeds=2,
        seed=0,
        checkpoint_dir=tmp_path,
    )
    result = train_agent(request, progress=False)
    ppo, runner = load_trained(request)
    assert ppo.config == request.config and runner.update.shape == (2,)
    assert int(runner.update[0]) == result.steps // request.config.batch_size
