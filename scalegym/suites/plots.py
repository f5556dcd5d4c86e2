"""The run's figures, `plots/*.png`: each finished cell's, drawn by its kind (`cells.KINDS`)."""

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
    figures: list[tuple[str, Any]] = []
    for name, record in records.items():
        kind = KINDS.get(record.get("kind", ""))
        if record.get("status") != "ok" or kind is None or not record.get("result"):
            continue
        figures.append((name, kind.figure(plt, {"cell": name, **record})))
    for kind_name, kind in KINDS.items():  # figures that set a kind's cells side by side
        mine = [{"cell": n, **r} for n, r in records.items() if r.get("kind") == kind_name]
        figures += list(kind.joint_figures(plt, [r for r in mine if r.get("status") == "ok"]))
    written = []
    for name, fig in figures:
        if fig is None:
            continue
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    return written
