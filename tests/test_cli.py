"""The `scalegym` command line, run in-process through `main([...])` and once as a subprocess."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from scalegym.cli import main
from scalegym.core import registry

# A tiny functional env registered with gymnasium.register lives in test_bench; `--import` loads
# it the way a user loads the module that registers their env.
USER_MODULE = "test_bench"
FAST = ["--batch-sizes", "1,8", "--steps", "16", "--repeats", "2"]
TOP_KEYS = {"env", "kind", "device", "jax", "versions", "num_steps", "repeats", "results"}
RESULT_KEYS = {"batch_size", "sps", "sps_min", "sps_max", "compile_s", "devices"}


@pytest.fixture(autouse=True)
def _tests_dir_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))


def _bench_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    code = main(["bench", *args, *FAST, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out)  # exactly one JSON object and nothing else on stdout
    assert set(report) >= TOP_KEYS
    assert report["num_steps"] == 16 and report["repeats"] == 2
    assert [r["batch_size"] for r in report["results"]] == [1, 8]
    for row in report["results"]:
        assert set(row) == RESULT_KEYS
        assert math.isfinite(row["sps"]) and row["sps"] > 0
    return report


def test_bench_user_env_registered_with_gymnasium(capsys: pytest.CaptureFixture[str]) -> None:
    report = _bench_json(capsys, "TestChain-v0", "--import", USER_MODULE, "--set", "length=5")
    assert report["env"] == "TestChain-v0" and report["kind"] == "jax"
    assert report["overrides"] == {"length": 5}
    assert report["jax"] == jax.__version__ and report["versions"]["jax"] == jax.__version__


def test_bench_host_gymnasium_env(capsys: pytest.CaptureFixture[str]) -> None:
    assert _bench_json(capsys, "CartPole-v1")["kind"] == "host"


def test_bench_gymnax_env(capsys: pytest.CaptureFixture[str]) -> None:
    assert _bench_json(capsys, "gymnax:CartPole-v1")["kind"] == "jax"


def test_bench_table_and_out_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_path = tmp_path / "nested" / "bench.json"
    code = main(["bench", "gymnax:CartPole-v1", *FAST, "--out", str(out_path)])
    out, _ = capsys.readouterr()
    assert code == 0
    assert "median SPS" in out and "device:" in out and f"results: {out_path}" in out
    assert json.loads(out_path.read_text())["env"] == "gymnax:CartPole-v1"


def test_x64_is_restored_after_main(capsys: pytest.CaptureFixture[str]) -> None:
    before = jax.config.jax_enable_x64
    assert main(["list", "--json"]) == 0
    capsys.readouterr()
    assert jax.config.jax_enable_x64 == before


def test_unknown_env_id_suggests_the_close_one(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "ToyChainBx-v0", *FAST])  # ToyChainBox-v0 is registered (conftest)
    _, err = capsys.readouterr()
    assert code != 0
    assert err.startswith("scalegym: error:") and "'ToyChainBox-v0'" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["TestChain-v0", "--import", USER_MODULE, "--set", "nosuchfield=1"], "nosuchfield"),
        (["TestChain-v0", "--import", USER_MODULE, "--set", "length=1"], "length"),
        (["CartPole-v1", "--set", "nosuchfield=1"], "nosuchfield"),
        (["CartPole-v1", "--batch-sizes", "1,x"], "--batch-sizes"),
        (["CartPole-v1", "--batch-sizes", "0"], "--batch-sizes"),
        (["CartPole-v1", "--set", "novalue"], "FIELD=VALUE"),
        (["CartPole-v1", "--import", "no_such_module_xyz"], "no_such_module_xyz"),
        (["CartPole-v1", "--devices", "2"], "host env"),
        (["PaninskiLock-v0", "--devices", "2"], "JAX_NUM_CPU_DEVICES"),  # 1 CPU device here
        (["PaninskiLock-v0", "--devices", "0"], "--devices"),
    ],
)
def test_bench_user_errors_exit_2_without_traceback(
    capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    code = main(["bench", *args])
    out, err = capsys.readouterr()
    assert code == 2
    # argparse's own errors name the subcommand: "scalegym bench: error: ...".
    assert err.startswith(("scalegym: error:", "scalegym bench: error:")), err
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err
    assert out == ""


def test_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--json"]) == 0
    rows = {row["id"]: row for row in json.loads(capsys.readouterr().out)["envs"]}
    assert set(rows) == {*registry.list_envs(), *registry.list_host_envs()}
    assert rows["ToyChainBox-v0"]["action_space"] == "Discrete(2)"
    assert "shape=(1,)" in rows["ToyChainBox-v0"]["observation_space"]


def test_list_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    assert "scalegym envs" in capsys.readouterr().out


def test_help_and_no_command(capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["--help"], ["bench", "--help"], ["list", "--help"]):
        assert main(args) == 0
        assert "usage: scalegym" in capsys.readouterr().out
    assert main([]) == 2
    assert "usage: scalegym" in capsys.readouterr().err


def test_console_script_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "scalegym.cli", "bench", "--help"],
        capture_output=True,
        text=True,
        timeout=600,  # a hang guard: the help takes seconds
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "--batch-sizes" in done.stdout and "--set" in done.stdout


@pytest.mark.usefixtures("out_of_memory_at_batch_3")
def test_a_failed_batch_size_keeps_the_others(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "bench.json"
    args = ["--batch-sizes", "1,3,2", "--steps", "8", "--repeats", "1", "--out", str(out)]
    code = main(["bench", "ToyChain-v0", *args])
    stdout, err = capsys.readouterr()
    assert code == 1
    assert "batch size 3 failed: MemoryError: RESOURCE_EXHAUSTED" in err and "Traceback" not in err
    written = json.loads(out.read_text())
    assert [r["batch_size"] for r in written["results"]] == [1, 2]
    assert written["failed"] == [
        {
            "batch_size": 3,
            "error": "MemoryError: RESOURCE_EXHAUSTED: out of memory allocating the batch",
        }
    ]
    assert "failed" in stdout  # the table shows the failed size among the finished ones
