"""Issue 28, "first contact": the CLI shows what it has (list, bare run), finds the user's own
envs (--import, a suite's `imports`, resume), says how to continue after Ctrl-C, extends a
finished training run, and refuses what does not apply in one line."""

from __future__ import annotations

import importlib.metadata
import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pytest

import scalegym
from scalegym.cli import build_parser, main
from scalegym.suites.rundir import read_records
from scalegym.suites.spec import shipped_suites

USER_MODULE = """
import gymnasium
from toy_envs import ToyChain

if {env_id!r} not in gymnasium.registry:
    gymnasium.register(id={env_id!r}, entry_point=ToyChain)
"""
BENCH_SUITE = """
[suite]
name = "{name}"
{suite_extra}

[[cell]]
name = "first"
kind = "bench"
env = "{env}"
batch_sizes = [1]
steps = 4
repeats = 1

[[cell]]
name = "second"
kind = "bench"
env = "{env}"
batch_sizes = [2]
steps = 4
repeats = 1
"""
# 16 envs x 16 steps = 256 env steps per update (test_cli_edges.py's TRAIN settings).
TRAIN = ["train", "ToyChain-v0", "--seeds", "2", "--agent-set", "num_envs=16"]
TRAIN += ["--agent-set", "num_steps=16", "--no-progress"]


def bench_suite(tmp_path: Path, env: str = "ToyChain-v0", suite_extra: str = "") -> Path:
    path = tmp_path / "fc.toml"
    path.write_text(BENCH_SUITE.format(name="fc", env=env, suite_extra=suite_extra))
    return path


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """`write(name, env_id)`: a module file in the working folder (tmp_path) that registers
    `env_id` with gymnasium, as a user's own env module does; forgotten again afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    made: list[tuple[str, str]] = []

    def write(name: str, env_id: str, folder: Path = tmp_path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.py"
        path.write_text(USER_MODULE.format(env_id=env_id))
        made.append((name, env_id))
        return path

    yield write
    for name, env_id in made:
        forget(name, env_id)


def forget(module: str, env_id: str) -> None:
    """As a fresh process would be: the module not imported, its env not registered."""
    sys.modules.pop(module, None)
    gymnasium.registry.pop(env_id, None)


def one_line_refusal(capsys: pytest.CaptureFixture[str], code: int, *needles: str) -> str:
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert err.count("\n") == 1 and "Traceback" not in err and "usage:" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


def printed_command(err: str, start: str) -> list[str]:
    """The argv of the one line of `err` that starts with `start`."""
    (line,) = [line for line in err.splitlines() if line.strip().startswith(start)]
    return shlex.split(line.strip())


# ------------------------------------------------------------------------------ 1. list, bare run


def list_json(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(["list", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_list_probes_float64_envs_under_their_own_precision(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = {row["id"]: row for row in list_json(capsys)["envs"]}
    for env_id in ("ThreeBody-v0", "ThreeBodyAarseth-v0"):
        assert "error" not in rows[env_id], rows[env_id]
        assert rows[env_id]["kind"] == "jax" and rows[env_id]["x64"] is True
        assert rows[env_id]["action_space"] == "Discrete(10)"
    assert rows["Tiger-v0"]["x64"] is False


def test_list_shows_the_host_env(capsys: pytest.CaptureFixture[str]) -> None:
    rows = {row["id"]: row for row in list_json(capsys)["envs"]}
    host = rows["scalegym/ThreeBodyRebound-v0"]
    assert host["kind"] == "host" and "error" not in host, host
    assert host["action_space"] == rows["ThreeBody-v0"]["action_space"]
    assert set(rows) >= set(scalegym.list_envs())


@pytest.fixture
def reference_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A results/reference/ with two runs: smoke, finished, of the shipped file; sps with one
    cell not run, of an earlier version of its file."""
    from importlib import resources

    from scalegym.cli import catalog

    root = tmp_path / "reference"
    for suite, walls, changed in (("smoke", [10.0, 21.0], False), ("sps", [100.0, None], True)):
        run_dir = root / suite
        run_dir.mkdir(parents=True)
        source = (resources.files("scalegym.suites") / f"{suite}.toml").read_bytes()
        (run_dir / "suite.toml").write_bytes(source + (b"# earlier" if changed else b""))
        cells = [{"name": f"c{i}", "kind": "bench", "env": "ToyChain-v0"} for i in range(2)]
        device = {"backend": "cpu", "device_kind": "cpu", "num_devices": 1, "cpu_count": 2}
        manifest = {"cells": cells, "device": device}
        (run_dir / "manifest.json").write_text(json.dumps(manifest))
        lines = [
            json.dumps({"cell": f"c{i}", "status": "ok", "wall_s": wall})
            for i, wall in enumerate(walls)
            if wall is not None
        ]
        (run_dir / "results.jsonl").write_text("".join(line + "\n" for line in lines))
    monkeypatch.setattr(catalog, "REFERENCE_ROOT", root)
    monkeypatch.setenv("COLUMNS", "300")  # rich's tables: one line per row
    return root


@pytest.mark.usefixtures("reference_runs")
def test_list_shows_the_shipped_suites_and_their_measured_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    suites = {row["name"]: row for row in list_json(capsys)["suites"]}
    assert list(suites) == shipped_suites()
    assert suites["smoke"]["description"].startswith("Rearrange env throughput")
    smoke, sps = suites["smoke"]["measured"], suites["sps"]["measured"]
    assert smoke["wall_s"] == 31.0 and smoke["complete"] and not smoke["suite_changed"]
    assert smoke["device"]["backend"] == "cpu" and smoke["device"]["cpu_count"] == 2
    assert sps["wall_s"] == 100.0 and not sps["complete"] and sps["suite_changed"]
    assert suites["rearrange"]["measured"] is None
    assert suites["full"]["measured"] is None  # it includes suites without a reference run
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "not measured" in out and "31 s on cpu (2 CPUs)" in out
    assert "at least 100 s" not in out and "at least 2 min" in out
    assert "agents and planners" in out


def test_an_included_suite_is_measured_as_the_sum_of_its_parts(reference_runs: Path) -> None:
    from scalegym.cli.catalog import sum_of_references

    summed = sum_of_references(["smoke", "sps"], reference_runs)
    assert summed is not None and summed["wall_s"] == 131.0 and summed["sum_of"] == ["smoke", "sps"]
    assert not summed["complete"] and summed["suite_changed"]


def test_list_help_says_what_it_lists(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "suites" in help_text and "planners" in help_text and "host" in help_text


@pytest.mark.usefixtures("reference_runs")
def test_bare_run_lists_the_suites(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run"]) == 2  # nothing was run: a usage hint, as a bare `scalegym` is
    out, err = capsys.readouterr()
    assert out == "" and "error" not in err
    assert all(name in err for name in shipped_suites())
    assert "run one: scalegym run SUITE" in err and "31 s" in err  # smoke's reference run


# ------------------------------------------------------------------------------------- 2. imports


def test_an_unknown_id_suggests_import(capsys: pytest.CaptureFixture[str]) -> None:
    one_line_refusal(capsys, main(["bench", "Walk-v0"]), "unknown env id 'Walk-v0'", "--import")
    code = main(["train", "Walk-v0", "--steps", "256"])
    one_line_refusal(capsys, code, "unknown env id 'Walk-v0'", "--import MODULE")


def test_a_suite_names_the_modules_it_needs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], user_module: Any
) -> None:
    user_module("fc_suite_envs", "FcSuiteChain-v0")
    suite = bench_suite(tmp_path, "FcSuiteChain-v0", 'imports = ["fc_suite_envs"]')
    assert main(["run", str(suite), "--out", "run", "--no-progress", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert [c["status"] for c in summary["cells"]] == ["ok", "ok"]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["imports"] == ["fc_suite_envs"]


@pytest.mark.parametrize(
    ("imports", "needle"),
    [
        ('"fc_nowhere"', 'field "imports": cannot import fc_nowhere'),
        ("[1]", 'field "imports": expected a string or a non-empty list of strings'),
        ('["my envs.py"]', 'field "imports": "my envs.py" is not a module name'),
    ],
)
def test_bad_suite_imports_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], imports: str, needle: str
) -> None:
    suite = bench_suite(tmp_path, suite_extra=f"imports = {imports}")
    code = main(["run", str(suite), "--out", str(tmp_path / "run")])
    assert code == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err, err
    assert not (tmp_path / "run").exists()


def test_unknown_id_in_a_suite_points_to_its_imports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", str(bench_suite(tmp_path, "Walk-v0")), "--out", str(tmp_path / "r")])
    assert code == 2
    assert 'imports = ["my_envs"]' in capsys.readouterr().err


def test_run_resume_uses_the_recorded_imports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], user_module: Any
) -> None:
    user_module("fc_resume_envs", "FcResumeChain-v0")
    suite = bench_suite(tmp_path, "FcResumeChain-v0")
    argv = ["run", str(suite), "--out", "run", "--import", "fc_resume_envs", "--no-progress"]
    assert main(argv) == 0
    forget("fc_resume_envs", "FcResumeChain-v0")  # a new process, without --import
    assert main(["run", "--resume", "run", "--no-progress"]) == 0, capsys.readouterr().err
    assert "FcResumeChain-v0" in gymnasium.registry


@pytest.mark.parametrize("form", ["./{name}.py", "{name}.py", "{folder}/{name}.py"])
def test_import_takes_a_path_to_a_py_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], user_module: Any, form: str
) -> None:
    folder = tmp_path / "elsewhere" if form.startswith("{folder}") else tmp_path
    name = f"fc_path_envs_{len(form)}"
    user_module(name, f"FcPathChain{len(form)}-v0", folder)
    target = form.format(name=name, folder=folder)
    argv = ["bench", f"FcPathChain{len(form)}-v0", "--import", target, "--batch-sizes", "1"]
    assert main([*argv, "--steps", "4", "--repeats", "1", "--json"]) == 0, capsys.readouterr()
    assert json.loads(capsys.readouterr().out)["kind"] == "jax"


def test_import_of_a_missing_file_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code = main(["bench", "ToyChain-v0", "--import", "./fc_missing.py"])
    one_line_refusal(capsys, code, "--import ./fc_missing.py: no such file")


# ------------------------------------------------------------------------------------- 3. Ctrl-C


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


# --------------------------------------------------------------------- 4. extending a training run


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


# ------------------------------------------------------------------------------------ 5. planners


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


# ------------------------------------------------------------------------------- 6. small things


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
