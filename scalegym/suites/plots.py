"""The run's figures, `plots/*.png` (each kind draws its own), and the learning-curve figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

PLOTS = "plots"


def write_plots(run_dir: Path, records: dict[str, dict[str, Any]]) -> list[Path]:
    """One PNG per finished cell whose kind draws a figure (records by cell name); the paths."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    from scalegym.suites.cells import KINDS

    out_dir = Path(run_dir) / PLOTS
    written = []
    for name, record in records.items():
        kind = KINDS.get(record.get("kind", ""))
        if record.get("status") != "ok" or kind is None or not record.get("result"):
            continue
        fig = kind.figure(plt, {"cell": name, **record})
        if fig is None:
            continue
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    return written


def curve_figure(plt: Any, name: str, env: str, curve: list[dict[str, Any]]) -> Any:
    """Learning curves against env steps per seed, legend below the axes.

    Left axis: return of the training episodes that finished in each chunk (a line) and of
    evaluations on fresh envs (dots: the mean over seeds; with two or more seeds, a band: the
    95% stratified-bootstrap interval of their IQM). Right axis: evaluation success, whenever it
    was measured.
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
    band = seed_band(curve, "per_seed_return")
    if band:
        handles.append(
            ax.fill_between(*band, color="tab:orange", alpha=0.25, label="eval IQM 95% CI, seeds")
        )
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


def seed_band(
    curve: list[dict[str, Any]], key: str
) -> tuple[list[float], list[float], list[float]] | None:
    """(steps, low, high) of the IQM's 95% stratified-bootstrap interval over seeds at every
    evaluation with two or more seeds (`statistics.iqm_with_ci`); None if there is none."""
    from scalegym.suites.statistics import iqm_with_ci

    rows = [(p["step"], p[key]) for p in curve if len(p.get(key) or []) >= 2]
    if not rows:
        return None
    intervals = [iqm_with_ci(values) for _, values in rows]
    return [s for s, _ in rows], [i["low"] for i in intervals], [i["high"] for i in intervals]
