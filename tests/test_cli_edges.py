"""Bad input and faults at the command line: refused before any work, in one line, no debris."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from scalegym.cli import main

BENCH = ["bench", "ToyChain-v0", "--batch-sizes", "1", "--steps", "4", "--repeats", "1"]
# test_ppo_runs.py's checkpoint run (same compiled programs): 6 updates of 16 x 16, 2 seeds.
TRAIN = [
    "train",
    "ToyChain-v0",
    "--steps",
    "1536",
    "--seeds",
    "2",
    "--agent-set",
    "num_envs=16",
    "--agent-set",
    "num_steps=16",
    "--no-progress",
]
RUN_SUITE = """
[suite]
name = "edge"

[[cell]]
name = "bench"
kind = "bench"
env = "ToyChain-v0"
batch_sizes = [1]
steps = 4
repeats = 1
"""


def unwritable_places(tmp_path: Path) -> list[Path]:
    """Folders nothing can be written into: under a regular file (even root is refused there),
    and, when not running as root, a folder without write permission."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    places = [blocker / "out"]
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        places.append(locked / "out")
    return places


def assert_one_line_refusal(capsys: pytest.CaptureFixture[str], code: int, needle: str) -> None:
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert err.count("scalegym: error:") == 1 and needle in err and "Traceback" not in err


def test_unwritable_output_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from scalegym.suites import measures

    measured = []
    monkeypatch.setattr(measures, "_bench_one_size", lambda *a: measured.append(a) or [])
    suite = tmp_path / "edge.toml"
    suite.write_text(RUN_SUITE)
    for place in unwritable_places(tmp_path):
        code = main([*BENCH, "--out", str(place / "bench.json")])
        assert_one_line_refusal(capsys, code, str(place))
        assert measured == []  # refused before measuring, not after
        assert_one_line_refusal(capsys, main([*TRAIN, "--out", str(place)]), str(place))
        code = main(["run", str(suite), "--out", str(place), "--no-progress"])
        assert_one_line_refusal(capsys, code, str(place))
    # The default results root, when the working folder cannot hold it.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results").write_text("a file where results/ would go")
    assert_one_line_refusal(capsys, main(["run", str(suite), "--no-progress"]), "results")


@pytest.mark.parametrize("state", ["missing", "empty"])
def test_train_resume_without_a_run_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], state: str
) -> None:
    out = tmp_path / "run"
    if state == "empty":
        out.mkdir()
    code = main([*TRAIN, "--out", str(out), "--resume"])
    assert_one_line_refusal(capsys, code, "holds no training run to continue")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ([] if state == "missing" else ["run"])


def test_failed_validation_leaves_no_debris(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    # num_minibatches must divide num_envs * num_steps: only the whole config can tell.
    bad = ["--agent-set", "num_envs=3", "--agent-set", "num_steps=5"]
    assert_one_line_refusal(capsys, main([*TRAIN, *bad, "--out", str(out)]), "num_minibatches")
    assert not out.exists()
    assert_one_line_refusal(
        capsys, main([*TRAIN, "--set", "length=1", "--out", str(out)]), "length"
    )
    assert not out.exists()


def test_a_run_directory_has_one_writer_at_a_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from scalegym.suites.lock import hold_run_dir

    suite = tmp_path / "edge.toml"
    suite.write_text(RUN_SUITE)
    run_dir = tmp_path / "run"
    assert main(["run", str(suite), "--out", str(run_dir), "--no-progress"]) == 0
    capsys.readouterr()
    records = (run_dir / "results.jsonl").read_bytes()
    with hold_run_dir(run_dir):  # as a second process resuming it would find it
        code = main(["run", "--resume", str(run_dir), "--no-progress"])
        assert_one_line_refusal(capsys, code, "in use by another scalegym process")
    assert (run_dir / "results.jsonl").read_bytes() == records

    train_dir = tmp_path / "train"
    assert main([*TRAIN, "--out", str(train_dir)]) == 0
    capsys.readouterr()
    with hold_run_dir(train_dir):
        code = main([*TRAIN, "--out", str(train_dir), "--resume"])
        assert_one_line_refusal(capsys, code, "in use by another scalegym process")
    assert len(list((train_dir / "tb").iterdir())) == 1  # one event file: one writer


def test_a_killed_holder_does_not_leave_the_lock_stuck(tmp_path: Path) -> None:
    from scalegym.suites.lock import RunDirBusy, hold_run_dir

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, pathlib; from scalegym.suites.lock import hold_run_dir\n"
            f"with hold_run_dir(pathlib.Path({str(tmp_path)!r})):\n"
            "    print('held', flush=True); time.sleep(3600)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(RunDirBusy, match=f"pid {holder.pid}"), hold_run_dir(tmp_path):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with hold_run_dir(tmp_path):  # the OS released the dead holder's lock
        pass


@pytest.mark.parametrize(
    ("env_id", "setting", "needle"),
    [
        ("Rearrange-v1", "step_penalty=abc", 'field "step_penalty" expects float like 0.01'),
        ("Rearrange-v1", "height=7.5", 'field "height" expects int like 9'),
        ("ToyChain-v0", "slip_prob='x'", 'field "slip_prob" expects float'),
    ],
)
def test_a_bad_value_names_its_field(
    capsys: pytest.CaptureFixture[str], env_id: str, setting: str, needle: str
) -> None:
    assert_one_line_refusal(capsys, main([*BENCH[:1], env_id, "--set", setting]), needle)


def test_out_of_range_success_threshold_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = tmp_path / "t.toml"
    cell = '[[cell]]\nname = "t"\nkind = "train"\nenv = "ToyChain-v0"\nagent = "ppo"\n'
    suite.write_text('[suite]\nname = "t"\n' + cell + "steps = 256\nthreshold = 2.0\n")
    code = main(["run", str(suite), "--out", str(tmp_path / "run"), "--no-progress"])
    assert_one_line_refusal(capsys, code, 'field "threshold": 2 can never be reached')
    assert not (tmp_path / "run").exists()


def test_train_says_how_many_steps_it_will_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The note comes before any work: here the run directory is then found busy, so the test
    # compiles nothing. Runs train the rounded count (test_host_training.py: 40,000 steps train
    # 39,936; test_ppo_runs.py's checkpoint curve: whole updates).
    from scalegym.suites.lock import hold_run_dir

    with hold_run_dir(tmp_path / "r"):
        code = main(["train", "ToyChain-v0", "--steps", "10", "--out", str(tmp_path / "r")])
    assert code == 2
    err = capsys.readouterr().err
    assert "in use by another scalegym process" in err
    assert "note: --steps 10 trains 512 env steps per seed" in err and "at least one" in err


def test_unknown_gymnax_id_lists_the_valid_ones(capsys: pytest.CaptureFixture[str]) -> None:
    code = main([*BENCH[:1], "gymnax:NoSuch-v0"])
    assert_one_line_refusal(capsys, code, "unknown gymnax env 'NoSuch-v0'")
    assert_one_line_refusal(capsys, main([*BENCH[:1], "gymnax:NoSuch-v0"]), "CartPole-v1")


@pytest.mark.parametrize("command", ["bench", "train"])
def test_a_missing_extra_is_one_line_with_the_install_command(
    command: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "gymnax", None)  # `import gymnax` fails as if not installed
    argv = [command, "gymnax:CartPole-v1", "--steps", "256", "--out", str(tmp_path / "out")]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "gymnax:CartPole-v1 needs the gymnax package" in err
    assert "pip install 'scalegym[peers]'" in err
    assert not (tmp_path / "out").exists()


def test_x64_only_for_an_env_that_declares_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import jax

    from scalegym.agents import train

    assert not jax.config.jax_enable_x64
    for env_id, x64 in [("ToyChain-v0", False), ("ToyChainX64-v0", True), ("ToyChain-v0", False)]:
        assert main([*BENCH[:1], env_id, *BENCH[2:], "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["x64"] is x64, env_id
        assert not jax.config.jax_enable_x64  # and switched back off afterwards

    seen: dict[str, bool] = {}

    def fake_ppo(request: train.TrainRequest, **kwargs: object) -> None:
        seen[request.env.id] = jax.config.jax_enable_x64
        raise RuntimeError("stop here")

    monkeypatch.setattr(train, "train_ppo", fake_ppo)  # what the registry's "ppo" trains with
    for env_id in ("ToyChain-v0", "ToyChainX64-v0"):
        assert main(["train", env_id, "--steps", "256", "--out", str(tmp_path / env_id)]) == 1
    assert seen == {"ToyChain-v0": False, "ToyChainX64-v0": True}

    suite = tmp_path / "mixed.toml"
    suite.write_text(
        RUN_SUITE
        + RUN_SUITE.split("\n\n", 1)[1]
        .replace('"bench"\nkind', '"b64"\nkind')
        .replace("ToyChain-v0", "ToyChainX64-v0")
    )
    assert main(["run", str(suite), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    records = [json.loads(line) for line in (tmp_path / "run" / "results.jsonl").open()]
    assert {r["cell"]: r["result"]["x64"] for r in records} == {"bench": False, "b64": True}
