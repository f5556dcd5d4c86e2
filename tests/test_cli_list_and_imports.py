"""Issue 28, "first contact", part 1: the CLI shows what it has (list, bare run) and finds the
user's own envs (--import with a module name or a .py path, a suite's `imports`, resume).
Part 2, Ctrl-C, extending a training run and one-line refusals, is test_cli_resume_and_refusals.py,
which uses this file's helpers."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import gymnasium
import pytest

import scalegym
from scalegym.cli import main
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


# --------------------------------------------------------------------------------- list, bare run


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


# ---------------------------------------------------------------------------------------- imports


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
