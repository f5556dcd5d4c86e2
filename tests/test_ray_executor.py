"""`--executor ray`: the same records as the local executor, resumable by either, and a worker
killed mid-cell fails that cell only."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psutil
import pytest
from test_search_cell import PRIOR_SUITE

from scalegym.cli import main
from scalegym.suites.ray_executor import (
    TASK_PREFIX,
    ready_to_start,
    run_cell_task,
    run_cells_on_ray,
)
from scalegym.suites.runner import run_cell, run_suite
from scalegym.suites.spec import parse_suite

ray = pytest.importorskip("ray")

# test_search_cell.py's suite (a PPO train cell and a search cell planning with its prior): the
# same compiled programs, and a cell that reads another cell's checkpoint.
SUITE = PRIOR_SUITE.format(checkpoint="cell:ppo", search_params="{}")

# What differs between two runs of the same work: when and how fast it ran.
TIMING = {"started", "finished", "wall_ms_per_decision"}
TIMING_PARTS = ("sps", "wall", "compile", "seconds")


def without_timing(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: without_timing(v)
            for k, v in value.items()
            if k not in TIMING
            and not k.endswith("_s")  # seconds
            and not any(part in k for part in TIMING_PARTS)
        }
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    return value


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def local_ray():
    # Workers inherit this process's environment (the session's XLA cache) and import toy_envs,
    # which registers ToyChain-v0, as a user's --import module would be.
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_gives_the_local_records_and_either_executor_resumes_the_other(
    tmp_path: Path, local_ray: None
) -> None:
    spec = parse_suite(SUITE.encode(), "prior.toml")
    local = run_suite(spec, tmp_path / "local", progress=False)
    on_ray = run_suite(spec, tmp_path / "ray", progress=False, executor="ray", imports=["toy_envs"])
    expected = [without_timing(r) for r in records(local)]
    assert [r["status"] for r in records(local)] == ["ok", "ok"]
    assert [without_timing(r) for r in records(on_ray)] == expected
    manifest = json.loads((on_ray / "manifest.json").read_text())
    assert manifest["executor"] == "ray"
    # The driver wrote the worker's files where the local executor puts them.
    for folder in ("tb/ppo", "checkpoints/ppo", "tb/gumbel"):
        assert sorted(p.name for p in (on_ray / folder).rglob("*") if p.is_file()), folder
    progress = [
        json.loads((run / "checkpoints/ppo/progress.json").read_text()) for run in (on_ray, local)
    ]
    assert without_timing(progress[0]) == without_timing(progress[1])

    # The search cell lost (as if the driver was killed before writing it): the local executor
    # resumes the Ray run, reading the checkpoint the Ray worker trained.
    lines = (on_ray / "results.jsonl").read_text().splitlines()
    (on_ray / "results.jsonl").write_text(lines[0] + "\n")
    run_suite(spec, resume_dir=on_ray, progress=False)
    assert [without_timing(r) for r in records(on_ray)] == expected
    # ...and Ray resumes a local run.
    lines = (local / "results.jsonl").read_text().splitlines()
    (local / "results.jsonl").write_text(lines[0] + "\n")
    run_suite(spec, resume_dir=local, progress=False, executor="ray", imports=["toy_envs"])
    assert [without_timing(r) for r in records(local)] == expected
    executors = [
        entry["executor"] for entry in json.loads((local / "manifest.json").read_text())["resumed"]
    ]
    assert executors == ["ray"]


KILL_SUITE = """
[suite]
name = "kill"

[[cell]]
name = "endless"  # hours of benchmarking: it is killed long before it ends
kind = "bench"
env = "ToyChain-v0"
batch_sizes = [4096]
steps = 4096
repeats = 100000

[[cell]]
name = "quick"
kind = "bench"
env = "ToyChain-v0"
batch_sizes = [8]
steps = 8
repeats = 1
"""


def _cell_worker(name: str) -> psutil.Process | None:
    """The Ray worker process running cell `name` (Ray titles it after the task)."""
    for process in psutil.process_iter(["cmdline"]):
        if any(f"ray::{TASK_PREFIX}{name}" in part for part in process.info["cmdline"] or ()):
            return process
    return None


def test_a_killed_worker_fails_its_cell_and_the_others_finish(
    tmp_path: Path, local_ray: None
) -> None:
    spec = parse_suite(KILL_SUITE.encode(), "kill.toml")
    run_dir = tmp_path / "run"
    thread = threading.Thread(
        target=run_suite,
        args=(spec, run_dir),
        kwargs=dict(progress=False, executor="ray", imports=["toy_envs"]),
    )
    thread.start()
    deadline = time.monotonic() + 600  # a hang guard, far beyond a slow start
    worker = None
    while worker is None and time.monotonic() < deadline and thread.is_alive():
        worker = _cell_worker("endless")
        time.sleep(0.1)
    assert worker is not None, "the endless cell's worker never started"
    os.kill(worker.pid, signal.SIGKILL)
    thread.join(timeout=600)
    assert not thread.is_alive()
    by_cell = {r["cell"]: r for r in records(run_dir)}
    assert set(by_cell) == {"endless", "quick"}
    assert by_cell["quick"]["status"] == "ok"
    assert by_cell["endless"]["status"] == "failed"
    assert "Worker" in by_cell["endless"]["error"] or "died" in by_cell["endless"]["error"]
    report = (run_dir / "report.md").read_text()
    assert "endless" in report and "failed" in report


def test_executor_flags_are_checked_before_any_work(tmp_path: Path, capsys) -> None:
    suite = tmp_path / "kill.toml"
    suite.write_text(KILL_SUITE)
    code = main(["run", str(suite), "--address", "auto", "--out", str(tmp_path / "r")])
    assert code == 2 and "--address" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


ALONE_SUITE = "".join(
    f"""
[[cell]]
name = "bench-{name}"
kind = "bench"
env = "ToyChain-v0"
batch_sizes = [8]
steps = 8
repeats = 1
"""
    for name in "abc"
)


def test_bench_cells_run_alone_on_ray(tmp_path: Path, local_ray: None) -> None:
    # Two CPUs: without the rule, two bench cells would measure at once, each slowed by the other.
    spec = parse_suite(f'[suite]\nname = "alone"\n{ALONE_SUITE}'.encode(), "alone.toml")
    events: list[tuple[str, str]] = []
    run_cells_on_ray(
        run_cell,
        spec.cells,
        tmp_path,
        resuming=False,
        devices=None,
        address=None,
        imports=["toy_envs"],
        on_start=lambda cell: events.append(("start", cell.name)),
        on_finish=lambda record: events.append((record["status"], record["cell"])),
    )
    expected = [(event, f"bench-{name}") for name in "abc" for event in ("start", "ok")]
    assert events == expected  # each starts with nothing running and ends before the next


def test_a_cell_that_runs_alone_waits_for_the_running_and_holds_back_the_rest() -> None:
    spec = parse_suite(KILL_SUITE.encode(), "kill.toml")
    endless, quick = spec.cells  # two bench cells
    search = list(parse_suite(SUITE.encode(), "prior.toml").cells)  # a train, a search cell
    assert ready_to_start([*search[:1], endless, quick], set(), []) == search[:1]
    assert ready_to_start([endless, quick], set(), search[:1]) == []
    assert ready_to_start([endless, quick], set(), []) == [endless]
    assert ready_to_start([quick], set(), [endless]) == []
    assert ready_to_start(search, {"ppo"}, []) == search[:1]  # the search cell reads ppo


def test_a_ray_task_imports_a_py_file_the_driver_recorded(tmp_path: Path, monkeypatch) -> None:
    # The CLI records an --import given as a path as its absolute path; a worker imports it the
    # same way the driver did (importlib.import_module failed on a path).
    module = tmp_path / "ray_task_envs.py"
    module.write_text("IMPORTED = True\n")
    monkeypatch.delitem(sys.modules, "ray_task_envs", raising=False)
    cell = SimpleNamespace(name="c")

    def fake_run_cell(cell, root, **_):
        return {"cell": cell.name}

    record, files = run_cell_task(
        fake_run_cell, cell, {}, resuming=False, devices=None, imports=[str(module)], sys_path=[]
    )
    assert record == {"cell": "c"} and files == {}
    assert sys.modules["ray_task_envs"].IMPORTED is True
