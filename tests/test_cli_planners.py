"""`scalegym plan ENV --planner NAME --budget N`: a planner's episodes from the CLI; `train`
refuses a planner and says which command plays it."""

import json

import pytest

from scalegym.cli import main

ROOM = ["--set", "height=5", "--set", "width=5", "--set", "num_objects=1"]
ROOM += ["--set", "max_steps_in_episode=100"]


def run_json(capsys, argv):
    code = main(argv)
    out = capsys.readouterr().out.strip().splitlines()
    return code, (json.loads(out[-1]) if code == 0 else None)


def test_a_planner_plays_episodes_at_its_budget(capsys):
    argv = ["plan", "Rearrange-v1", *ROOM, "--planner", "random-shooting", "--budget", "64"]
    argv += ["--planner-set", "horizon=4", "--episodes", "8", "--json"]
    code, summary = run_json(capsys, argv)
    assert code == 0
    assert summary["planner"] == "random-shooting" and summary["budget"] == 64
    assert summary["episodes"] == 8 and summary["sim_steps_per_decision"] == 64
    # 64 simulated steps per decision solve a 5x5 room with one object (measured 8 of 8).
    assert summary["success"] >= 0.75 and not summary["oracle"]


@pytest.mark.parametrize(
    "planner, extra, message",
    [
        ("cem", [], "--budget"),  # required
        ("cem", ["--budget", "64", "--planner-set", "depth=3"], 'unknown field "depth"'),
        ("mcts", ["--budget", "64"], "invalid choice: 'mcts'"),
        ("cem", ["--budget", "64", "--checkpoint", "/x"], "only gumbel-muzero"),
        # --checkpoint reaches gumbel.from_checkpoint (tested on a saved run in test_gumbel.py)
        ("gumbel-muzero", ["--budget", "16", "--checkpoint", "/nonexistent"], "no checkpoint"),
    ],
)
def test_bad_planner_settings_are_named(capsys, planner, extra, message):
    assert main(["plan", "Rearrange-v1", "--planner", planner, *extra]) == 2
    assert message in capsys.readouterr().err


def test_train_points_a_planner_to_plan(capsys):
    assert main(["train", "Rearrange-v1", "--agent", "cem"]) == 2
    err = capsys.readouterr().err
    assert "scalegym plan Rearrange-v1 --planner cem --budget N" in err


def test_plan_refuses_a_host_env(capsys):
    assert main(["plan", "CartPole-v1", "--planner", "beam", "--budget", "8"]) == 2
    assert "host env" in capsys.readouterr().err


def test_help_lists_the_registrys_planners(capsys):
    from scalegym.agents import registry

    assert main(["plan", "--help"]) == 0
    help_text = capsys.readouterr().out
    assert all(name in help_text for name in registry.names("plan"))
