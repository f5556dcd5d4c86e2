"""TensorBoard without TensorFlow: events written and read back, and `scalegym tb` serving them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from scalegym.cli import main
from scalegym.suites.tensorboard import TensorBoardLogger, read_scalars


def _write_curves(log_dir: Path) -> None:
    with TensorBoardLogger(log_dir) as logger:
        for chunk in range(1, 6):
            logger.log_scalars(
                chunk * 1000,
                {
                    "train/return": np.float32(chunk * 0.5),
                    "train/success": None,  # an env without success: nothing written
                    "perf/sps": 1e5 * chunk,
                    "eval/return": float("nan"),  # never written: TensorBoard would hide it
                    "per_seed_return": [1.0, 2.0],
                },
            )


def test_logger_writes_and_reader_reads_back(tmp_path: Path) -> None:
    _write_curves(tmp_path / "cell")
    curves = read_scalars(tmp_path / "cell")
    assert set(curves) == {"train/return", "perf/sps"}
    steps = [step for step, _ in curves["train/return"]]
    assert steps == [1000, 2000, 3000, 4000, 5000]
    assert [v for _, v in curves["train/return"]] == pytest.approx([0.5, 1.0, 1.5, 2.0, 2.5])
    assert [step for step, _ in curves["perf/sps"]] == steps
    assert "tensorflow" not in sys.modules and "torch" not in sys.modules


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_tb_command_serves_the_scalar_tags(tmp_path: Path) -> None:
    _write_curves(tmp_path / "run" / "tb" / "cell")
    port = _free_port()
    # Files, not pipes: nothing reads them while it serves, and a full pipe would block it.
    out_path, err_path = tmp_path / "tb.out", tmp_path / "tb.err"
    command = [sys.executable, "-m", "scalegym.cli", "tb", str(tmp_path / "run")]
    # A child inherits an ignored SIGINT (pytest started as a background job `cmd &` ignores it,
    # and Ctrl-C would then never reach the server); with a handler here, the child starts with
    # SIGINT's default, as from a terminal.
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with out_path.open("w") as out_file, err_path.open("w") as err_file:
            server = subprocess.Popen(
                [*command, "--port", str(port)],
                stdout=out_file,
                stderr=err_file,
            )
    finally:
        signal.signal(signal.SIGINT, inherited)
    url = f"http://127.0.0.1:{port}/data/plugin/scalars/tags"
    tags: dict = {}
    try:
        deadline = time.monotonic() + 600  # a hang guard, far beyond a slow start
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    tags = json.load(response)
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if "train/return" in tags.get("cell", {}):
                break
            time.sleep(0.5)
    finally:
        server.send_signal(signal.SIGINT)  # Ctrl-C: the command's normal way out
        try:
            server.wait(timeout=300)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    out, err = out_path.read_text(), err_path.read_text()
    assert {"train/return", "perf/sps"} <= set(tags.get("cell", {})), err
    assert f"http://127.0.0.1:{port}/" in out
    assert server.returncode == 0, err


def test_tb_needs_a_tb_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tb", str(tmp_path)]) == 2
    assert "no tb/ folder" in capsys.readouterr().err


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_killed_run_resumes_with_one_record_per_cell(tmp_path: Path) -> None:
    """SIGKILL during a cell, then --resume: every cell recorded once, every line whole."""
    suite = tmp_path / "kill.toml"
    # PaninskiLock compiles in a fraction of Rearrange's time: this test is about the runner.
    cell = '[[cell]]\nname = "{}"\nkind = "bench"\nenv = "PaninskiLock-v0"\n'
    suite.write_text(
        '[suite]\nname = "kill"\n'
        + cell.format("fast-1")
        + "batch_sizes = [1, 8]\nsteps = 8\nrepeats = 1\n"
        + cell.format("slow")  # seconds of work: long enough to be killed in flight
        + "batch_sizes = [4096]\nsteps = 512\nrepeats = 4\n"
        + cell.format("fast-2")
        + "batch_sizes = [8]\nsteps = 8\nrepeats = 1\n"
    )
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "scalegym.cli", "run", "--no-progress"]
    first = subprocess.Popen(
        [*command, str(suite), "--out", str(run_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    results = run_dir / "results.jsonl"
    deadline = time.monotonic() + 900  # a hang guard, far beyond a slow start
    while time.monotonic() < deadline and first.poll() is None:
        if results.exists() and results.read_bytes().count(b"\n") >= 1:
            break
        time.sleep(0.05)
    assert first.poll() is None, first.communicate()[1]
    time.sleep(0.5)  # well inside the slow cell
    first.send_signal(signal.SIGKILL)
    first.communicate()
    assert [r["cell"] for r in map(json.loads, results.read_text().splitlines())] == ["fast-1"]

    done = subprocess.run(
        [*command, "--resume", str(run_dir)], capture_output=True, text=True, timeout=1800
    )
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in results.read_text().splitlines()]
    assert [r["cell"] for r in records] == ["fast-1", "slow", "fast-2"]
    assert all(r["status"] == "ok" for r in records)
    summary = (run_dir / "summary.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in summary[1:]] == ["fast-1", "slow", "fast-2"]
    assert "slow" in (run_dir / "report.md").read_text()
