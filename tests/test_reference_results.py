"""The committed reference runs are what the code reports from them: `scalegym report` on a copy
of a run directory regenerates its tables, and each figure plots its record's numbers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from scalegym.cli import main
from scalegym.suites.cells import KINDS
from scalegym.suites.report import render_outputs
from scalegym.suites.rundir import REPORT, RESULTS, SUMMARY

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


def test_report_on_a_copy_regenerates_its_tables_and_one_plot_per_cell(
    tmp_path: Path, monkeypatch
) -> None:
    name = "rearrange"  # bench, train and scaling cells
    copy = tmp_path / "results" / "reference" / name
    copy.mkdir(parents=True)
    for kept in ("manifest.json", "results.jsonl"):  # what a run's report is built from
        shutil.copy(REFERENCE / name / kept, copy / kept)
    monkeypatch.chdir(tmp_path)
    assert main(["report", str(copy.relative_to(tmp_path))]) == 0
    for produced in (SUMMARY, REPORT):
        assert (copy / produced).read_text() == (REFERENCE / name / produced).read_text()
    assert sorted(p.name for p in (copy / "plots").iterdir()) == sorted(
        p.name for p in (REFERENCE / name / "plots").iterdir()
    )


def _records() -> list[tuple[str, dict]]:
    out = []
    for name in RUNS:
        for line in (REFERENCE / name / RESULTS).read_text().splitlines():
            record = json.loads(line)
            if record["status"] == "ok":
                out.append((f"{name}/{record['cell']}", record))
    return out


def _lines(fig) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every labelled line of every axes: label -> (x, y)."""
    return {
        line.get_label(): (np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float))
        for ax in fig.axes
        for line in ax.get_lines()
    }


@pytest.mark.parametrize(("label", "record"), _records(), ids=[n for n, _ in _records()])
def test_each_reference_figure_plots_its_record_s_numbers(label: str, record: dict) -> None:
    """The data drawn, not the pixels: each kind's figure holds the record's own numbers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    result = record["result"]
    fig = KINDS[record["kind"]].figure(plt, record)
    try:
        if record["kind"] == "bench":
            x, y = fig.axes[0].get_lines()[0].get_data()
            assert list(x) == [m["batch_size"] for m in result["results"]]
            assert list(y) == [m["sps"] for m in result["results"]]
        elif record["kind"] == "train":
            lines = _lines(fig)
            curve = result["curve"]
            for tag, drawn in (
                ("train/return", "return, training episodes"),
                ("eval/return", "return, eval on fresh envs"),
                ("eval/success", "success, eval"),
            ):
                points = [(p["step"], p[tag]) for p in curve if tag in p]
                if points:
                    x, y = lines[drawn]
                    np.testing.assert_allclose(np.c_[x, y], np.asarray(points, float))
        elif record["kind"] == "scaling":
            from scalegym.suites.cells.scaling_report import refitted

            result = refitted(result)  # the figure shows the fit by the current rules
            lines = _lines(fig)
            for bound in result["censored_bounds"]:
                (x, y) = lines[f"censored {bound['to']:g}: local b > {bound['exponent_above']:.2f}"]
                slope = np.log(y[1] / y[0]) / np.log(x[1] / x[0])
                assert slope == pytest.approx(bound["exponent_above"], rel=1e-9)
            finite = [(r["value"], r["n_hat"]) for r in result["values"] if r["n_hat"] is not None]
            if finite:
                np.testing.assert_allclose(np.asarray(lines["N̂"]), np.asarray(finite, float).T)
            if result.get("fit"):
                ((x, y),) = [xy for name, xy in lines.items() if name.startswith("fit: b = ")]
                slope = np.polyfit(np.log(x), np.log(y), 1)[0]
                assert slope == pytest.approx(result["fit"]["exponent"], rel=1e-9)
        elif record["kind"] == "search":
            x, y = fig.axes[0].get_lines()[0].get_data()  # the errorbar's own line
            assert list(x) == [r["budget"] for r in result["rows"]]
            assert list(y) == [r["return"] for r in result["rows"]]
        elif record["kind"] == "timestep":
            drawn = {
                c.get_label(): c.get_offsets() for c in fig.axes[0].collections if c.get_label()
            }
            for policy, episodes in result["episodes"].items():
                expected = np.c_[np.maximum(episodes["substeps"], 1), episodes["final_log10_error"]]
                np.testing.assert_allclose(np.asarray(drawn[policy]), expected)
        else:
            pytest.fail(f"{label}: a kind this test does not know: {record['kind']}")
    finally:
        plt.close(fig)
