"""The `bench` cell: env-only steps per second over batch sizes (`scalegym bench` in a suite)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from scalegym.core.peers import is_peer
from scalegym.suites.markdown import (
    code_env_label,
    device_line,
    env_label,
    si,
    si3,
    table_row,
    table_rule,
)
from scalegym.suites.schema import (
    INHERIT,
    Cell,
    CellContext,
    EnvCache,
    PartialCellError,
    Record,
    Rule,
    base_env_problems,
)

RATIO_BATCH = 4096  # the batch size of the README's ratio table (CPU run)
MAX_POINT_LABELS = 8  # the bench figure writes each median beside its point up to this many


@dataclass(frozen=True)
class BenchCell(Cell):
    """Env-only steps per second over batch sizes (`scalegym bench` inside a suite)."""

    batch_sizes: tuple[int, ...]
    steps: int
    repeats: int
    seed: int
    action: int | None = None  # the one action of every step; None: random actions
    note: str = ""  # written beside the cell in the integrator-work table (what its work is)
    devices: int | None = None  # split each batch over N local devices; None: bench_split's default

    kind: ClassVar[str] = "bench"
    title: ClassVar[str] = "Env throughput (env steps per second, median over repeats)"
    rules: ClassVar[dict[str, Rule]] = {
        "batch_sizes": Rule("int_list", required=True, minimum=1),
        "steps": Rule("int", default=256, minimum=1),
        "repeats": Rule("int", default=5, minimum=1),
        "seed": Rule("int", default=INHERIT, minimum=0),
        "action": Rule("int", default=None, minimum=0),
        "note": Rule("str", default=""),
        "devices": Rule("int", default=None, minimum=1),
    }

    def env_problems(self, where: str, envs: EnvCache) -> list[str]:
        """The env builds, and a fixed `action` is in its Discrete action space."""
        problems = base_env_problems(self, where, envs)
        if problems or self.action is None:
            return problems
        from scalegym.suites.measures import action_count, check_action

        try:
            check_action(self.action, action_count(envs.get(self.env, self.env_params)))
        except ValueError as err:
            return [f'{where}: field "action": {err}']
        return []

    def run(self, context: CellContext) -> dict[str, Any]:
        """SPS per batch size; `perf/sps` goes to TensorBoard with the batch size as step."""
        from scalegym.suites.cells.train import clear
        from scalegym.suites.measures import bench_report
        from scalegym.suites.tensorboard import TensorBoardLogger

        resolved = context.resolved(self.env, self.env_params)
        rows: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        clear(context.tb_dir)
        with resolved.precision(), TensorBoardLogger(context.tb_dir) as logger:
            # One batch size at a time, so the progress bar moves and TensorBoard fills in.
            for done, batch_size in enumerate(self.batch_sizes, start=1):
                one = bench_report(
                    resolved,
                    [batch_size],
                    self.steps,
                    self.repeats,
                    self.seed,
                    overrides=dict(self.env_params),
                    progress=False,
                    action=self.action,
                    devices=self.devices,
                )
                failed += one["failed"]
                for measured in one["results"]:
                    rows.append(measured)
                    logger.log_scalars(batch_size, {"perf/sps": measured["sps"]})
                context.advance(done / len(self.batch_sizes))
        result = {
            "env_kind": resolved.kind,
            "consumes": one["consumes"],
            "x64": one["x64"],
            "num_steps": self.steps,
            "repeats": self.repeats,
            "seed": self.seed,
            "action": self.action,
            "note": self.note,
            "results": rows,
            "failed": failed,
        }
        if failed:
            errors = "; ".join(f"B={f['batch_size']:,}: {f['error']}" for f in failed)
            raise PartialCellError(errors, result)
        return result

    @staticmethod
    def summary_row(result: dict[str, Any]) -> dict[str, Any]:
        if not result.get("results"):
            return {}
        largest = max(result["results"], key=lambda r: r["batch_size"])
        return {
            "sps": largest["sps"],
            "batch_size": largest["batch_size"],
            "compile_s": largest["compile_s"],
        }

    @staticmethod
    def line(result: dict[str, Any]) -> str:
        best = max(result["results"], key=lambda r: r["batch_size"])
        return f"{si(best['sps'])} env steps/s at batch {best['batch_size']:,}"

    @staticmethod
    def report_section(records: list[Record], manifest: dict[str, Any]) -> list[str]:
        bench = [r for r in records if r["status"] == "ok"]
        if not bench:
            return []
        sizes = sorted({m["batch_size"] for r in bench for m in r["result"]["results"]})
        consumed = {r["result"].get("consumes", "") for r in bench} - {""}
        lines = [
            "",
            "Each timed step feeds "
            + (" / ".join(sorted(consumed)) if consumed else "the reward (older run)")
            + " into the result, auto-reset included; compile time excluded.",
            *split_lines(bench),
            "",
            table_row(["cell", "env", *(f"B={b:,}" for b in sizes)]),
            table_rule(2 + len(sizes)),
        ]
        for record in bench:
            sps = {m["batch_size"]: m["sps"] for m in record["result"]["results"]}
            cells = [si(sps[b]) if b in sps else "" for b in sizes]
            lines.append(table_row([record["cell"], env_label(record), *cells]))
        return [*lines, *integrator_work_section(bench), *peer_ratio_section(bench, manifest)]

    @staticmethod
    def figure(plt: Any, record: Record) -> Any:
        """Median env steps per second against batch size (log–log), min–max over the repeats
        as error bars; counts written as the report writes them (`2.01M`, not `2×10^6`)."""
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        measured = record["result"].get("results")
        if not measured:
            return None
        fig, ax = plt.subplots(figsize=(5, 3.5))
        sizes = [m["batch_size"] for m in measured]
        sps = [m["sps"] for m in measured]
        low = [m["sps"] - m.get("sps_min", m["sps"]) for m in measured]
        high = [m.get("sps_max", m["sps"]) - m["sps"] for m in measured]
        repeats = record["result"].get("repeats")
        over = f"{repeats} repeats" if repeats else "repeats"
        label = f"median; bars: min–max over {over}"
        ax.errorbar(sizes, sps, yerr=[low, high], marker="o", capsize=3, label=label)
        if len(measured) <= MAX_POINT_LABELS:  # each median as the report's table writes it
            for size, value in zip(sizes, sps, strict=True):
                ax.annotate(
                    si(value),
                    (size, value),
                    textcoords="offset points",
                    xytext=(0, 7),
                    ha="center",
                    fontsize="x-small",
                )
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="batch size",
            ylabel="env steps / s",
            title=f"{record['cell']}: {record['env']}",
        )
        ax.margins(y=0.12)  # room above the top point for its label
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(FuncFormatter(tick_count))
            axis.set_minor_formatter(NullFormatter())
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False, fontsize="small")
        return fig

    @staticmethod
    def readme_table(
        records: list[Record],
        ratio_batch: int = RATIO_BATCH,
        integrator_work: bool = False,
        **_: Any,
    ) -> list[str]:
        """Env-only SPS of every bench cell with random actions by batch size, and each scalegym
        env's ratio to each peer at B = `ratio_batch` (or the largest batch size both ran); or,
        with `integrator_work`, the integrator-work table of the cells with a fixed action."""
        if integrator_work:
            return integrator_work_table([r for r in records if fixed_action(r)])
        records = [r for r in records if not fixed_action(r)]
        sizes = sorted({m["batch_size"] for r in records for m in r["result"]["results"]})
        lines = [
            "| env | " + " | ".join(f"B={b:,}" for b in sizes) + " |",
            "|---|" + "---|" * len(sizes),
        ]
        for r in records:
            sps = {m["batch_size"]: m["sps"] for m in r["result"]["results"]}
            cells = [si3(sps[b]) if b in sps else "—" for b in sizes]
            lines.append(f"| {code_env_label(r)} | " + " | ".join(cells) + " |")
        lines += split_lines(records)
        ratios = peer_ratios(records)
        peers = [r["cell"] for r in records if is_peer(r["env"])]
        size = ratio_batch if ratio_batch in ratios else max(ratios, default=None)
        if size is None:
            return lines
        lines += [
            "",
            f"At B = {size:,}, each scalegym env's SPS ÷ each peer's (every batch size is in the "
            "run's report.md; ThreeBody, float64 physics, has no peer):",
            "",
            "| env | " + " | ".join(f"÷ {p}" for p in peers) + " |",
            "|---|" + "---|" * len(peers),
        ]
        labels = {r["cell"]: code_env_label(r) for r in records}
        for cell, _, ratio_row in ratios[size]:
            shown = ["—" if x != x else f"{x:.2f}×" for x in ratio_row]  # NaN: not run at size
            lines.append(f"| {labels[cell]} | " + " | ".join(shown) + " |")
        return lines


def split_lines(bench: list[Record]) -> list[str]:
    """report.md: the device counts the JAX envs' batches were split over, when some batch was
    split."""
    from scalegym.suites.measures import sizes_by_split

    jax_rows = [
        row
        for record in bench
        if record["result"].get("env_kind") != "host"  # steps on the host, no devices
        for row in record["result"]["results"]
    ]
    sizes = sizes_by_split(jax_rows)
    if set(sizes) <= {1}:
        return []
    parts = [
        f"{n} device{'s' if n > 1 else ''} for B = {', '.join(f'{b:,}' for b in found)}"
        for n, found in sizes.items()
    ]
    return [
        "",
        "Each batch is split over local devices, each stepping its own share (a bench's default: "
        "the most devices the batch divides evenly over; the `scalegym` command gives the CPU "
        "one device per core): " + "; ".join(parts) + ".",
    ]


def fixed_action(record: Record) -> bool:
    return record["result"].get("action") is not None


def integrator_work_table(records: list[Record]) -> list[str]:
    """One row per batch size of each cell whose env reports integrator substeps: env steps/s,
    substeps/s and substeps per env step, the actions and the cell's note (what its work is)."""
    header = ["env", "actions", "B", "devices", "env steps/s", "substeps/s", "substeps / env step"]
    header.append("work")
    lines = [table_row(header), table_rule(len(header))]
    for record in records:
        result = record["result"]
        action = result.get("action")
        actions = "random" if action is None else f"action {action}"
        for row in result["results"]:
            if "substeps_per_s" not in row:
                continue
            per_step = row["substeps_per_s"] / max(row["sps"], 1e-12)
            lines.append(
                table_row(
                    [
                        code_env_label(record),
                        actions,
                        f"{row['batch_size']:,}",
                        devices_label(record, row),
                        si3(row["sps"]),
                        si3(row["substeps_per_s"]),
                        f"{per_step:,.1f}",
                        result.get("note", ""),
                    ]
                )
            )
    return lines if len(lines) > 2 else []


def devices_label(record: Record, row: dict[str, Any]) -> str:
    """Where a row's batch ran: its device split, or the host's one core for a host env."""
    if record["result"].get("env_kind") == "host":
        return "host, 1 core"
    return str(row.get("devices", 1))


def integrator_work_section(bench: list[Record]) -> list[str]:
    """report.md: the integrator-work table, when some cell's env reports substeps."""
    table = integrator_work_table(bench)
    if not table:
        return []
    return [
        "",
        "## Integrator work (envs that report their integrator's substeps)",
        "",
        "Env steps per second and integrator (sub)steps per second of the same timed runs; at a "
        "fixed action every env step asks for the same accuracy, so rows of one action compare "
        "integrators doing like work.",
        "",
        *table,
    ]


def tick_count(value: float, _position: Any = None) -> str:
    """An axis tick as report.md counts: `200k`, `2M`, `2.5M`, `16` (k, M, G; no 2×10^6)."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def peer_ratios(bench: list[Record]) -> dict[int, list[tuple[str, float, list[float]]]]:
    """Per batch size measured by a scalegym env and a peer: (cell, SPS, SPS ÷ each peer's)."""
    sps = {r["cell"]: {m["batch_size"]: m["sps"] for m in r["result"]["results"]} for r in bench}
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


def peer_ratio_section(bench: list[Record], manifest: dict[str, Any]) -> list[str]:
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
        lines += ["", f"B = {size:,}", "", table_row(header), table_rule(len(header))]
        for cell, value, ratios in rows:
            shown = ["" if math.isnan(x) else f"{x:.2f}×" for x in ratios]
            lines.append(table_row([cell, si(value), *shown]))
    return lines
