"""`scalegym train ENV --agent PLANNER`: a planner's episodes from the CLI, checkpoints by path."""

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
    argv = ["train", "Rearrange-v1", *ROOM, "--agent", "random-shooting"]
    argv += ["--agent-set", "budget=64", "--agent-set", "horizon=4", "--episodes", "8", "--json"]
    code, summary = run_json(capsys, argv)
    assert code == 0
    assert summary["episodes"] == 8 and summary["sim_steps_per_decision"] == 64
    # 64 simulated steps per decision solve a 5x5 room with one object (measured 8 of 8).
    assert summary["success"] >= 0.75 and not summary["oracle"]


@pytest.mark.parametrize(
    "extra, message",
    [
        ([], "needs --agent-set budget=N"),
        (["--agent-set", "budget=64", "--agent-set", "depth=3"], 'unknown field "depth"'),
        # checkpoint= reaches gumbel.from_checkpoint (tested on a saved run in test_gumbel.py)
        (["--agent-set", "budget=16", "--agent-set", "checkpoint=/nonexistent"], "no checkpoint"),
    ],
)
def test_bad_planner_settings_are_named(capsys, extra, message):
    agent = "gumbel-muzero" if "checkpoint=/nonexistent" in extra else "cem"
    assert main(["train", "Rearrange-v1", "--agent", agent, *extra]) == 2
    assert message in capsys.readouterr().err
