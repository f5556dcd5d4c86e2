"""What a scaling run shows beyond one cell: the family figure that sets two learners side by
side (N̂ and fit of each, and the family's lower bound)."""

from __future__ import annotations

import numpy as np

from scalegym.suites.cells import ScalingCell


def _record(cell: str, agent: str, scale: float) -> dict:
    sizes = [8.0, 16.0, 32.0, 64.0]
    rows = [
        {"value": s, "n_hat": scale * s, "first_budgets": [scale * s] * 10, "censored": 0}
        for s in sizes
    ]
    result = {
        "agent": agent,
        "vary": ["size"],
        "delta": 0.1,
        "seed": 0,
        "budgets": [1e6],
        "values": rows,
        "lower_bound": 1.0,
        "lower_bound_source": "test",
    }
    return {
        "cell": cell,
        "kind": "scaling",
        "env": "RevealingBandit-v0",
        "status": "ok",
        "result": result,
    }


def test_one_family_figure_sets_the_calibration_beside_ppo() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [_record("calibration", "calibration", 10.0), _record("ppo", "ppo", 100.0)]
    records.append({**_record("other", "ppo", 5.0), "env": "PaninskiLock-v0"})  # alone: none
    ((name, fig),) = ScalingCell.joint_figures(plt, records)
    assert name == "family-RevealingBandit-v0-size"
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    for cell, scale in (("calibration (calibration)", 10.0), ("ppo (ppo)", 100.0)):
        x, y = lines[f"N̂: {cell}"].get_data()
        assert list(y) == [scale * s for s in x]
    assert {"fit calibration (calibration): b = 1.00", "fit ppo (ppo): b = 1.00"} <= set(lines)
    x, y = lines["lower bound: b = 1"].get_data()
    assert np.allclose(np.diff(np.log(y)) / np.diff(np.log(x)), 1.0)
    plt.close(fig)


def test_the_docs_table_judges_each_cell_by_the_current_rules() -> None:
    # A cell whose stored fit used two sizes is re-judged: one censored size of four leaves
    # three settled, so no exponent, and the censored size's local bound is shown.
    settled = _record("calibration-bandit", "calibration", 100.0)
    censored = _record("ppo-gru-bandit", "ppo", 300.0)
    last = censored["result"]["values"][-1]
    last.update(n_hat=None, first_budgets=[None] * 10, censored=10)
    censored["result"]["fit"] = {"exponent": 1.0, "ci_low": 0.9, "ci_high": 1.1}  # stale
    header, rule, good, bad = ScalingCell.readme_table([settled, censored])
    assert header.startswith("| cell |") and rule.startswith("|---")
    assert "8: 800, 16: 1,600, 32: 3,200, 64: 6,400" in good
    assert "| 1.00 [1.00, 1.00] | 1 |" in good  # N̂ = 100·S exactly
    assert "none (too few settled sizes: N̂ finite at 3 of 4, a fit needs 4)" in bad
    # 32 settled at 9,600; 64 censored above the largest budget 1e6: b > log2(1e6/9600).
    assert f"32→64: b > {np.log2(1e6 / 9600):.2f}" in bad and "64: censored" in bad


def test_the_family_figure_draws_a_censored_size_s_local_bound() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ppo = _record("ppo", "ppo", 300.0)
    rows = ppo["result"]["values"]
    rows.append({"value": 128.0, "n_hat": None, "first_budgets": [None] * 10, "censored": 10})
    ((_, fig),) = ScalingCell.joint_figures(plt, [_record("calibration", "calibration", 10.0), ppo])
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    expected = np.log2(1e6 / (300.0 * 64))  # from the settled 64 to the largest budget at 128
    (label,) = [name for name in lines if name.startswith("ppo: censored 128")]
    assert label == f"ppo: censored 128: local b > {expected:.2f}"
    x, y = lines[label].get_data()
    assert list(x) == [64.0, 128.0] and np.isclose(y[1], 1e6)
    plt.close(fig)
