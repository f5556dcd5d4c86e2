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
    """Learning curves against env steps per seed, legend below the axes.

    Left axis: return of the training episodes that finished in each chunk (a line) and of
    evaluations on fresh envs (dots). Right axis: evaluation success, whenever it was measured.
    Training success is not drawn: early in training only the episodes that end early, the
    successes, have finished, so it starts near 1.0 whatever the policy (it stays in TensorBoard
    beside `train/episodes`, the count it is taken over).
    """
    from matplotlib.ticker import EngFormatter, MaxNLocator

    fig, ax = plt.subplots(figsize=(6, 4))
    steps = [p["step"] for p in curve]

    def points(tag: str) -> list[tuple[float, float]]:
        return [(s, p[tag]) for s, p in zip(steps, curve, strict=True) if tag in p]

    handles = []
    for tag, style, label in (
        ("train/return", "-", "return, training episodes"),
        ("eval/return", "o", "return, eval on fresh envs"),
    ):
        if points(tag):
            handles += ax.plot(*zip(*points(tag), strict=True), style, label=label)
    ax.set(xlabel="env steps per seed", ylabel="return", title=f"{name}: {env}")
    success = points("eval/success")
    if success:
        twin = ax.twinx()
        handles += twin.plot(
            *zip(*success, strict=True), "s--", color="tab:green", label="success, eval"
        )
        twin.set(ylabel="success (eval)", ylim=(-0.02, 1.05))
    # Short engineering labels ("1.5M") on a few ticks, so they never run together.
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.grid(True, alpha=0.3)
    if handles:  # below the axes, where it cannot hide a curve
        fig.legend(
            handles=handles,
            loc="upper center",
            bbox_to_anchor=(0.5, 0.0),
            ncol=len(handles),
            frameon=False,
            fontsize="small",
        )
    fig.tight_layout()
    return fig
