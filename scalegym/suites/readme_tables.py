"""The results tables of the README and the docs, generated from the committed reference runs.

Each table sits in README.md or in a docs page (docs/**/*.md) between two markers,

    <!-- generated: NAME (python -m scalegym.suites.readme_tables) -->
    ...
    <!-- end: NAME -->

and is rebuilt from `results/reference/<dir>/results.jsonl` and its `manifest.json` (which names
the machine). `python -m scalegym.suites.readme_tables` rewrites them in place; `--check` exits 1
when a page differs from what the reference files give (a test runs it), so a table never drifts
from the files it claims to come from.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalegym.suites.cells import KINDS
from scalegym.suites.markdown import machine_line

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = Path("results") / "reference"
MARKER = re.compile(
    r"(<!-- generated: (?P<name>[\w-]+) \(python -m scalegym\.suites\.readme_tables\) -->\n)"
    r"(?P<body>.*?)"
    r"(<!-- end: (?P=name) -->)",
    re.DOTALL,
)


@dataclass(frozen=True)
class Table:
    """One generated table: the reference run it reads, the cell kinds it shows (in order, each
    kind writing its own part), and the options those kinds' `readme_table` take."""

    run: str  # a folder of results/reference/
    kinds: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)


TABLES: dict[str, Table] = {
    "sps": Table("sps", ("bench", "train"), {"ratio_batch": 4096}),
    "sps-gpu": Table("sps-gpu", ("bench", "train"), {"ratio_batch": 1_048_576}),
    "threebody-work": Table("sps", ("bench",), {"integrator_work": True}),
    "search-scaling": Table("search-scaling", ("search",), {"env_prefix": "Rearrange"}),
    "threebody": Table("threebody", ("timestep",)),
    "pomdp-scaling": Table("pomdp-scaling", ("scaling",)),
}


def read_run(run_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(manifest, the latest ok record of each cell in file order) of one run directory."""
    manifest = json.loads((run_dir / "manifest.json").read_text())
    latest: dict[str, dict[str, Any]] = {}
    for line in (run_dir / "results.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record.get("status") == "ok":
            latest[record["cell"]] = record
    return manifest, list(latest.values())


def table_lines(table: Table, root: Path) -> list[str]:
    """The table's lines: each kind's part (blank line between), then the machine it ran on."""
    run = REFERENCE / table.run
    manifest, records = read_run(root / run)
    lines: list[str] = []
    for kind in table.kinds:
        part = KINDS[kind].readme_table([r for r in records if r["kind"] == kind], **table.options)
        if part:
            lines += ([""] if lines else []) + part
    if lines and lines[-1] != "":
        lines.append("")
    return [*lines, machine_line(manifest, str(run))]


def pages(root: Path = ROOT) -> list[Path]:
    """The files whose markers this module keeps: README.md and every docs page."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def render(readme: str, root: Path = ROOT) -> str:
    """`readme` (any page's text) with every generated table rebuilt from the reference files
    under `root`."""

    def table(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in TABLES:
            raise ValueError(f"a marker names table {name!r}; known: {', '.join(TABLES)}")
        body = "\n".join(table_lines(TABLES[name], root))
        return f"{match.group(1)}{body}\n{match.group(4)}"

    return MARKER.sub(table, readme)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a page would change")
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="the checkout whose results/reference/ is read"
    )
    parser.add_argument(
        "pages",
        type=Path,
        nargs="*",
        metavar="PAGE",
        help="Markdown files to rebuild (default: README.md and docs/**/*.md under --root)",
    )
    args = parser.parse_args(argv)
    stale = []
    for page in args.pages or pages(args.root):
        text = page.read_text()
        new = render(text, args.root)
        if new == text:
            continue
        if args.check:
            stale.append(page)
        else:
            page.write_text(new)
    for page in stale:
        print(f"{page}: generated tables differ from results/reference/", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
