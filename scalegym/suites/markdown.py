"""The small formats report.md and the README tables share: numbers, env labels, table rows."""

from __future__ import annotations

import math
from typing import Any


def si(value: float | None) -> str:
    """report.md's short count: `3.54M`, `12.3k`, `512` (– for none)."""
    if value is None:
        return "–"
    if value >= 1e6:
        return f"{value / 1e6:.2f}M"
    if value >= 1e3:
        return f"{value / 1e3:.1f}k"
    return f"{value:.0f}"


def si3(value: float) -> str:
    """The README's count to three significant digits: `3.60G`, `14.7M`, `725k`."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            digits = 2 if abs(value) < 10 * scale else (1 if abs(value) < 100 * scale else 0)
            return f"{value / scale:.{digits}f}{suffix}"
    return f"{value:.0f}"


def num(value: Any, digits: int) -> str:
    return "–" if value is None else f"{float(value):.{digits}f}"


def env_label(record: dict[str, Any]) -> str:
    """report.md's env: `Rearrange-v1 (height=8, width=8)`."""
    overrides = record.get("env_params") or {}
    if not overrides:
        return record["env"]
    return f"{record['env']} ({', '.join(f'{k}={v}' for k, v in overrides.items())})"


def code_env_label(record: dict[str, Any]) -> str:
    """The README's env, as code: `` `Rearrange-v1` `height=8` ``."""
    params = record.get("env_params") or {}
    extra = " ".join(f"`{k}={v}`" for k, v in params.items())
    return f"`{record['env']}`" + (f" {extra}" if extra else "")


def mean_std(mean: float | None, per_seed: list[float] | None) -> str:
    if mean is None:
        return "–"
    if not per_seed or len(per_seed) < 2:
        return num(mean, 3)
    values = [float(v) for v in per_seed]
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return f"{num(mean, 3)} ± {num(std, 3)}"


def table_row(cells: list[str]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"


def table_rule(columns: int) -> str:
    return "|" + "---|" * columns


def device_line(manifest: dict[str, Any]) -> str:
    """The device a run's manifest names, for report.md."""
    device = manifest.get("device") or {}
    jax_version = (manifest.get("versions") or {}).get("jax", "?")
    return (
        f"{device.get('backend', '?')} ({device.get('device_kind', '?')}) "
        f"x{device.get('num_devices', '?')}, {device.get('cpu_count', '?')} CPUs, "
        f"{device.get('processor', '?')}; jax {jax_version}"
    )


def machine_line(manifest: dict[str, Any], run: str) -> str:
    """Which machine and versions produced a reference run, for the README."""
    device = manifest.get("device", {})
    versions = manifest.get("versions", {})
    kind = device.get("device_kind", "?")
    cpus = device.get("cpu_count", "?")
    return (
        f"Machine: {kind} × {device.get('num_devices', '?')} ({device.get('machine', '?')}, "
        f"{cpus} CPU cores), jax {versions.get('jax', '?')}; run started "
        f"{str(manifest.get('started', '?'))[:10]} (`{run}`)."
    )
