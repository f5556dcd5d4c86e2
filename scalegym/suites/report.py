"""A run's summary.csv and report.md, rebuilt from its manifest and results.jsonl.

The report is the run's setting, then one section per cell kind (in `cells.KINDS` order, each
written by its kind), the failed cells and the cells not run yet.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from scalegym.suites.cells import KINDS
from scalegym.suites.markdown import device_line, num, table_row, table_rule
from scalegym.suites.rundir import (
    REPORT,
    RESULTS,
    SUMMARY,
    latest_records,
    read_manifest,
    read_records,
    write_text_atomic,
)
from scalegym.suites.schema import Record

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
    "lower_bound",
    "compile_s",
    "wall_s",
    "error",
)


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


def summary_rows(manifest: dict[str, Any], latest: dict[str, Record]) -> list[dict[str, Any]]:
    """One row per cell of the suite (in suite order), cells not yet run marked "pending"."""
    cells = [c["name"] for c in manifest.get("cells", [])]
    cells += [name for name in latest if name not in cells]
    entries = {c["name"]: c for c in manifest.get("cells", [])}
    rows = []
    for name in cells:
        record = latest.get(name)
        if record is None:
            entry = entries[name]
            rows.append(
                {"cell": name, "kind": entry["kind"], "env": entry["env"], "status": "pending"}
            )
            continue
        row = {k: record.get(k) for k in ("cell", "kind", "env", "status", "wall_s")}
        row["error"] = record.get("error")
        result = record.get("result")
        if result and record["kind"] in KINDS:
            row.update(KINDS[record["kind"]].summary_row(result))
        rows.append(row)
    return rows


def code_line(git: dict[str, Any]) -> str:
    """The code a run ran, as report.md says it: the commit (and uncommitted changes), else
    the installed scalegym version (a run from outside a checkout)."""
    if git.get("commit"):
        dirty = " (uncommitted changes)" if git.get("dirty") else ""
        return f"commit {git['commit'][:12]}{dirty}"
    if git.get("scalegym"):
        return f"scalegym {git['scalegym']} (not a git checkout)"
    return "commit unknown"


def render_report(run_dir: str | Path, manifest: dict[str, Any], latest: dict[str, Record]) -> str:
    """report.md: the run's setting, then a section per cell kind, failures and cells not run."""
    suite = manifest.get("suite", {})
    rows = summary_rows(manifest, latest)
    counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "failed", "pending")}
    git = manifest.get("git") or {}
    commit = code_line(git)
    lines = [
        f"# Suite `{suite.get('name', '?')}`",
        "",
        suite.get("description", ""),
        "",
        f"- run: `{run_dir}`",
        f"- started: {manifest.get('started', '?')} (UTC); {commit}",
        f"- device: {device_line(manifest)}",
        f"- cells: {counts['ok']} ok, {counts['failed']} failed, {counts['pending']} not run",
        f"- curves: `scalegym tb {run_dir}`",
    ]
    for kind, cls in KINDS.items():
        section = cls.report_section([r for r in latest.values() if r["kind"] == kind], manifest)
        if section:
            lines += ["", f"## {cls.title}", *section]
    failed = [r for r in rows if r["status"] == "failed"]
    if failed:
        lines += ["", "## Failed cells", "", table_row(["cell", "kind", "error"]), table_rule(3)]
        lines += [table_row([r["cell"], r["kind"], r.get("error") or ""]) for r in failed]
    pending = [r["cell"] for r in rows if r["status"] == "pending"]
    if pending:
        lines += ["", f"Not run yet: {', '.join(pending)} (`scalegym run --resume {run_dir}`)."]
    return "\n".join(lines) + "\n"


def cell_summary(record: Record) -> str:
    """One line for a finished cell: its key numbers, or its error."""
    head = f"{record['cell']} ({record['kind']}, {record['env']}, {num(record['wall_s'], 1)} s)"
    if record["status"] != "ok":
        return f"FAILED {head}: {record.get('error', '')}"
    kind = KINDS.get(record["kind"])
    numbers = kind.line(record["result"]) if kind is not None else ""
    return f"ok {head}: {numbers}" if numbers else f"ok {head}"
