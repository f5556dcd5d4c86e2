"""What `scalegym list` shows, as plain data: every registered env (JAX and host) with its
spaces, the shipped suites with the wall time of their reference runs, agents and planners."""

from __future__ import annotations

import json
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import scalegym
from scalegym.suites.rundir import MANIFEST, RESULTS, SUITE_COPY, latest_records, read_records

# The reference runs of the shipped suites, in a checkout: results/reference/<suite>/.
REFERENCE_ROOT = Path(scalegym.__file__).resolve().parent.parent / "results" / "reference"


def env_rows() -> list[dict[str, Any]]:
    """One row per registered scalegym id, then per scalegym host env (`scalegym/<id>`)."""
    from scalegym.core.registry import list_envs, list_host_envs

    return [describe_env(env_id) for env_id in [*list_envs(), *list_host_envs()]]


def describe_env(env_id: str) -> dict[str, Any]:
    """id, kind, source, x64 and the spaces of `env_id`, probed under its own precision; a row
    with `error` for an env that cannot be built here (e.g. a missing extra)."""
    from scalegym.core.resolve import resolve_env

    try:
        resolved = resolve_env(env_id)
        with resolved.precision():
            observation, action = _spaces(resolved)
    except Exception as err:  # one broken env must not hide the others from the listing
        return {"id": env_id, "error": f"{type(err).__name__}: {err}"}
    return {
        "id": env_id,
        "kind": resolved.kind,
        "source": resolved.source,
        "x64": resolved.x64,
        "observation_space": observation,
        "action_space": action,
    }


def _spaces(resolved: Any) -> tuple[str, str]:
    if resolved.kind == "jax":
        env, params = resolved.env, resolved.params
        return repr(env.observation_space(params)), repr(env.action_space(params))
    vector = resolved.make_vector(1)  # a host env: its spaces are known once one is built
    try:
        return repr(vector.single_observation_space), repr(vector.single_action_space)
    finally:
        vector.close()


def suite_rows(reference_root: Path | None = None) -> list[dict[str, Any]]:
    """Each shipped suite: name, description and the wall time of its reference run under
    `reference_root` (default `REFERENCE_ROOT`; `measured` is None when there is none)."""
    from scalegym.suites.spec import shipped_suites

    reference_root = reference_root or REFERENCE_ROOT
    rows = []
    for name in shipped_suites():
        source = (resources.files("scalegym.suites") / f"{name}.toml").read_bytes()
        table = tomllib.loads(source.decode()).get("suite", {})
        includes = table.get("include", [])
        includes = [includes] if isinstance(includes, str) else list(includes)
        measured = (
            sum_of_references(includes, reference_root)
            if includes
            else reference_time(reference_root / name, source)
        )
        rows.append(
            {"name": name, "description": table.get("description", ""), "measured": measured}
        )
    return rows


def reference_time(run_dir: Path, source: bytes | None = None) -> dict[str, Any] | None:
    """The summed wall time of a run's cells, where it ran, whether every cell finished, and
    whether its suite file differs from `source` (the shipped one); None without a run."""
    if not (run_dir / MANIFEST).is_file():
        return None
    manifest = json.loads((run_dir / MANIFEST).read_text())
    latest = latest_records(read_records(run_dir / RESULTS))
    cells = [cell["name"] for cell in manifest.get("cells", [])]
    copy = run_dir / SUITE_COPY
    return {
        "wall_s": sum(float(record.get("wall_s") or 0.0) for record in latest.values()),
        "device": device_of(manifest),
        "complete": all(latest.get(c, {}).get("status") == "ok" for c in cells),
        "suite_changed": source is not None and copy.is_file() and copy.read_bytes() != source,
        "run_dir": str(run_dir),
    }


def sum_of_references(names: list[str], reference_root: Path) -> dict[str, Any] | None:
    """A suite of included suites: the sum of their reference runs, when each has one."""
    parts = []
    for name in names:
        source = (resources.files("scalegym.suites") / f"{name}.toml").read_bytes()
        part = reference_time(reference_root / name, source)
        if part is None:
            return None
        parts.append(part)
    devices = {json.dumps(part["device"], sort_keys=True) for part in parts}
    return {
        "wall_s": sum(part["wall_s"] for part in parts),
        "device": parts[0]["device"] if len(devices) == 1 else None,
        "complete": all(part["complete"] for part in parts),
        "suite_changed": any(part["suite_changed"] for part in parts),
        "sum_of": names,
    }


def device_of(manifest: dict[str, Any]) -> dict[str, Any]:
    device = manifest.get("device") or {}
    keys = ("backend", "device_kind", "num_devices", "cpu_count")
    return {key: device.get(key) for key in keys}


def measured_text(measured: dict[str, Any] | None) -> str:
    """`measured` in words: "52 s on cpu (2 CPUs)", "not measured"."""
    if measured is None:
        return "not measured"
    device = measured["device"]
    if device is None:
        where = "mixed devices"
    elif device["backend"] == "cpu":
        where = f"cpu ({device['cpu_count']} CPUs)"
    else:
        where = f"{device['backend']} ({device['device_kind']} x{device['num_devices']})"
    text = ("" if measured["complete"] else "at least ") + f"{duration(measured['wall_s'])}"
    text += f" on {where}"
    if measured.get("sum_of"):
        text += ", the sum of its included suites"
    if measured["suite_changed"]:
        text += ", on an earlier version of the suite"
    return text


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
