"""The README's results tables, generated from the committed reference runs (`results/reference/`).

Each table sits in README.md between two markers,

    <!-- generated: NAME (python -m scalegym.suites.readme_tables) -->
    ...
    <!-- end: NAME -->

and is rebuilt from `results/reference/<dir>/results.jsonl` and its `manifest.json` (which names
the machine). `python -m scalegym.suites.readme_tables` rewrites them in place; `--check` exits 1
when README.md differs from what the reference files give (a test runs it), so a table never
drifts from the files it claims to come from.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = Path("results") / "reference"
MARKER = re.compile(
    r"(<!-- generated: (?P<name>[\w-]+) \(python -m scalegym\.suites\.readme_tables\) -->\n)"
    r"(?P<body>.*?)"
    r"(<!-- end: (?P=name) -->)",
    re.DOTALL,
)


def read_run(run_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(manifest, the latest ok record of each cell in file order) of one run directory."""
    manifest = json.loads((run_dir / "manifest.json").read_text())
    latest: dict[str, dict[str, Any]] = {}
    for line in (run_dir / "results.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record.get("status") == "ok":
            latest[record["cell"]] = record
    return manifest, list(latest.values())


def machine_line(manifest: dict[str, Any], run: str) -> str:
    """Which machine and versions produced a run, from its manifest."""
    device = manifest.get("device", {})
    versions = manifest.get("versions", {})
    kind = device.get("device_kind", "?")
    cpus = device.get("cpu_count", "?")
    return (
        f"Machine: {kind} × {device.get('num_devices', '?')} ({device.get('machine', '?')}, "
        f"{cpus} CPU cores), jax {versions.get('jax', '?')}; run started "
        f"{str(manifest.get('started', '?'))[:10]} (`{run}`)."
    )


def _si(value: float) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            digits = 2 if abs(value) < 10 * scale else (1 if abs(value) < 100 * scale else 0)
            return f"{value / scale:.{digits}f}{suffix}"
    return f"{value:.0f}"


def _env_label(record: dict[str, Any]) -> str:
    params = record.get("env_params") or {}
    extra = " ".join(f"`{k}={v}`" for k, v in params.items())
    return f"`{record['env']}`" + (f" {extra}" if extra else "")


RATIO_BATCH = 4096  # the batch size of the README's ratio table (CPU run)
GPU_RATIO_BATCH = 1_048_576  # the same for the GPU run


def sps_table(root: Path, name: str = "sps", ratio_batch: int = RATIO_BATCH) -> list[str]:
    """A bench reference run (`sps`, `sps-gpu`): env-only SPS of every bench cell by batch size,
    each scalegym env's ratio to each peer at B = `ratio_batch`, and end-to-end PPO SPS."""
    from scalegym.suites.report import is_peer, peer_ratios

    run = REFERENCE / name
    manifest, records = read_run(root / run)
    bench = [r for r in records if r["kind"] == "bench"]
    sizes = sorted({row["batch_size"] for r in bench for row in r["result"]["results"]})
    lines = [
        "| env | " + " | ".join(f"B={b:,}" for b in sizes) + " |",
        "|---|" + "---|" * len(sizes),
    ]
    for r in bench:
        sps = {row["batch_size"]: row["sps"] for row in r["result"]["results"]}
        cells = [_si(sps[b]) if b in sps else "—" for b in sizes]
        lines.append(f"| {_env_label(r)} | " + " | ".join(cells) + " |")
    ratios = peer_ratios(bench)
    peers = [r["cell"] for r in bench if is_peer(r["env"])]
    size = ratio_batch if ratio_batch in ratios else max(ratios, default=None)
    if size is not None:
        lines += [
            "",
            f"At B = {size:,}, each scalegym env's SPS ÷ each peer's (every batch size is in the "
            "run's report.md; ThreeBody, float64 physics, has no peer):",
            "",
            "| env | " + " | ".join(f"÷ {p}" for p in peers) + " |",
            "|---|" + "---|" * len(peers),
        ]
        labels = {r["cell"]: _env_label(r) for r in bench}
        for cell, _, row in ratios[size]:
            shown = ["—" if x != x else f"{x:.2f}×" for x in row]  # NaN: not run at this size
            lines.append(f"| {labels[cell]} | " + " | ".join(shown) + " |")
    train = [r for r in records if r["kind"] == "train"]
    if train:
        lines += [
            "",
            "End-to-end PPO (rollout, GAE and update in one compiled program; all seeds, compile "
            "excluded):",
            "",
            "| env | seeds | envs × steps per update | env steps / seed | SPS |",
            "|---|---|---|---|---|",
        ]
        for r in train:
            result, config = r["result"], r["result"]["config"]
            lines.append(
                f"| {_env_label(r)} | {result['seeds']} | {config['num_envs']} × "
                f"{config['num_steps']} | {result['steps']:,} | {_si(result['sps'])} |"
            )
    return [*lines, "", machine_line(manifest, str(run))]


def search_table(root: Path) -> list[str]:
    """Success against budget, and the return slope per decade, of each Rearrange search cell."""
    run = REFERENCE / "search-scaling"
    manifest, records = read_run(root / run)
    cells = [r for r in records if r["kind"] == "search" and r["env"].startswith("Rearrange")]
    budgets = sorted({row["budget"] for r in cells for row in r["result"]["rows"]})
    lines = [
        "Success at each budget (simulated env steps per decision), and the slope of return per "
        "decade of budget:",
        "",
        "| cell (planner) | " + " | ".join(f"{b:,}" for b in budgets) + " | slope [95% CI] |",
        "|---|" + "---|" * (len(budgets) + 1),
    ]
    for r in cells:
        result = r["result"]
        success = {row["budget"]: row["success"] for row in result["rows"]}
        slope = result.get("slope")
        fit = f"{slope['slope']:.2f} [{slope['low']:.2f}, {slope['high']:.2f}]" if slope else "—"
        row = [f"{success[b]:.2f}" if b in success else "—" for b in budgets]
        lines.append(f"| {r['cell']} ({result['planner']}) | " + " | ".join(row) + f" | {fit} |")
    return [*lines, "", machine_line(manifest, str(run))]


def threebody_table(root: Path) -> list[str]:
    """The timestep cell's rows: PPO seeds, fixed μ, Aarseth's fixed η, the lookahead planner."""
    from scalegym.suites.timestep import selected_seed

    run = REFERENCE / "threebody"
    manifest, records = read_run(root / run)
    lines = []
    for r in (r for r in records if r["kind"] == "timestep"):
        result = r["result"]
        lines += [
            f"`{r['cell']}`: {result['instances']} instance seeds × {result['eval_steps']} steps",
            "",
            "| policy | median log10\\|ΔE\\| [IQR] | total substeps | mean paper reward |",
            "|---|---|---|---|",
        ]
        for row in result["rows"]:
            q25, q75 = row["iqr_log10_error"]
            substeps = f"{row['total_substeps']:,}"
            if "planner_substeps" in row:
                substeps += f" (planning {row['planner_substeps']:,})"
            lines.append(
                f"| {row['policy']} | {row['median_log10_error']:.2f} [{q25:.2f}, {q75:.2f}] | "
                f"{substeps} | {row['mean_paper_reward']:.3f} |"
            )
        verdict, chosen = result["verdict"], selected_seed(result)
        if chosen is not None:
            first, last = result["validation"]["instances"]
            lines += [
                "",
                f"The trained policy, selected on validation seeds {first}–{last} (the report "
                f"says how): **{verdict['selected']}**, on the seeds above dominated by "
                f"{', '.join(chosen['dominated_by']) or 'no fixed μ'}; beats the best fixed μ's "
                f"mean paper reward ({verdict['best_fixed']}): "
                + ("yes" if chosen["beats_best_fixed"] else "no")
                + ".",
            ]
        lines.append("")
    return [*lines, machine_line(manifest, str(run))]


TABLES: dict[str, Callable[[Path], list[str]]] = {
    "sps": sps_table,
    "sps-gpu": lambda root: sps_table(root, "sps-gpu", GPU_RATIO_BATCH),
    "search-scaling": search_table,
    "threebody": threebody_table,
}


def render(readme: str, root: Path = ROOT) -> str:
    """`readme` with every generated table rebuilt from the reference files under `root`."""

    def table(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in TABLES:
            raise ValueError(f"README marker names table {name!r}; known: {', '.join(TABLES)}")
        body = "\n".join(TABLES[name](root))
        return f"{match.group(1)}{body}\n{match.group(4)}"

    return MARKER.sub(table, readme)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md would change")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    args = parser.parse_args(argv)
    text = args.readme.read_text()
    new = render(text, args.readme.parent)
    if args.check:
        if new != text:
            print(
                f"{args.readme}: generated tables differ from results/reference/", file=sys.stderr
            )
            return 1
        return 0
    if new != text:
        args.readme.write_text(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
