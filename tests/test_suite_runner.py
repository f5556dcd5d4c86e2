"""The suite runner and the run/train/report commands, with a stand-in for the PPO trainer."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from scalegym.agents.result import FinalMetrics, TrainResult
from scalegym.cli import main
from scalegym.suites.measures import CONSUMED
from scalegym.suites.report import cell_summary
from scalegym.suites.rundir import append_record, read_records
from scalegym.suites.tensorboard import read_scalars

SUITE = """
[suite]
name = "tiny"
description = "a bench cell and a stand-in train cell"
seeds = 2

[[cell]]
name = "bench-tiny"
kind = "bench"
env = "Rearrange-v1"
env_params = { height = 5, width = 5, wall_density = 0.0, pool_size = 4 }
batch_sizes = [1, 4]
steps = 8
repeats = 1

[[cell]]
name = "train-tiny"
kind = "train"
env = "Rearrange-v1"
env_params = { height = 5, width = 5 }
agent = "ppo"
steps = 1000
agent_params = { num_envs = 8 }
threshold = 0.5
"""


class StandInTrainer:
    """`train_agent` with the real signature: logs four chunks, checkpoints, can fail on demand."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.fail_next = False

    def __call__(
        self,
        env_id: str,
        agent: str = "ppo",
        *,
        total_steps: int,
        num_seeds: int = 1,
        seed: int = 0,
        env_overrides: dict[str, Any] | None = None,
        agent_overrides: dict[str, Any] | None = None,
        log: Any = None,
        checkpoint_dir: Path | None = None,
        resume: bool = False,
        progress: bool = True,
        devices: int | None = None,
    ) -> TrainResult:
        if agent != "ppo":
            raise ValueError(f"unknown agent {agent!r}; allowed: ppo")
        self.calls.append(
            {
                "env": env_id,
                "seeds": num_seeds,
                "resume": resume,
                "seed": seed,
                "env_overrides": env_overrides,
                "agent_overrides": agent_overrides,
            }
        )
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("stand-in failure")
        curve = []
        for chunk in range(1, 5):
            steps = total_steps * chunk // 4
            scalars = {
                "train/return": float(chunk),
                "train/success": chunk / 4,
                "perf/sps": 1000.0 * chunk,
                "per_seed_return": [1.0] * num_seeds,
            }
            if log is not None:
                log(steps, scalars)
            curve.append({"step": steps, "return": float(chunk), "success": chunk / 4})
        if checkpoint_dir is not None:
            checkpoint_dir.mkdir(parents=True, exist_ok=True)
            (checkpoint_dir / "state.msgpack").write_bytes(b"\0")
        final = FinalMetrics(
            eval_return=4.0, eval_success=1.0, per_seed_return=[3.5, 4.5][:num_seeds]
        )
        return TrainResult(
            env=env_id,
            agent=agent,
            path="jax",
            steps=total_steps,
            seeds=num_seeds,
            sps=1234.0,
            compile_s=0.5,
            wall_s=1.0,
            config={},
            final=final,
            curve=curve,
        )


@pytest.fixture
def trainer(monkeypatch: pytest.MonkeyPatch) -> StandInTrainer:
    """The stand-in behind `scalegym train` and the train cells: the registry's PPO trainer,
    given the request (its config built, validated and recorded as the run would)."""
    from scalegym.agents import train

    stand_in = StandInTrainer()

    def train_ppo(request: train.TrainRequest, *, log: Any, progress: bool) -> TrainResult:
        return stand_in(
            request.env.id,
            request.agent,
            total_steps=request.config.total_timesteps,
            num_seeds=request.num_seeds,
            seed=request.seed,
            env_overrides=dict(request.env.overrides),
            agent_overrides={"num_envs": request.config.num_envs},
            log=log,
            checkpoint_dir=request.checkpoint_dir,
            resume=request.resume,
            progress=progress,
            devices=request.devices,
        )

    monkeypatch.setattr(train, "train_ppo", train_ppo)
    return stand_in


def _suite(tmp_path: Path, text: str = SUITE) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(text)
    return path


def _run_json(capsys: pytest.CaptureFixture[str], *args: str, code: int = 0) -> dict:
    assert main(["run", *args, "--json", "--no-progress"]) == code
    out, err = capsys.readouterr()
    assert "run directory:" in err and "scalegym tb" in err  # stdout holds only the JSON
    return json.loads(out)


def test_run_writes_every_output(
    trainer: StandInTrainer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    out = _run_json(capsys, str(_suite(tmp_path)), "--out", str(run_dir))
    assert out["run_dir"] == str(run_dir) and out["failed"] == 0
    assert [r["cell"] for r in out["cells"]] == ["bench-tiny", "train-tiny"]
    assert trainer.calls[0]["seeds"] == 2 and trainer.calls[0]["resume"] is False
    assert trainer.calls[0]["agent_overrides"] == {"num_envs": 8}

    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["suite"]["name"] == "tiny" and len(manifest["suite"]["sha256"]) == 64
    assert {"versions", "device", "git", "started", "command", "seeds"} <= set(manifest)
    assert manifest["seeds"] == {"train-tiny": 2} and manifest["resumed"] == []
    assert (run_dir / "suite.toml").read_text() == SUITE

    records = read_records(run_dir / "results.jsonl")
    assert [r["status"] for r in records] == ["ok", "ok"]
    bench, train = records
    assert [row["batch_size"] for row in bench["result"]["results"]] == [1, 4]
    assert bench["result"]["consumes"] == CONSUMED  # what each timed step had to produce
    assert train["result"]["threshold"]["passed"] is True
    for key in ("cell", "kind", "env", "status", "result", "started", "finished", "wall_s"):
        assert key in bench and key in train

    rows = list(csv.DictReader((run_dir / "summary.csv").open()))
    assert [row["cell"] for row in rows] == ["bench-tiny", "train-tiny"]
    assert rows[0]["batch_size"] == "4" and float(rows[0]["sps"]) > 0
    assert rows[1]["final_return"] == "4.0" and rows[1]["passed"] == "True"
    report = (run_dir / "report.md").read_text()
    assert "B=4" in report and "bench-tiny" in report and "train-tiny" in report
    assert f"Each timed step feeds {CONSUMED} into the result, auto-reset included" in report
    assert "4.000 ± 0.500" in report and "success ≥ 0.5: pass" in report
    # Seeds 3.5 and 4.5: IQM 4.0; bootstrap replicates 3.5, 4.0 or 4.5 give the interval.
    assert "eval return IQM [95% CI]" in report and "| 4.000 [3.500, 4.500] |" in report

    curves = read_scalars(run_dir / "tb" / "train-tiny")
    assert [step for step, _ in curves["train/return"]] == [250, 500, 750, 1000]
    assert "per_seed_return" not in curves  # lists are not scalars
    assert [step for step, _ in read_scalars(run_dir / "tb" / "bench-tiny")["perf/sps"]] == [1, 4]


def test_failed_cell_is_recorded_and_resume_reruns_only_it(
    trainer: StandInTrainer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    trainer.fail_next = True
    out = _run_json(capsys, str(_suite(tmp_path)), "--out", str(run_dir), code=1)
    assert out["failed"] == 1
    failed = out["cells"][1]
    assert failed["status"] == "failed" and "stand-in failure" in failed["error"]
    assert "stand-in failure" in (run_dir / "report.md").read_text()

    # A kill can leave a write without its newline: reading ignores it, resuming drops it.
    with (run_dir / "results.jsonl").open("ab") as f:
        f.write(b'{"cell": "train-tiny", "sta')
    assert len(read_records(run_dir / "results.jsonl")) == 2

    out = _run_json(capsys, "--resume", str(run_dir))  # the suite comes from the run's copy
    assert out["failed"] == 0 and [r["status"] for r in out["cells"]] == ["ok", "ok"]
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line parses
    assert [(r["cell"], r["status"]) for r in records] == [
        ("bench-tiny", "ok"),
        ("train-tiny", "failed"),
        ("train-tiny", "ok"),
    ]
    assert len(trainer.calls) == 2
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert len(manifest["resumed"]) == 1 and manifest["resumed"][0]["suite_changed"] is False


def test_resume_continues_a_checkpointed_cell(
    trainer: StandInTrainer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    _run_json(capsys, str(_suite(tmp_path)), "--out", str(run_dir))
    # As if killed during train-tiny after a checkpoint: its record is lost, the checkpoint not.
    lines = (run_dir / "results.jsonl").read_text().splitlines(keepends=True)
    (run_dir / "results.jsonl").write_text(lines[0])
    _run_json(capsys, str(_suite(tmp_path)), "--resume", str(run_dir))
    assert trainer.calls[-1]["resume"] is True
    assert [r["cell"] for r in read_records(run_dir / "results.jsonl")] == [
        "bench-tiny",
        "train-tiny",
    ]


def test_run_dir_misuse_is_a_usage_error(
    trainer: StandInTrainer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    _run_json(capsys, str(_suite(tmp_path)), "--out", str(run_dir))
    assert main(["run", str(_suite(tmp_path)), "--out", str(run_dir)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["run", "--resume", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err
    assert main(["run", "smoke", "--resume", str(run_dir)]) == 2
    assert "run of suite 'tiny'" in capsys.readouterr().err
    assert main(["run"]) == 2


def test_report_command_regenerates(
    trainer: StandInTrainer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    _run_json(capsys, str(_suite(tmp_path)), "--out", str(run_dir))
    (run_dir / "report.md").unlink()
    (run_dir / "summary.csv").unlink()
    assert main(["report", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "# Suite `tiny`" in out and "device:" in out
    assert (run_dir / "summary.csv").exists() and (run_dir / "report.md").read_text() == out[:-1]
    assert main(["report", str(tmp_path)]) == 2


def test_pending_cells_show_in_the_report(tmp_path: Path) -> None:
    from scalegym.suites.report import write_outputs

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    cells = [
        {"name": "a", "kind": "bench", "env": "E-v0"},
        {"name": "b", "kind": "train", "env": "E-v0"},
    ]
    (run_dir / "manifest.json").write_text(json.dumps({"suite": {"name": "s"}, "cells": cells}))
    append_record(
        run_dir / "results.jsonl",
        {
            "cell": "a",
            "kind": "bench",
            "env": "E-v0",
            "status": "failed",
            "error": "boom | x",
            "result": {},
            "wall_s": 0.1,
        },
    )
    summary, report = write_outputs(run_dir)
    rows = list(csv.DictReader(summary.open()))
    assert [(r["cell"], r["status"]) for r in rows] == [("a", "failed"), ("b", "pending")]
    text = report.read_text()
    assert "boom \\| x" in text and "Not run yet: b" in text


def test_train_command(
    trainer: StandInTrainer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "train"
    args = [
        "train",
        "Rearrange-v1",
        "--steps",
        "400",
        "--seeds",
        "2",
        "--seed",
        "3",
        "--set",
        "height=5",
        "--set",
        "width=5",
        "--agent-set",
        "num_envs=8",
        "--out",
        str(out_dir),
        "--json",
        "--no-progress",
    ]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary) == {
        "env",
        "agent",
        "path",
        "steps",
        "sps",
        "compile_s",
        "seeds",
        "final",
        "run_dir",
    }
    assert summary["seeds"] == 2 and summary["run_dir"] == str(out_dir)
    call = trainer.calls[0]
    assert call["env_overrides"] == {"height": 5, "width": 5} and call["seed"] == 3
    assert json.loads((out_dir / "result.json").read_text())["final"]["return"] == 4.0
    assert "train/return" in read_scalars(out_dir / "tb")
    # The same --out again needs --resume; with it the trainer is asked to continue.
    assert main(args) == 2
    assert "--resume" in capsys.readouterr().err
    assert main([*args, "--resume"]) == 0
    assert trainer.calls[-1]["resume"] is True


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--agent", "dqn"], "unknown agent"),
        (["--agent-set", "lr=0.1"], "lr"),
        (["--set", "height=2"], "height"),
        (["--resume"], "--out"),
    ],
)
def test_train_usage_errors(
    trainer: StandInTrainer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    extra: list[str],
    needle: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["train", "Rearrange-v1", "--steps", "100", "--no-progress", *extra]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_smoke_train_cell_with_real_ppo(tmp_path: Path) -> None:
    """The shipped smoke suite's PPO cell, really trained (about 10 s on 2 CPU cores).

    It is also the learning test for Rearrange (see test_learning.py): success rises from an
    untrained policy's to >= 0.9, evaluated and in training."""
    pytest.importorskip("scalegym.agents.train")
    from test_learning import untrained_eval

    from scalegym.suites.cells import TrainCell
    from scalegym.suites.runner import run_cell
    from scalegym.suites.spec import load_suite

    cell = next(c for c in load_suite("smoke").cells if isinstance(c, TrainCell))
    record = run_cell(cell, tmp_path, advance=lambda fraction: None)
    assert record["status"] == "ok", record.get("traceback")
    result = record["result"]
    assert result["steps"] <= cell.steps and result["final"]["return"] is not None
    # The shipped threshold (success >= 0.5 on a 5x5 open room) is met, and the verdict says so.
    verdict = result["threshold"]
    assert (verdict["metric"], verdict["value"]) == ("success", cell.threshold) == ("success", 0.5)
    assert verdict["achieved"] == result["final"]["success"] and verdict["achieved"] >= 0.9
    assert verdict["passed"] is True
    assert "success ≥ 0.5: pass" in cell_summary(record)
    assert result["final"]["train_success"] >= 0.9
    untrained = untrained_eval(cell.env, cell.steps, **cell.env_params)
    assert untrained["success"] <= 0.3, untrained
    assert result["final"]["return"] > untrained["return"] + 5.0  # the 10-point bonus, mostly
    curves = read_scalars(tmp_path / "tb" / cell.name)
    steps = [step for step, _ in curves["train/return"]]
    assert steps == sorted(steps) and len(steps) > 3 and "perf/sps" in curves


def test_new_commands_have_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command, flag in (
        ("run", "--resume"),
        ("train", "--agent-set"),
        ("tb", "--port"),
        ("report", "RUN_DIR"),
    ):
        assert main([command, "--help"]) == 0
        assert flag in capsys.readouterr().out


@pytest.mark.usefixtures("out_of_memory_at_batch_3")
def test_bench_cell_failing_at_one_size_keeps_the_rest(tmp_path: Path) -> None:
    from scalegym.suites.cells import BenchCell
    from scalegym.suites.runner import run_cell

    cell = BenchCell(0, "b", "ToyChain-v0", {}, batch_sizes=(1, 3, 2), steps=4, repeats=1, seed=0)
    record = run_cell(cell, tmp_path, advance=lambda fraction: None)
    assert (
        record["status"] == "failed" and "B=3: MemoryError: RESOURCE_EXHAUSTED" in record["error"]
    )
    assert [row["batch_size"] for row in record["result"]["results"]] == [1, 2]
    assert [step for step, _ in read_scalars(tmp_path / "tb" / "b")["perf/sps"]] == [1, 2]


def test_the_report_names_the_version_of_a_run_from_outside_a_checkout() -> None:
    from scalegym.suites.report import code_line

    assert code_line({"commit": None, "dirty": None, "scalegym": "0.3.0"}) == (
        "scalegym 0.3.0 (not a git checkout)"
    )
    assert code_line({"commit": "0123456789abcdef", "dirty": True, "scalegym": "0.3.0"}) == (
        "commit 0123456789ab (uncommitted changes)"
    )
    assert code_line({}) == "commit unknown"  # a manifest from before the version was recorded
