"""The run's figures, `plots/*.png`: env SPS against batch size, learning curves, scaling fits."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

PLOTS = "plots"


def write_plots(run_dir: Path, records: dict[str, dict[str, Any]]) -> list[Path]:
    """One PNG per finished bench, train or scaling cell (records by cell name); the paths."""
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
        elif record.get("kind") == "scaling" and result.get("values"):
            fig = scaling_figure(plt, name, record["env"], result)
        elif record.get("kind") == "timestep" and result.get("episodes"):
            from scalegym.suites.timestep import timestep_figure

            fig = timestep_figure(plt, name, record["env"], result)
        elif record.get("kind") == "search" and result.get("rows"):
            from scalegym.suites.search import search_figure

            fig = search_figure(plt, name, record["env"], result)
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


def scaling_figure(plt: Any, name: str, env: str, result: dict[str, Any]) -> Any:
    """N̂ against the varied value (log–log): seeds' first passing budgets as faint dots, censored
    seeds as triangles at the top, the fit with its bootstrap band, and the theory's slope."""
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    fig, ax = plt.subplots(figsize=(6, 4))
    rows = result["values"]
    largest = max(result.get("budgets") or [1])
    handles = [ax.axhline(largest, ls=":", color="gray", label="largest budget")]
    handles += _seed_points(ax, rows, 1.5 * largest)  # censored seeds above every budget
    finite = [(r["value"], r["n_hat"]) for r in rows if r["n_hat"] is not None]
    if finite:
        handles += ax.plot(*zip(*finite, strict=True), "o", color="tab:blue", label="N̂")
    fit = result.get("fit")
    if fit:
        handles += _fit_lines(ax, fit, [r["value"] for r in rows], result.get("theory_exponent"))
    unit = result.get("unit", "steps")
    vary = " = ".join(result.get("vary", [])) or "value"
    ax.set(xscale="log", yscale="log", xlabel=vary, ylabel=f"N̂ ({unit})", title=f"{name}: {env}")
    ax.set_xticks([r["value"] for r in rows])  # the values themselves, in plain numbers
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.grid(True, which="both", alpha=0.3)
    fig.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=3,
        frameon=False,
        fontsize="small",
    )
    fig.tight_layout()
    return fig


def _seed_points(ax: Any, rows: list[dict[str, Any]], top: float) -> list[Any]:
    """Each seed's first passing budget (faint dots), censored seeds as triangles at `top`."""
    passed = [(r["value"], f) for r in rows for f in r["first_budgets"] if f is not None]
    censored = [(r["value"], top) for r in rows for f in r["first_budgets"] if f is None]
    handles = []
    if passed:
        handles += ax.plot(
            *zip(*passed, strict=True), ".", color="gray", alpha=0.35, label="seed's first pass"
        )
    if censored:
        handles += ax.plot(
            *zip(*censored, strict=True), "^", color="tab:red", alpha=0.6, label="censored seed"
        )
    return handles


def _fit_lines(
    ax: Any, fit: dict[str, Any], values: list[float], theory: float | None
) -> list[Any]:
    """The fitted power law over all values, its bootstrap band, and the theory's slope through
    the fit's centre (the geometric mean of the fitted sizes)."""
    low, high = min(values), max(values)
    xs = [low * (high / low) ** (i / 20) for i in range(21)]
    b, a = fit["exponent"], fit["intercept"]
    level = round(100 * fit["level"])
    label = f"fit: b = {b:.2f} [{_num(fit['ci_low'])}, {_num(fit['ci_high'])}]"
    handles = ax.plot(xs, [math.exp(a) * x**b for x in xs], "-", color="tab:blue", label=label)
    band = fit.get("band") or {}
    if band.get("low") and None not in band["low"] + band["high"]:
        area = ax.fill_between(band["sizes"], band["low"], band["high"], color="tab:blue")
        area.set(alpha=0.15, label=f"{level}% bootstrap band")
        handles.append(area)
    if theory is not None:
        centre = math.exp(sum(math.log(x) for x in fit["sizes"]) / len(fit["sizes"]))
        n_centre = math.exp(a) * centre**b
        line = [n_centre * (x / centre) ** theory for x in xs]
        handles += ax.plot(xs, line, "--", color="black", label=f"theory: b = {theory:g}")
    return handles


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"
