"""Issue 28, "first contact", part 2: the CLI says how to continue after Ctrl-C, extends a
finished training run, and refuses what does not apply in one line; runs record the code they
ran. Part 1, list and imports, is test_cli_list_and_imports.py, whose helpers this file uses."""

from __future__ import annotations

import importlib.metadata
import json
import shlex
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_cli_list_and_imports import bench_suite, one_line_refusal

import scalegym
from scalegym.cli import build_parser, main
from scalegym.suites.rundir import read_records

# 16 envs x 16 steps = 256 env steps per update (test_cli_edges.py's TRAIN settings).
TRAIN = ["train", "ToyChain-v0", "--seeds", "2", "--agent-set", "num_envs=16"]
TRAIN += ["--agent-set", "num_steps=16", "--no-progress"]


def printed_command(err: str, start: str) -> list[str]:
    """The argv of the one line of `err` that starts with `start`."""
    (line,) = [line for line in err.splitlines() if line.strip().startswith(start)]
    return shlex.split(line.strip())


# ----------------------------------------------------------------------------------------- Ctrl-C


def test_ctrl_c_in_run_prints_the_resume_command_and_keeps_finished_cells(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from scalegym.suites import runner

    real = runner.run_cell

    def interrupted_at_second(cell: Any, *args: Any, **kwargs: Any) -> Any:
        if cell.name == "second":
            raise KeyboardInterrupt
        return real(cell, *args, **kwargs)

    suite = bench_suite(tmp_path)
    monkeypatch.chdir(tmp_path)  # the run goes to a stamped folder under ./results/runs
    monkeypatch.setattr(runner, "run_cell", interrupted_at_second)
    code = main(["run", str(suite), "--import", "toy_envs", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 130
    assert "scalegym: error: interrupted; 1 finished cell(s) are kept in" in err
    resume = printed_command(err, "scalegym run --resume")
    run_dir = Path(resume[3])
    assert resume == ["scalegym", "run", "--resume", str(run_dir), "--import", "toy_envs"]
    assert run_dir.parent == Path("results/runs/fc")
    assert [r["cell"] for r in read_records(run_dir / "results.jsonl")] == ["first"]

    monkeypatch.setattr(runner, "run_cell", real)
    assert main([*resume[1:], "--no-progress"]) == 0
    records = read_records(run_dir / "results.jsonl")
    assert [(r["cell"], r["status"]) for r in records] == [("first", "ok"), ("second", "ok")]


def test_ctrl_c_in_train_prints_the_resume_command_and_keeps_the_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from scalegym.suites.tensorboard import TensorBoardLogger

    real = TensorBoardLogger.log_scalars
    calls: list[int] = []

    def interrupted_at_third(self: Any, step: int, scalars: Any) -> None:
        calls.append(step)
        if len(calls) == 3:  # two chunks done and checkpointed
            raise KeyboardInterrupt
        real(self, step, scalars)

    monkeypatch.setattr(TensorBoardLogger, "log_scalars", interrupted_at_third)
    out = tmp_path / "train"
    argv = [*TRAIN, "--steps", "1536", "--set", "slip_prob=0.0", "--out", str(out)]
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert err.startswith("scalegym: error: interrupted")
    resume = printed_command(err, "scalegym train")
    assert resume[:3] == ["scalegym", "train", "ToyChain-v0"]
    assert resume[-3:] == ["--resume", "--out", str(out)]
    for flag, value in [("--steps", "1536"), ("--seeds", "2"), ("--set", "slip_prob=0.0")]:
        assert value in resume and resume[resume.index(value) - 1] == flag, resume
    progress = json.loads((out / "checkpoint" / "progress.json").read_text())
    assert progress["updates"] == 2

    monkeypatch.setattr(TensorBoardLogger, "log_scalars", real)
    assert main([*resume[1:], "--json"]) == 0, capsys.readouterr().err
    result = json.loads((out / "result.json").read_text())
    assert result["steps"] == 1536 and len(result["curve"]) == 6
    assert result["curve"][:2] == progress["curve"]


# ----------------------------------------------------------------------- extending a training run


def train_curve(out: Path) -> list[dict[str, Any]]:
    return json.loads((out / "result.json").read_text())["curve"]


def test_resume_extends_a_finished_run_and_equals_a_fresh_one_at_a_constant_rate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    constant = [*TRAIN, "--agent-set", "anneal_lr=False"]
    short, fresh = tmp_path / "short", tmp_path / "fresh"
    assert main([*constant, "--steps", "768", "--out", str(short)]) == 0
    before = train_curve(short)
    assert main([*constant, "--steps", "1536", "--out", str(short), "--resume"]) == 0
    err = capsys.readouterr().err
    assert "extending" in err and "768" in err and "1,536" in err
    extended = train_curve(short)
    assert len(before) == 3 and len(extended) == 6 and extended[:3] == before
    result = json.loads((short / "result.json").read_text())
    assert result["steps"] == 1536 and result["extended"] == [{"from": 768, "to": 1536}]

    assert main([*constant, "--steps", "1536", "--out", str(fresh)]) == 0
    losses = [[c["train/loss"] for c in train_curve(d)] for d in (short, fresh)]
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)


def test_resume_refuses_only_a_real_mismatch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert main([*TRAIN, "--steps", "768", "--out", str(out)]) == 0
    capsys.readouterr()
    tail = ["--steps", "1536", "--out", str(out), "--resume"]
    err = one_line_refusal(capsys, main([*TRAIN, "--agent-set", "ent_coef=0.02", *tail]))
    assert "config.ent_coef differ" in err and "total_timesteps" not in err
    argv = [*TRAIN, "--steps", "512", "--out", str(out), "--resume"]
    one_line_refusal(capsys, main(argv), "already trained 768 env steps per seed")
    argv = ["train", "ToyChainBox-v0", *TRAIN[2:], *tail]
    one_line_refusal(capsys, main(argv), "env differ")


def test_train_help_says_what_resume_does_to_an_annealed_rate(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["train", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--steps N extends" in help_text and "anneal_lr" in help_text


# --------------------------------------------------------------------------------------- planners


def test_plan_shows_success_only_for_an_env_with_a_success_flag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["plan", "Tiger-v0", "--planner", "random-shooting", "--budget", "4"]
    argv += ["--planner-set", "horizon=2", "--episodes", "2"]
    assert main([*argv, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["success"] is None
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "return" in out and "success" not in out


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["plan", "Tiger-v0", "--planner", "beam", "--budget", "8", "--steps", "100"],
         ["--steps", "scalegym train", "--episodes"]),
        (["train", "Tiger-v0", "--episodes", "3"], ["--episodes", "scalegym plan", "--steps"]),
        (["train", "Tiger-v0", "--budget", "3"], ["--budget", "scalegym plan"]),
        (["train", "Tiger-v0", "--planner", "cem"], ["--planner", "--agent"]),
    ],
)  # fmt: skip
def test_flags_of_another_command_are_refused_with_a_reason(
    capsys: pytest.CaptureFixture[str], argv: list[str], needles: list[str]
) -> None:
    one_line_refusal(capsys, main(argv), f"scalegym {argv[0]}: error:", *needles)


# ----------------------------------------------------------------------------------- small things


def test_a_retired_id_is_explained_by_train(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "Rearrange-v0", "--steps", "256"])
    one_line_refusal(capsys, code, "Rearrange-v0 was replaced by Rearrange-v1")


def test_argparse_errors_are_one_line_with_a_help_hint(
    capsys: pytest.CaptureFixture[str],
) -> None:
    err = one_line_refusal(capsys, main(["train", "ToyChain-v0", "--steps", "abc"]))
    assert err.startswith("scalegym train: error: argument --steps:")
    assert "scalegym train --help" in err
    err = one_line_refusal(capsys, main(["nosuchcommand"]))
    assert err.startswith("scalegym: error:") and "scalegym --help" in err


@pytest.mark.parametrize(("text", "steps"), [("1e5", 100_000), ("2.5e3", 2_500), ("1_000", 1000)])
def test_steps_take_integral_e_notation(text: str, steps: int) -> None:
    assert build_parser().parse_args(["train", "ToyChain-v0", "--steps", text]).steps == steps


@pytest.mark.parametrize("text", ["1.5", "1e-1", "0", "-1e3", "nan", "inf"])
def test_steps_refuse_what_is_not_a_positive_integer(
    capsys: pytest.CaptureFixture[str], text: str
) -> None:
    code = main(["train", "ToyChain-v0", f"--steps={text}"])
    one_line_refusal(capsys, code, f"expected a positive integer, got '{text}'")


def test_a_missing_directory_is_said_not_to_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "nope")
    for argv in (["tb", missing], ["report", missing], ["run", "--resume", missing]):
        one_line_refusal(capsys, main(argv), f"{missing}: no such directory")
    code = main([*TRAIN, "--out", missing, "--resume"])
    one_line_refusal(capsys, code, f"{missing}: no such directory")


def package_commit() -> str:
    package = Path(scalegym.__file__).resolve().parent
    done = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=package, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_a_run_outside_the_checkout_records_the_version_and_the_packages_commit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # not a git checkout
    assert main(["run", str(bench_suite(tmp_path)), "--out", "run", "--no-progress"]) == 0
    code = json.loads((tmp_path / "run" / "manifest.json").read_text())["git"]
    assert code["commit"] == package_commit()
    assert code["scalegym"] == importlib.metadata.version("scalegym")


def test_code_state_of_an_untracked_copy_has_its_version_and_no_commit(tmp_path: Path) -> None:
    from scalegym.suites.rundir import code_state

    version = importlib.metadata.version("scalegym")
    assert code_state(tmp_path) == {"commit": None, "dirty": None, "scalegym": version}
    # A copy inside someone else's checkout (a virtual env in a project) is not that commit.
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "README").write_text("another project")
    subprocess.run([*git, "add", "README"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=tmp_path, check=True)
    package = tmp_path / "venv" / "scalegym"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    assert code_state(package)["commit"] is None
