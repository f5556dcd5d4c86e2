"""The run's figures, `plots/*.png`: env SPS against batch size, and learning curves per cell."""

from __future__ import annotations

from pathlib import Path
from typing import Any

PLOTS = "plots"


def write_plots(run_dir: Path, records: dict[str, dict[str, Any]]) -> list[Path]:
    """One PNG per finished bench or train cell (records by cell name); returns the paths."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    out_dir = Path(run_dir) / PLOTS
    written = []
    for name, record in records.items():
        result = record.get("result") or {}
        if record.get("status") != "ok":
            continue
        if record.get("kind") == "bench" and result.get("results"):
            fig = sps_figure(plt, name, record["env"], result["results"])
        elif record.get("kind") == "train" and result.get("curve"):
            fig = curve_figure(plt, name, record["env"], result["curve"])
        else:
            continue
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    return written


def sps_figure(plt: Any, name: str, env: str, rows: list[dict[str, Any]]) -> Any:
    """Median env steps per second against batch size (log–log), min–max as error bars."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    sizes = [r["batch_size"] for r in rows]
    sps = [r["sps"] for r in rows]
    low = [r["sps"] - r.get("sps_min", r["sps"]) for r in rows]
    high = [r.get("sps_max", r["sps"]) - r["sps"] for r in rows]
    ax.errorbar(sizes, sps, yerr=[low, high], marker="o", capsize=3)
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="batch size",
        ylabel="env steps / s",
        title=f"{name}: {env}",
    )
    ax.grid(True, which="both", alpha=0.3)
    return fig


def curve_figure(plt: Any, name: str, env: str, curve: list[dict[str, Any]]) -> Any:
    """Return (left axis) and success (right axis, when the env reports it) against env steps."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    steps = [p["step"] for p in curve]
    for tag, style in (("train/return", "-"), ("eval/return", "o")):
        points = [(s, p[tag]) for s, p in zip(steps, curve, strict=True) if tag in p]
        if points:
            ax.plot(*zip(*points, strict=True), style, label=tag)
    ax.set(xlabel="env steps per seed", ylabel="return", title=f"{name}: {env}")
    success = [
        (s, p["train/success"]) for s, p in zip(steps, curve, strict=True) if "train/success" in p
    ]
    if success:
        twin = ax.twinx()
        twin.plot(*zip(*success, strict=True), "--", color="tab:green", label="train/success")
        twin.set(ylabel="success", ylim=(0, 1.05))
        twin.legend(loc="lower right")
    if ax.get_legend_handles_labels()[0]:  # a stand-in curve may carry success only
        ax.legend(loc="upper left")
    ax.grid(True, alpha=0.3)
    return fig
