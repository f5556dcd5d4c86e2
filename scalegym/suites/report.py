"""A run's results: reading results.jsonl; the summary.csv and report.md a person reads first."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from scalegym.agents.result import TrainResult
from scalegym.suites.search import report_lines as search_lines
from scalegym.suites.statistics import iqm_cell
from scalegym.suites.timestep import report_lines

MANIFEST, RESULTS, SUMMARY, REPORT = "manifest.json", "results.jsonl", "summary.csv", "report.md"
SUMMARY_COLUMNS = (
    "cell",
    "kind",
    "env",
    "status",
    "sps",
    "batch_size",
    "steps",
    "seeds",
    "final_return",
    "final_success",
    "final_train_return",
    "threshold",
    "threshold_on",
    "passed",
    "exponent",
    "exponent_ci_low",
    "exponent_ci_high",
    "theory_exponent",
    "compile_s",
    "wall_s",
    "error",
)


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


def write_outputs(run_dir: str | Path) -> tuple[Path, Path]:
    """(Re)write summary.csv, report.md and plots/ of a run from its manifest and results.jsonl."""
    run_dir = Path(run_dir)
    summary_text, report_text = render_outputs(run_dir)
    summary = write_text_atomic(run_dir / SUMMARY, summary_text)
    report = write_text_atomic(run_dir / REPORT, report_text)
    from scalegym.suites.plots import write_plots  # matplotlib loads only when a run reports

    write_plots(run_dir, latest_records(read_records(run_dir / RESULTS)))
    return summary, report


def render_outputs(run_dir: str | Path) -> tuple[str, str]:
    """The texts of summary.csv and report.md for a run, from its manifest and results.jsonl."""
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    latest = latest_records(read_records(run_dir / RESULTS))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(summary_rows(manifest, latest))
    return buffer.getvalue(), render_report(run_dir, manifest, latest)


def summary_rows(
    manifest: dict[str, Any], latest: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """One row per cell of the suite (in suite order), cells not yet run marked "pending"."""
    cells = [c["name"] for c in manifest.get("cells", [])]
    cells += [name for name in latest if name not in cells]
    kinds = {c["name"]: c for c in manifest.get("cells", [])}
    rows = []
    for name in cells:
        record = latest.get(name)
        if record is None:
            cell = kinds[name]
            rows.append(
                {"cell": name, "kind": cell["kind"], "env": cell["env"], "status": "pending"}
            )
            continue
        row = {k: record.get(k) for k in ("cell", "kind", "env", "status", "wall_s")}
        row["error"] = record.get("error")
        result = record.get("result") or {}
        if record["kind"] == "bench" and result.get("results"):
            largest = max(result["results"], key=lambda r: r["batch_size"])
            row.update(
                sps=largest["sps"], batch_size=largest["batch_size"], compile_s=largest["compile_s"]
            )
        elif record["kind"] == "train" and result:
            train = TrainResult.from_record(result)
            verdict = result.get("threshold") or {}
            row.update(
                sps=train.sps,
                steps=train.steps,
                seeds=train.seeds,
                final_return=train.final.eval_return,
                final_success=train.final.eval_success,
                final_train_return=train.final.train_return,
                threshold=verdict.get("value"),
                threshold_on=verdict.get("metric"),
                passed=verdict.get("passed"),
                compile_s=train.compile_s,
            )
        elif record["kind"] == "scaling" and result:
            row.update(scaling_summary(result))
        rows.append(row)
    return rows


def render_report(
    run_dir: str | Path, manifest: dict[str, Any], latest: dict[str, dict[str, Any]]
) -> str:
    """report.md: the run's setting, then a table per cell kind, failures and cells not run."""
    suite = manifest.get("suite", {})
    rows = summary_rows(manifest, latest)
    counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "failed", "pending")}
    git = manifest.get("git") or {}
    commit = (git.get("commit") or "unknown")[:12] + (
        " (uncommitted changes)" if git.get("dirty") else ""
    )
    lines = [
        f"# Suite `{suite.get('name', '?')}`",
        "",
        suite.get("description", ""),
        "",
        f"- run: `{run_dir}`",
        f"- started: {manifest.get('started', '?')} (UTC); commit {commit}",
        f"- device: {device_line(manifest)}",
        f"- cells: {counts['ok']} ok, {counts['failed']} failed, {counts['pending']} not run",
        f"- curves: `scalegym tb {run_dir}`",
    ]
    bench = [r for r in latest.values() if r["kind"] == "bench" and r["status"] == "ok"]
    if bench:
        sizes = sorted({row["batch_size"] for r in bench for row in r["result"]["results"]})
        lines += ["", "## Env throughput (env steps per second, median over repeats)", ""]
        consumed = {r["result"].get("consumes", "") for r in bench} - {""}
        lines += [
            "Each timed step feeds "
            + (" / ".join(sorted(consumed)) if consumed else "the reward (older run)")
            + " into the result, auto-reset included; compile time excluded.",
            "",
        ]
        lines += [_row(["cell", "env", *(f"B={b:,}" for b in sizes)]), _rule(2 + len(sizes))]
        for record in bench:
            sps = {row["batch_size"]: row["sps"] for row in record["result"]["results"]}
            cells = [_si(sps[b]) if b in sps else "" for b in sizes]
            lines.append(_row([record["cell"], _env_label(record), *cells]))
        lines += peer_ratio_section(bench, manifest)
    train = [r for r in latest.values() if r["kind"] == "train" and r["status"] == "ok"]
    if train:
        header = ["cell", "env", "agent", "seeds", "env steps / seed", "eval return"]
        header += ["eval return IQM [95% CI]", "eval success", "eval success IQM [95% CI]"]
        header += ["train return", "threshold", "SPS", "compile s", "wall s"]
        lines += ["", "## Training", ""]
        lines += [
            "Eval: each seed's policy on fresh envs, first episode of each (mean ± std over "
            "seeds; IQM: interquartile mean over seeds with a 95% stratified-bootstrap interval, "
            "Agarwal et al. 2021, given from 2 seeds). Train return: episodes that ended during "
            "the last chunk. SPS: env steps per second over all seeds, compile excluded.",
            "",
        ]
        lines += [_row(header), _rule(len(header))]
        for record in train:
            result = TrainResult.from_record(record["result"])
            final = result.final
            lines.append(
                _row(
                    [
                        record["cell"],
                        _env_label(record),
                        result.agent + (" (host)" if result.path == "host" else ""),
                        str(result.seeds),
                        f"{result.steps:,}",
                        _mean_std(final.eval_return, final.per_seed_return),
                        iqm_cell(final.per_seed_return),
                        _mean_std(final.eval_success, final.per_seed_success),
                        iqm_cell(final.per_seed_success),
                        _num(final.train_return, 3),
                        _verdict(record["result"].get("threshold")),
                        _si(result.sps),
                        _num(result.compile_s, 1),
                        _num(record.get("wall_s"), 0),
                    ]
                )
            )
    scaling = [r for r in latest.values() if r["kind"] == "scaling" and _scaling_rows(r)]
    if scaling:
        lines += ["", "## Sample-complexity scaling", ""]
        lines += [
            "N̂: the budget by which 1 - δ of the seeds pass for good (a seed's first passing "
            "budget is the first after which every later evaluation passes). Censored: seeds "
            "that never settled; a value whose N̂ is censored is left out of the fit.",
        ]
        for record in scaling:
            lines += ["", *scaling_section(record)]
    timestep = [r for r in latest.values() if r["kind"] == "timestep" and r["status"] == "ok"]
    if timestep:
        lines += ["", "## Time-step policies against every fixed step"]
        for record in timestep:
            lines += ["", *report_lines(record["cell"], record["result"])]
    searched = [r for r in latest.values() if r["kind"] == "search" and r["status"] == "ok"]
    if searched:
        lines += ["", "## Return against search budget"]
        for record in searched:
            lines += ["", *search_lines(record["cell"], record["env"], record["result"])]
    failed = [r for r in rows if r["status"] == "failed"]
    if failed:
        lines += ["", "## Failed cells", "", _row(["cell", "kind", "error"]), _rule(3)]
        lines += [_row([r["cell"], r["kind"], r.get("error") or ""]) for r in failed]
    pending = [r["cell"] for r in rows if r["status"] == "pending"]
    if pending:
        lines += ["", f"Not run yet: {', '.join(pending)} (`scalegym run --resume {run_dir}`)."]
    return "\n".join(lines) + "\n"


PEER_PREFIXES = ("gymnax:", "xminigrid:", "navix:")  # the peers' ids, as `scalegym bench` takes


def is_peer(env_id: str) -> bool:
    return env_id.startswith(PEER_PREFIXES)


def peer_ratios(bench: list[dict[str, Any]]) -> dict[int, list[tuple[str, float, list[float]]]]:
    """Per batch size measured by a scalegym env and a peer: (cell, SPS, SPS ÷ each peer's)."""
    sps = {
        r["cell"]: {row["batch_size"]: row["sps"] for row in r["result"]["results"]} for r in bench
    }
    ours = [r["cell"] for r in bench if not is_peer(r["env"])]
    peers = [r["cell"] for r in bench if is_peer(r["env"])]
    out: dict[int, list[tuple[str, float, list[float]]]] = {}
    for size in sorted({b for cell in ours for b in sps[cell]}):
        if not any(size in sps[p] for p in peers):
            continue
        out[size] = [
            (cell, sps[cell][size], [sps[cell][size] / sps[p].get(size, math.nan) for p in peers])
            for cell in ours
            if size in sps[cell]
        ]
    return out


def peer_ratio_section(bench: list[dict[str, Any]], manifest: dict[str, Any]) -> list[str]:
    """Each scalegym env beside the peers at the same batch size: its SPS ÷ each peer's."""
    peers = [r["cell"] for r in bench if is_peer(r["env"])]
    by_size = peer_ratios(bench)
    if not by_size:
        return []
    lines = ["", "## Beside the peers (SPS ratio at the same batch size)", ""]
    lines += [
        f"Same process, same harness, same device ({device_line(manifest)}); "
        "a ratio above 1 means the scalegym env steps faster than that peer.",
    ]
    for size, rows in by_size.items():
        header = ["cell", "SPS", *(f"÷ {p}" for p in peers)]
        lines += ["", f"B = {size:,}", "", _row(header), _rule(len(header))]
        for cell, value, ratios in rows:
            shown = ["" if math.isnan(x) else f"{x:.2f}×" for x in ratios]
            lines.append(_row([cell, _si(value), *shown]))
    return lines


def cell_summary(record: dict[str, Any]) -> str:
    """One line for a finished cell: its key numbers, or its error."""
    head = f"{record['cell']} ({record['kind']}, {record['env']}, {_num(record['wall_s'], 1)} s)"
    if record["status"] != "ok":
        return f"FAILED {head}: {record.get('error', '')}"
    result = record["result"]
    if record["kind"] == "bench":
        best = max(result["results"], key=lambda r: r["batch_size"])
        return f"ok {head}: {_si(best['sps'])} env steps/s at batch {best['batch_size']:,}"
    if record["kind"] == "train":
        train = TrainResult.from_record(result)
        parts = [f"eval return {_num(train.final.eval_return, 3)}"]
        if train.final.eval_success is not None:
            parts.append(f"eval success {_num(train.final.eval_success, 3)}")
        if result.get("threshold"):
            parts.append(_verdict(result["threshold"]))
        parts.append(f"{_si(train.sps)} env steps/s")
        return f"ok {head}: {', '.join(parts)}"
    if record["kind"] == "scaling":
        return f"ok {head}: {fit_line(result)}"
    if record["kind"] == "search" and result.get("rows"):
        last = result["rows"][-1]
        return (
            f"ok {head}: {result['planner']} return {_num(last['return'], 3)}, success "
            f"{_num(last['success'], 2)} at budget {last['budget']:,}"
        )
    return f"ok {head}"


def scaling_summary(result: dict[str, Any]) -> dict[str, Any]:
    """summary.csv fields of a scaling cell: seeds, criterion, and the fitted exponent."""
    fit = result.get("fit") or {}
    return {
        "seeds": result.get("seeds"),
        "steps": (result.get("budgets") or [None])[-1] if result.get("unit") == "steps" else None,
        "threshold": result.get("threshold"),
        "threshold_on": result.get("criterion_on"),
        "exponent": fit.get("exponent"),
        "exponent_ci_low": fit.get("ci_low"),
        "exponent_ci_high": fit.get("ci_high"),
        "theory_exponent": result.get("theory_exponent"),
    }


def scaling_section(record: dict[str, Any]) -> list[str]:
    """One scaling cell: a heading, the fit against theory, and a row per value."""
    result = record["result"]
    status = "" if record["status"] == "ok" else " — FAILED, values done so far"
    agent, vary = result.get("agent", "?"), " = ".join(result.get("vary", []))
    lines = [f"### {record['cell']}: {_env_label(record)}, {agent}, varying {vary}{status}", ""]
    lines += [f"{fit_line(result)}; δ = {result.get('delta')}; pass: {result.get('criterion')}."]
    unit = result.get("unit", "steps")
    excluded = set((result.get("fit") or {}).get("excluded", []))
    header = ["value", f"N̂ ({unit})", "censored seeds", "in fit"]
    lines += ["", _row(header), _rule(len(header))]
    for row in _scaling_rows(record):
        in_fit = "no (N̂ censored)" if row["n_hat"] is None or row["value"] in excluded else "yes"
        censored = f"{row['censored']} of {len(row['first_budgets'])}"
        n_hat = "censored" if row["n_hat"] is None else f"{row['n_hat']:,.0f}"
        lines.append(_row([f"{row['value']:g}", n_hat, censored, in_fit]))
    return lines


def fit_line(result: dict[str, Any]) -> str:
    """`fitted exponent b = 1.52 [1.31, 1.74] 95% CI, theory = 1.5` (or why there is no fit)."""
    theory = result.get("theory_exponent")
    theory_text = "none" if theory is None else f"{theory:g}"
    fit = result.get("fit")
    if not fit:
        why = result.get("fit_error") or "fewer than two values finished"
        return f"no fit ({why}); theory = {theory_text}"
    level = round(100 * fit["level"])
    ci = f"[{_num(fit['ci_low'], 2)}, {_num(fit['ci_high'], 2)}] {level}% CI"
    return f"fitted exponent b = {fit['exponent']:.2f} {ci}, theory = {theory_text}"


def _scaling_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    return (record.get("result") or {}).get("values") or []


def device_line(manifest: dict[str, Any]) -> str:
    device = manifest.get("device") or {}
    jax_version = (manifest.get("versions") or {}).get("jax", "?")
    return (
        f"{device.get('backend', '?')} ({device.get('device_kind', '?')}) "
        f"x{device.get('num_devices', '?')}, {device.get('cpu_count', '?')} CPUs, "
        f"{device.get('processor', '?')}; jax {jax_version}"
    )


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


def _env_label(record: dict[str, Any]) -> str:
    overrides = record.get("env_params") or {}
    if not overrides:
        return record["env"]
    return f"{record['env']} ({', '.join(f'{k}={v}' for k, v in overrides.items())})"


def _mean_std(mean: float | None, per_seed: list[float] | None) -> str:
    if mean is None:
        return "–"
    if not per_seed or len(per_seed) < 2:
        return _num(mean, 3)
    values = [float(v) for v in per_seed]
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return f"{_num(mean, 3)} ± {_num(std, 3)}"


def _verdict(threshold: dict[str, Any] | None) -> str:
    if not threshold:
        return "–"
    passed = threshold.get("passed")
    outcome = "n/a" if passed is None else ("pass" if passed else "FAIL")
    return f"{threshold['metric']} ≥ {threshold['value']:g}: {outcome}"


def _si(value: float | None) -> str:
    if value is None:
        return "–"
    if value >= 1e6:
        return f"{value / 1e6:.2f}M"
    if value >= 1e3:
        return f"{value / 1e3:.1f}k"
    return f"{value:.0f}"


def _num(value: Any, digits: int) -> str:
    return "–" if value is None else f"{float(value):.{digits}f}"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"


def _rule(columns: int) -> str:
    return "|" + "---|" * columns
