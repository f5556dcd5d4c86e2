"""The scaling cell's report: its summary row, report section and figures, from its record.

Every record is judged again by the current fit rules (`refitted`), so an older run's report
says what its data show today.
"""

from __future__ import annotations

import math
from typing import Any

from scalegym.suites.markdown import env_label, num, table_row, table_rule
from scalegym.suites.scaling import fit_values
from scalegym.suites.schema import Record


def refitted(result: dict[str, Any]) -> dict[str, Any]:
    """The record with its fit and censored bounds computed again from the rows' first passing
    budgets by the current rules (older runs' stored fits may have used two sizes)."""
    rows = result.get("values") or []
    if not rows:
        return result
    budgets = result.get("budgets") or [math.inf]
    largest = [max(row.get("budgets") or budgets) for row in rows]
    sizes, first = [row["value"] for row in rows], [row["first_budgets"] for row in rows]
    fit = fit_values(sizes, first, result.get("delta", 0.1), result.get("seed", 0), largest)
    return {**result, "fit_error": None, **fit}


def lower_bound(result: dict[str, Any]) -> tuple[float | None, str]:
    """(the family's lower-bound exponent, its source); older records held `theory_exponent`."""
    if "lower_bound" in result:
        return result["lower_bound"], result.get("lower_bound_source") or ""
    return result.get("theory_exponent"), "source not recorded: an older run"


def scaling_summary(result: dict[str, Any]) -> dict[str, Any]:
    """summary.csv fields of a scaling cell: runs, criterion, the fitted exponent, the bound."""
    result = refitted(result)
    fit = result.get("fit") or {}
    return {
        "seeds": result.get("seeds"),
        "steps": (result.get("budgets") or [None])[-1] if result.get("unit") == "steps" else None,
        "threshold": result.get("threshold"),
        "threshold_on": result.get("criterion_on"),
        "exponent": fit.get("exponent"),
        "exponent_ci_low": fit.get("ci_low"),
        "exponent_ci_high": fit.get("ci_high"),
        "lower_bound": lower_bound(result)[0],
    }


AGENT_NOTES = {
    "calibration": "The calibration learner knows the gap g = αε/2 and sets its per-candidate "
    "budget from it, so its exponent holds by construction: it checks the harness (N̂, the fit, "
    "its interval), not the family's hardness.",
    "optimal": "The exact-optimal policy needs no samples (a ceiling): it passes from the first "
    "budget.",
}


def instance_line(result: dict[str, Any]) -> str:
    """How the runs' instances were drawn, as the report says it."""
    rows = result.get("values") or []
    if "instance" not in result:
        return "Instances: one fixed instance per size for every seed (an older run)."
    if all(row.get("instance_seeds") is None for row in rows):
        return "Instances: the env has no instance field; every run plays its params."
    if result["instance"] is None:
        return (
            "Instances: each run (seed, size) plays its own random instance, its seed derived "
            "from the cell seed, the run and the size; N̂ is over instances and training "
            "randomness together."
        )
    return f"Instances: every run plays instance {result['instance']} (`instance` fixed)."


def scaling_section(record: dict[str, Any]) -> list[str]:
    """One scaling cell: a heading, the fit beside the lower bound, and a row per value."""
    result = refitted(record["result"])
    status = "" if record["status"] == "ok" else " — FAILED, values done so far"
    agent, vary = result.get("agent", "?"), " = ".join(result.get("vary", []))
    lines = [f"### {record['cell']}: {env_label(record)}, {agent}, varying {vary}{status}", ""]
    lines += [f"{fit_line(result)}; δ = {result.get('delta')}; pass: {result.get('criterion')}."]
    lines += ["", instance_line(result)]
    if agent in AGENT_NOTES:
        lines += ["", AGENT_NOTES[agent]]
    unit = result.get("unit", "steps")
    excluded = set((result.get("fit") or {}).get("excluded", []))
    header = ["value", f"N̂ ({unit})", "censored runs", "largest budget", "in fit"]
    lines += ["", table_row(header), table_rule(len(header))]
    for row in scaling_rows(record):
        in_fit = "no (N̂ censored)" if row["n_hat"] is None or row["value"] in excluded else "yes"
        if not result.get("fit"):
            in_fit = "no fit" if row["n_hat"] is not None else in_fit
        censored = f"{row['censored']} of {len(row['first_budgets'])}"
        n_hat = "censored" if row["n_hat"] is None else f"{row['n_hat']:,.0f}"
        largest = max(row.get("budgets") or result.get("budgets") or [0])
        lines.append(table_row([f"{row['value']:g}", n_hat, censored, f"{largest:,}", in_fit]))
    return lines


def fit_line(result: dict[str, Any]) -> str:
    """`fitted exponent b = 1.52 [1.31, 1.74] 95% CI; lower bound 1.5 (source); censored: ...`,
    or why there is no exponent."""
    bound, source = lower_bound(result)
    bound_text = "lower bound: none given" if bound is None else f"lower bound {bound:g} ({source})"
    fit = result.get("fit")
    if fit:
        level = round(100 * fit["level"])
        ci = f"[{num(fit['ci_low'], 2)}, {num(fit['ci_high'], 2)}] {level}% CI"
        text = f"fitted exponent b = {fit['exponent']:.2f} {ci}; {bound_text}"
    else:
        text = f"no exponent ({result.get('fit_error') or 'no value finished'}); {bound_text}"
    bounds = result.get("censored_bounds") or []
    if bounds:
        shown = ", ".join(
            f"{b['from']:g}→{b['to']:g}: b > {b['exponent_above']:.2f}" for b in bounds
        )
        text += f"; censored sizes bound the local exponent: {shown}"
    return text


def scaling_table(records: list[Record]) -> list[str]:
    """The docs' table of a run's scaling cells: one row per cell, judged by the current rules —
    sizes, N̂ at each, the fitted exponent (or why none), the lower bound and censored bounds."""
    header = ["cell", "env", "agent", "N̂ at each value", "exponent [95% CI]", "lower bound"]
    lines = [table_row(header), table_rule(len(header))]
    for record in records:
        result = refitted(record["result"])
        fit = result.get("fit")
        if fit:
            exponent = f"{fit['exponent']:.2f} [{num(fit['ci_low'], 2)}, {num(fit['ci_high'], 2)}]"
        else:
            exponent = f"none ({result.get('fit_error') or 'no value finished'})"
        bounds = "; ".join(
            f"{b['from']:g}→{b['to']:g}: b > {b['exponent_above']:.2f}"
            for b in result.get("censored_bounds") or []
        )
        if bounds:
            exponent += f"; censored: {bounds}"
        n_hats = ", ".join(
            f"{row['value']:g}: " + ("censored" if row["n_hat"] is None else f"{row['n_hat']:,.0f}")
            for row in scaling_rows(record)
        )
        bound, _ = lower_bound(result)
        cells = [f"`{record['cell']}`", env_label(record), result.get("agent", "?"), n_hats]
        lines.append(table_row([*cells, exponent, "—" if bound is None else f"{bound:g}"]))
    return lines


def scaling_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    return (record.get("result") or {}).get("values") or []


def scaling_figure(plt: Any, name: str, env: str, result: dict[str, Any]) -> Any:
    """N̂ against the varied value (log–log): seeds' first passing budgets as faint dots, censored
    seeds as triangles at the top, the fit with its bootstrap band, the lower bound's slope, and
    the censored sizes' local bounds as arrows."""
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    fig, ax = plt.subplots(figsize=(6, 4))
    rows = result["values"]
    largest = max(max(r.get("budgets") or result.get("budgets") or [1]) for r in rows)
    handles = [ax.axhline(largest, ls=":", color="gray", label="largest budget")]
    handles += _seed_points(ax, rows, 1.5 * largest)  # censored seeds above every budget
    finite = [(r["value"], r["n_hat"]) for r in rows if r["n_hat"] is not None]
    if finite:
        handles += ax.plot(*zip(*finite, strict=True), "o", color="tab:blue", label="N̂")
    fit = result.get("fit")
    if fit:
        handles += _fit_lines(ax, fit, [r["value"] for r in rows], lower_bound(result)[0])
    handles += _censored_arrows(ax, result.get("censored_bounds") or [], rows)
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


def _fit_lines(ax: Any, fit: dict[str, Any], values: list[float], bound: float | None) -> list[Any]:
    """The fitted power law over all values, its bootstrap band, and the lower bound's slope through
    the fit's centre (the geometric mean of the fitted sizes)."""
    low, high = min(values), max(values)
    xs = [low * (high / low) ** (i / 20) for i in range(21)]
    b, a = fit["exponent"], fit["intercept"]
    level = round(100 * fit["level"])
    label = f"fit: b = {b:.2f} [{num(fit['ci_low'], 2)}, {num(fit['ci_high'], 2)}]"
    handles = ax.plot(xs, [math.exp(a) * x**b for x in xs], "-", color="tab:blue", label=label)
    band = fit.get("band") or {}
    if band.get("low") and None not in band["low"] + band["high"]:
        area = ax.fill_between(band["sizes"], band["low"], band["high"], color="tab:blue")
        area.set(alpha=0.15, label=f"{level}% bootstrap band")
        handles.append(area)
    if bound is not None:
        centre = math.exp(sum(math.log(x) for x in fit["sizes"]) / len(fit["sizes"]))
        n_centre = math.exp(a) * centre**b
        line = [n_centre * (x / centre) ** bound for x in xs]
        handles += ax.plot(xs, line, "--", color="black", label=f"lower bound: b = {bound:g}")
    return handles


def _censored_arrows(
    ax: Any,
    bounds: list[dict[str, float]],
    rows: list[dict[str, Any]],
    colour: Any = "tab:red",
    prefix: str = "",
) -> list:
    """Each censored size's local bound: an arrow up from the line of slope `exponent_above`
    drawn from the last settled size, labelled "b > ..."."""
    n_hat = {r["value"]: r["n_hat"] for r in rows}
    handles = []
    for b in bounds:
        start = n_hat.get(b["from"])
        if start is None:
            continue
        at = start * (b["to"] / b["from"]) ** b["exponent_above"]  # the censored size's floor
        ax.annotate(
            "",
            xy=(b["to"], at * 1.4),  # below the censored runs' triangles at 1.5x the budget
            xytext=(b["to"], at),
            arrowprops={"arrowstyle": "-|>", "color": colour, "lw": 1.5},
        )
        handles += ax.plot(
            [b["from"], b["to"]],
            [start, at],
            ":",
            color=colour,
            label=f"{prefix}censored {b['to']:g}: local b > {b['exponent_above']:.2f}",
        )
    return handles


def _next_size(bound: dict[str, float], result: dict[str, Any]) -> bool:
    """Whether a censored bound starts at the settled size just below its censored size (the
    family figure draws only those; the cell's own figure draws them all)."""
    values = [r["value"] for r in result["values"]]
    return bound["from"] in values and values.index(bound["from"]) + 1 == values.index(bound["to"])


def family_figure(plt: Any, env: str, vary: str, records: list[Record]) -> Any:
    """N̂ against the varied size of every cell on one family, each with its fit and the local
    bound of its first censored size, and the family's lower-bound slope through the first
    cell's fit."""
    fig, ax = plt.subplots(figsize=(6, 4))
    bound = None
    for index, record in enumerate(records):
        result = refitted(record["result"])
        colour = plt.get_cmap("tab10")(index)
        finite = [(r["value"], r["n_hat"]) for r in result["values"] if r["n_hat"] is not None]
        label = f"{record['cell']} ({result.get('agent', '?')})"
        if finite:
            ax.plot(*zip(*finite, strict=True), "o", color=colour, label=f"N̂: {label}")
        fit = result.get("fit")
        if fit:
            sizes = fit["sizes"]
            ys = [math.exp(fit["intercept"]) * s ** fit["exponent"] for s in sizes]
            ax.plot(sizes, ys, "-", color=colour, label=f"fit {label}: b = {fit['exponent']:.2f}")
            bound = bound or (lower_bound(result)[0], fit)
        nearest = [b for b in result.get("censored_bounds") or [] if _next_size(b, result)]
        _censored_arrows(ax, nearest, result["values"], colour, f"{record['cell']}: ")
    if bound is not None and bound[0] is not None:
        exponent, fit = bound
        sizes = fit["sizes"]
        start = math.exp(fit["intercept"]) * sizes[0] ** fit["exponent"]
        ys = [start * (s / sizes[0]) ** exponent for s in sizes]
        ax.plot(sizes, ys, "--", color="black", label=f"lower bound: b = {exponent:g}")
    ax.set(xscale="log", yscale="log", xlabel=vary, ylabel="N̂", title=f"{env}: N̂ against {vary}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="x-small")
    return fig
