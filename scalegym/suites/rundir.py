"""A run's directory: its manifest, the fsynced results.jsonl, and atomic writes of its files."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from scalegym.suites.clock import utc_now

if TYPE_CHECKING:
    from scalegym.suites.spec import SuiteSpec

MANIFEST, RESULTS, SUMMARY, REPORT = "manifest.json", "results.jsonl", "summary.csv", "report.md"
DEFAULT_ROOT = Path("results") / "runs"
SUITE_COPY = "suite.toml"


class RunDirError(ValueError):
    """A run directory that cannot be used as asked (already holds a run, or is not a run)."""


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """The records of a results.jsonl, in file order; a missing file has none.

    A trailing line without its newline is a write cut short by a kill and is ignored; every
    complete line must parse (records are written whole, so anything else is real corruption).
    """
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_bytes().split(b"\n")
    records = []
    for number, line in enumerate(lines[:-1], start=1):  # lines[-1]: "" or a partial write
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number}: not a JSON record ({err})") from None
    return records


def latest_records(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The last record of each cell (a failed cell that was rerun on resume has two)."""
    return {record["cell"]: record for record in records}


def read_manifest(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / MANIFEST
    if not path.is_file():
        raise ValueError(f"{run_dir}: not a run directory (no {MANIFEST})")
    return json.loads(path.read_text())


def write_text_atomic(path: Path, text: str) -> Path:
    """Replace `path` in one step, so a reader or a kill never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line with a single write, then fsync: a kill loses a line, never half."""
    line = (json.dumps(record, default=_to_json) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(line)
        while view:  # one write for a regular file; the loop only guards short writes
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def new_run_dir(root: Path) -> Path:
    """`root/<UTC YYYYmmdd-HHMMSS>`, with `-2`, `-3`... when two runs start in the same second."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    for attempt in range(1, 1000):
        path = root / (stamp if attempt == 1 else f"{stamp}-{attempt}")
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise RunDirError(f"{root}: could not create a new run directory for {stamp}")


def git_state(cwd: str | Path | None = None) -> dict[str, Any]:
    """The commit checked out in `cwd` and whether tracked files differ from it (None: no git)."""
    commit = _git(cwd, "rev-parse", "HEAD")
    status = _git(cwd, "status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def code_state(package_dir: str | Path | None = None) -> dict[str, Any]:
    """The code a run ran: the installed scalegym version, and the commit (and uncommitted
    changes) where scalegym itself is a git checkout — found from the package's own folder,
    not the working folder, and only when git tracks the package there (a copy installed in
    another project's checkout is not that project's commit)."""
    from importlib.metadata import PackageNotFoundError, version

    import scalegym

    folder = Path(package_dir or Path(scalegym.__file__).resolve().parent)
    tracked = _git(folder, "ls-files", "--error-unmatch", "__init__.py") is not None
    state = git_state(folder) if tracked else {"commit": None, "dirty": None}
    try:
        state["scalegym"] = version("scalegym")
    except PackageNotFoundError:
        state["scalegym"] = getattr(scalegym, "__version__", None)
    return state


def _git(cwd: str | Path | None, *args: str) -> str | None:
    """git's output in `cwd`, or None where git or a checkout is missing."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def command_imports(command: list[str], cwd: str | Path) -> list[str]:
    """The `--import` values of a recorded command line; a relative .py path made absolute
    against `cwd`, the folder the command ran in."""
    from scalegym.core.registry import is_module_path

    found = []
    for index, token in enumerate(command):
        if token == "--import" and index + 1 < len(command):
            found.append(command[index + 1])
        elif token.startswith("--import="):
            found.append(token.partition("=")[2])
    return [str(Path(cwd, t)) if is_module_path(t) else t for t in found]


def recorded_imports(manifest: dict[str, Any]) -> list[str]:
    """The modules a run imported (its commands' --import and its suite's `imports`), in order,
    each once: what resuming it must import again."""
    found = list(manifest.get("imports", []))
    if "imports" not in manifest:  # a run recorded before the field: read its command lines
        found = command_imports(manifest.get("command", []), manifest.get("cwd", "."))
    for entry in manifest.get("resumed", []):
        found += entry.get("imports", [])
    return list(dict.fromkeys(found))


def create_run_dir(spec: SuiteSpec, out_dir: str | Path | None) -> Path:
    if out_dir is None:
        return new_run_dir(DEFAULT_ROOT / spec.name)
    run_dir = Path(out_dir)
    if (run_dir / MANIFEST).exists() or (run_dir / RESULTS).exists():
        raise RunDirError(
            f"{run_dir} already holds a run; continue it with --resume {run_dir} "
            "or choose another --out"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def write_manifest(
    run_dir: Path,
    spec: SuiteSpec,
    command: list[str],
    devices: int | None = None,
    executor: str = "local",
) -> None:
    from scalegym.suites.measures import device_info, versions

    (run_dir / SUITE_COPY).write_bytes(spec.source)  # the exact file, for --resume and reruns
    manifest = {
        "suite": {
            "name": spec.name,
            "description": spec.description,
            "path": spec.path,
            "sha256": spec.sha256,
        },
        "cells": _cell_entries(spec),
        "seed": spec.seed,
        "seeds": {c.name: c.seeds for c in spec.cells if hasattr(c, "seeds")},  # per cell
        "started": utc_now(),
        "command": command,
        "cwd": os.getcwd(),
        "imports": [*command_imports(command, os.getcwd()), *spec.imports],
        "git": code_state(),
        "device": device_info(),
        "training_devices": devices or device_info()["num_devices"],  # the env batch's split
        "executor": executor,  # the driver's device above; a Ray worker's may differ
        "versions": versions(),
        "resumed": [],
    }
    write_text_atomic(run_dir / MANIFEST, json.dumps(manifest, indent=2) + "\n")


def resume_manifest(
    run_dir: Path, spec: SuiteSpec, command: list[str], executor: str = "local"
) -> None:
    """Check `run_dir` is a run of this suite, note the resume, and drop a half-written line."""
    try:
        manifest = read_manifest(run_dir)
    except ValueError as err:
        raise RunDirError(str(err)) from None
    suite = manifest.get("suite", {})
    if suite.get("name") != spec.name:
        raise RunDirError(
            f"{run_dir} is a run of suite {suite.get('name')!r}, not {spec.name!r}; "
            f"resume it with `scalegym run --resume {run_dir}`"
        )
    manifest.setdefault("resumed", []).append(
        {
            "at": utc_now(),
            "command": command,
            "suite_sha256": spec.sha256,
            "suite_changed": spec.sha256 != suite.get("sha256"),
            "cwd": os.getcwd(),
            "imports": [*command_imports(command, os.getcwd()), *spec.imports],
            "git": code_state(),  # the code the resumed cells ran with
            "executor": executor,
        }
    )
    # The cells run now are the spec's; the report lists them in this order.
    manifest["cells"] = _cell_entries(spec)
    write_text_atomic(run_dir / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    _drop_partial_line(run_dir / RESULTS)


def _cell_entries(spec: SuiteSpec) -> list[dict[str, str]]:
    return [{"name": c.name, "kind": c.kind, "env": c.env} for c in spec.cells]


def _drop_partial_line(path: Path) -> None:
    """Cut a trailing write that a kill left without its newline, so appends start clean."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)
            os.fsync(f.fileno())


def _to_json(obj: Any) -> Any:
    """numpy and jax values as plain numbers and lists; anything else as its text."""
    if isinstance(obj, np.generic):
        return obj.item()
    if hasattr(obj, "__array__"):
        return np.asarray(obj).tolist()
    if isinstance(obj, Path):
        return str(obj)
    return repr(obj)  # never lose a whole record to one odd value
