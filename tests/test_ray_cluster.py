"""The README's Ray recipe, run as written against a real head with token authentication on.

The recipe is the ```bash block after `<!-- recipe: ray -->` in README.md. Its lines run in one
bash script, verbatim but for three things a single test machine needs: the install line is
skipped (this environment has the extra) and so is the worker-node line (there is one machine);
`HEAD_IP` is 127.0.0.1 and port 6379 a free port, so the head cannot collide with another Ray.
HOME is a fresh folder, as on a fresh install (no ~/.ray/auth_token yet), and RAY_TMPDIR a
folder of the test's own: the head's processes are found by it and stopped, nobody else's.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

ray = pytest.importorskip("ray")  # skipped only where ray is not importable

README = Path(__file__).resolve().parent.parent / "README.md"
MARKER = "<!-- recipe: ray -->"
SKIPPED = ("pip install", "each worker")  # what one test machine cannot run (module docstring)


def recipe_lines() -> list[str]:
    """The commands of the README's Ray recipe, as written."""
    after = README.read_text().split(MARKER, 1)[1]
    block = re.match(r"\s*```bash\n(.*?)```", after, re.S)
    assert block is not None, f"no ```bash block right after {MARKER} in README.md"
    return [line for line in block.group(1).splitlines() if line.strip()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Cluster:
    """The head the recipe started, and what its driver line printed."""

    root: Path  # cwd, HOME and RAY_TMPDIR live here
    port: int
    env: dict[str, str]
    recipe: subprocess.CompletedProcess[str]


def on_this_machine(line: str, port: int) -> str:
    """A recipe line with the head's address on this machine."""
    return line.replace("HEAD_IP", "127.0.0.1").replace("6379", str(port))


def clean_env(root: Path) -> dict[str, str]:
    """This process's environment as a fresh install's shell would have it, under `root`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    (root / "home").mkdir()
    env.update(
        HOME=str(root / "home"),
        RAY_TMPDIR=str(root),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


def stop_head(root: Path, port: int) -> None:
    """Kill the processes of the head under `root` on `port` (found by either in their command
    line), and their children: Ray's agents and workers retitle themselves."""
    ours = re.compile(rf"{re.escape(str(root))}|--address=\S+:{port}\b")
    found: dict[int, psutil.Process] = {}
    for process in psutil.process_iter(["cmdline"]):
        if process.pid != os.getpid() and ours.search(" ".join(process.info["cmdline"] or ())):
            found[process.pid] = process
            for child in process.children(recursive=True):
                found[child.pid] = child
    for process in found.values():
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGKILL)
    psutil.wait_procs(list(found.values()), timeout=30)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    root = Path(tempfile.mkdtemp(prefix="sg-ray-", dir="/tmp"))  # short: Ray's socket paths
    port = free_port()
    lines = [line for line in recipe_lines() if not any(s in line for s in SKIPPED)]
    env = clean_env(root)
    try:
        script = on_this_machine("\n".join(["set -e", *lines]), port)
        recipe = subprocess.run(
            ["bash", "-c", script], cwd=root, env=env, capture_output=True, text=True, timeout=900
        )
        yield Cluster(root, port, env, recipe)
    finally:
        stop_head(root, port)
        shutil.rmtree(root, ignore_errors=True)


def run_dirs(root: Path) -> list[Path]:
    return sorted((root / "results" / "runs").glob("*/*"))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def shell(cluster: Cluster, command: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`command` in the recipe's shell (RAY_AUTH_MODE=token) with `env` on top ("" unsets)."""
    full = {**cluster.env, "RAY_AUTH_MODE": "token", **env}
    full = {k: v for k, v in full.items() if v != ""}
    return subprocess.run(
        ["bash", "-c", command],
        cwd=cluster.root,
        env=full,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_readme_recipe_runs_a_suite_on_a_token_authenticated_head(cluster: Cluster) -> None:
    assert cluster.recipe.returncode == 0, cluster.recipe.stderr[-4000:]
    assert "InvalidAuthToken" not in cluster.recipe.stderr
    (run_dir,) = run_dirs(cluster.root)
    records = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records] == ["ok"] * len(records) and records
    assert json.loads((run_dir / "manifest.json").read_text())["executor"] == "ray"
    assert (cluster.root / "home" / ".ray" / "auth_token").is_file()  # the recipe made one


@pytest.mark.parametrize(
    "env, says",
    [
        (
            {"RAY_AUTH_TOKEN": "not-the-head-s-token"},
            ["refused the token from RAY_AUTH_TOKEN", "`ray get-auth-token` on the head"],
        ),
        (  # the shell: no RAY_AUTH_MODE, so Ray sends no token to an explicit address
            {"RAY_AUTH_MODE": ""},
            ["none was sent (RAY_AUTH_MODE is unset here)", "export RAY_AUTH_MODE=token"],
        ),
    ],
)
def test_a_refused_token_is_one_line_and_no_run_directory_changes(
    cluster: Cluster, env: dict[str, str], says: list[str]
) -> None:
    (run_dir,) = run_dirs(cluster.root)
    before = snapshot(run_dir)
    (recipe_run,) = [line for line in recipe_lines() if line.startswith("scalegym run")]
    recipe_run = on_this_machine(recipe_run, cluster.port)  # a new stamped run directory
    resumed = recipe_run.replace("run smoke", f"run --resume {run_dir}")
    new = recipe_run.replace("run smoke", f"run smoke --out {cluster.root / 'new'}")
    for command in (recipe_run, resumed, new):
        proc = shell(cluster, command, **env)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and len(lines) == 1, proc.stderr[-4000:]
        address = f"127.0.0.1:{cluster.port}"
        assert lines[0].startswith(f"scalegym: error: the Ray cluster at {address} refused")
        assert all(part in lines[0] for part in says), lines[0]
    assert run_dirs(cluster.root) == [run_dir] and snapshot(run_dir) == before
    assert not (cluster.root / "new").exists()
