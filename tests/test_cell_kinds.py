"""A cell kind added through the registry alone: one `Cell` subclass and one `KINDS` entry.

`RewardSumCell` lives only in this test module. Registered with one line, it is validated with
the suite (its own rules and checks, its env built), run by the runner, and shown by summary.csv,
report.md, the progress line and plots/ — none of which is edited for it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import jax
import pytest

from scalegym.suites import cells
from scalegym.suites.report import cell_summary
from scalegym.suites.runner import run_suite
from scalegym.suites.schema import Cell, CellContext, Record, Rule
from scalegym.suites.spec import SuiteError, parse_suite


@dataclass(frozen=True)
class RewardSumCell(Cell):
    """The summed reward of `steps` steps of one env under the always-right action."""

    steps: int

    kind: ClassVar[str] = "reward-sum"
    title: ClassVar[str] = "Summed rewards"
    rules: ClassVar[dict[str, Rule]] = {"steps": Rule("int", required=True, minimum=1)}

    @classmethod
    def problems(cls, values: dict[str, Any], where: str) -> list[str]:
        if values["steps"] > 1000:
            return [f'{where}: field "steps": {values["steps"]}; allowed: at most 1000']
        return []

    def run(self, context: CellContext) -> dict[str, Any]:
        resolved = context.resolved(self.env, self.env_params)
        env, params = resolved.env, resolved.params
        key = jax.random.key(0)
        _, state = env.reset(key, params)
        total = 0.0
        for _ in range(self.steps):
            _, state, reward, *_ = env.step(key, state, 1, params)
            total += float(reward)
        context.advance(1.0)
        return {"reward_sum": total, "steps": self.steps}

    @staticmethod
    def summary_row(result: dict[str, Any]) -> dict[str, Any]:
        return {"steps": result["steps"], "final_return": result["reward_sum"]}

    @staticmethod
    def line(result: dict[str, Any]) -> str:
        return f"reward sum {result['reward_sum']:.2f}"

    @staticmethod
    def report_section(records: list[Record], manifest: dict[str, Any]) -> list[str]:
        return ["", *(f"- {r['cell']}: {r['result']['reward_sum']:.2f}" for r in records)]

    @staticmethod
    def figure(plt: Any, record: Record) -> Any:
        fig, ax = plt.subplots()
        ax.bar([record["cell"]], [record["result"]["reward_sum"]])
        return fig


SUITE = b"""
[suite]
name = "toy-kind"

[[cell]]
name = "sum"
kind = "reward-sum"
env = "ToyChain-v0"
env_params = { slip_prob = 0.0, start_max = 0 }
steps = 6
"""


@pytest.fixture
def reward_sum_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(cells.KINDS, RewardSumCell.kind, RewardSumCell)  # the one registry line


@pytest.mark.usefixtures("reward_sum_kind")
def test_a_kind_added_through_the_registry_runs_in_a_suite(tmp_path: Path) -> None:
    spec = parse_suite(SUITE, "toy.toml")
    assert [type(c) for c in spec.cells] == [RewardSumCell]
    run_dir = run_suite(spec, out_dir=tmp_path / "run", progress=False)

    (record,) = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert record["status"] == "ok", record.get("error")
    # ToyChain of length 5 from cell 0 without slips: the end after 4 moves right, -0.1 a step and
    # +1 at the goal; then auto-reset to cell 0 and two more steps.
    assert record["result"]["reward_sum"] == pytest.approx(4 * -0.1 + 1.0 + 2 * -0.1)
    report = (run_dir / "report.md").read_text()
    assert "## Summed rewards\n\n- sum: 0.40" in report
    summary = (run_dir / "summary.csv").read_text().splitlines()
    columns = dict(zip(summary[0].split(","), summary[1].split(","), strict=True))
    assert columns["kind"] == "reward-sum" and columns["steps"] == "6"
    assert float(columns["final_return"]) == pytest.approx(0.4)
    assert (run_dir / "plots" / "sum.png").is_file()
    assert cell_summary(record).endswith(": reward sum 0.40")


@pytest.mark.usefixtures("reward_sum_kind")
def test_a_registered_kind_s_own_rules_and_checks_refuse_bad_fields() -> None:
    bad = SUITE.replace(b"steps = 6", b"steps = 0").replace(b"slip_prob = 0.0", b"slip = 0.0")
    with pytest.raises(SuiteError) as err:
        parse_suite(bad, "toy.toml")
    assert 'cell[0] "sum": field "steps": expected an integer >= 1' in str(err.value)
    with pytest.raises(SuiteError, match='field "steps": 5000; allowed: at most 1000'):
        parse_suite(SUITE.replace(b"steps = 6", b"steps = 5000"), "toy.toml")
    with pytest.raises(SuiteError, match='field "env_params"'):
        parse_suite(SUITE.replace(b"slip_prob = 0.0", b"slip_probability = 0.0"), "toy.toml")


def test_an_unregistered_kind_is_refused_naming_the_registered_ones() -> None:
    with pytest.raises(SuiteError) as err:
        parse_suite(SUITE, "toy.toml")
    assert 'field "kind": unknown kind "reward-sum"; allowed: bench, train, scaling' in str(
        err.value
    )


def test_every_shipped_kind_declares_its_fields_title_and_run() -> None:
    for name, cls in cells.KINDS.items():
        assert cls.kind == name and cls.title and cls.rules
        assert cls.run is not Cell.run, name
