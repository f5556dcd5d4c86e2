"""The committed reference runs are what the code reports from them: `scalegym report` on a copy
of a run directory regenerates its tables and plots byte for byte."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from scalegym.cli import main
from scalegym.suites.report import render_outputs
from scalegym.suites.rundir import REPORT, SUMMARY

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "results" / "reference"
RUNS = sorted(p.parent.name for p in REFERENCE.glob("*/manifest.json"))


def test_every_reference_suite_is_a_run() -> None:
    suites = {"smoke", "sps", "rearrange", "threebody", "pomdp-scaling", "search-scaling"}
    assert suites <= set(RUNS)  # every shipped suite but `full` has a reference run


@pytest.mark.parametrize("name", RUNS)
def test_reference_tables_are_what_the_report_renders(name: str, monkeypatch) -> None:
    # Rendered from the repository root, as `scalegym report results/reference/NAME` was run:
    # the report names its run directory as given.
    monkeypatch.chdir(ROOT)
    summary, report = render_outputs(Path("results") / "reference" / name)
    assert summary == (REFERENCE / name / SUMMARY).read_text(), f"{name}/{SUMMARY} is stale"
    assert report == (REFERENCE / name / REPORT).read_text(), f"{name}/{REPORT} is stale"


def test_report_on_a_copy_regenerates_identical_tables_and_plots(
    tmp_path: Path, monkeypatch
) -> None:
    name = "rearrange"  # bench, train and scaling cells: every kind of plot but two
    copy = tmp_path / "results" / "reference" / name
    copy.mkdir(parents=True)
    for kept in ("manifest.json", "results.jsonl"):  # what a run's report is built from
        shutil.copy(REFERENCE / name / kept, copy / kept)
    monkeypatch.chdir(tmp_path)
    assert main(["report", str(copy.relative_to(tmp_path))]) == 0
    for produced in (
        SUMMARY,
        REPORT,
        *(f"plots/{p.name}" for p in (REFERENCE / name / "plots").iterdir()),
    ):
        assert (copy / produced).read_bytes() == (REFERENCE / name / produced).read_bytes(), (
            produced
        )
    assert sorted(p.name for p in (copy / "plots").iterdir()) == sorted(
        p.name for p in (REFERENCE / name / "plots").iterdir()
    )
