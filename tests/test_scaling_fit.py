"""The scaling cell's statistics: first passing budgets, N̂, and the power-law fit with its CI."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scalegym.suites.scaling import (
    TooFewSettled,
    censored_bounds,
    first_passing_budgets,
    fit_power_law,
    fit_values,
    sample_complexity,
)


def test_first_passing_budget_is_the_start_of_the_final_passing_run() -> None:
    budgets = np.array([1, 2, 4, 8, 16])
    passes = np.array(
        [
            [False, True, False, True, True],  # passes at 2, fails again: settles at 8
            [True, True, True, True, True],
            [False, False, False, False, False],  # never: censored
            [True, True, True, True, False],  # fails at the end: censored
        ]
    )
    assert first_passing_budgets(budgets, passes).tolist() == [8.0, 1.0, math.inf, math.inf]
    with pytest.raises(ValueError, match="strictly increasing"):
        first_passing_budgets(np.array([1, 1, 2, 3, 4]), passes)


def test_sample_complexity_is_the_budget_by_which_1_minus_delta_of_seeds_pass() -> None:
    first = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, math.inf])
    assert sample_complexity(first, 0.1) == 256.0  # 9 of 10 seeds
    assert sample_complexity(first, 0.5) == 16.0  # 5 of 10
    assert sample_complexity(first, 0.0) == math.inf  # all 10: one never passes
    with pytest.raises(ValueError, match="delta"):
        sample_complexity(first, 1.0)


def synthetic(exponent: float, seeds: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    sizes = np.array([8.0, 16.0, 32.0, 64.0, 128.0, 256.0])
    noise = np.exp(rng.normal(0.0, 0.3, size=(sizes.size, seeds)))
    return sizes, 50.0 * sizes[:, None] ** exponent * noise


@pytest.mark.parametrize("exponent", [1.0, 1.5, 2.0])
def test_fit_recovers_a_known_exponent_and_its_ci_narrows_with_seeds(exponent: float) -> None:
    rng = np.random.default_rng(int(exponent * 10))
    widths = []
    for seeds in (10, 100):
        sizes, first = synthetic(exponent, seeds, rng)
        fit = fit_power_law(sizes, first, delta=0.1, num_boot=400, seed=1)
        assert fit.ci_low <= exponent <= fit.ci_high, fit
        assert abs(fit.exponent - exponent) < 0.15
        widths.append(fit.ci_high - fit.ci_low)
    assert widths[1] < 0.7 * widths[0]  # ten times the seeds: a clearly narrower interval


def test_censored_sizes_are_reported_not_dropped_silently() -> None:
    sizes, first = synthetic(1.0, 20, np.random.default_rng(0))
    first[-1, :5] = np.inf  # a quarter of the largest size's seeds never settle
    fit = fit_power_law(sizes, first, delta=0.1, num_boot=100)
    assert fit.censored[-1] == 0.25 and fit.excluded == (256.0,)  # N̂ there is infinite
    assert len(fit.sizes) == 5
    first[:-1, :] = np.inf
    with pytest.raises(TooFewSettled, match="too few settled sizes"):
        fit_power_law(sizes, first)


def test_fewer_than_four_settled_sizes_give_no_exponent_but_local_bounds() -> None:
    """Six sizes, the last three censored: no fit, and each censored size's local exponent is
    bounded below from the last settled size (hand-computed)."""
    sizes = [8.0, 16.0, 32.0, 64.0, 128.0, 256.0]
    first = [[100.0] * 10, [200.0] * 10, [400.0] * 10, [None] * 10, [None] * 10, [None] * 10]
    result = fit_values(sizes, first, delta=0.1, seed=0, largest_budget=6400.0)
    assert result["fit"] is None and result["fit_error"].startswith("too few settled sizes")
    # From S = 32 (N̂ = 400): N̂ > 6400 at 64 means a local exponent above log2(16) / 1 = 4;
    # at 128 above log(16) / log(4) = 2; at 256 above log(16) / log(8) = 4/3.
    bounds = [(b["from"], b["to"], b["exponent_above"]) for b in result["censored_bounds"]]
    assert bounds == [
        (32.0, 64.0, pytest.approx(4.0)),
        (32.0, 128.0, pytest.approx(2.0)),
        (32.0, 256.0, pytest.approx(4.0 / 3.0)),
    ]
    first[3] = [800.0] * 10  # a fourth settled size: the fit is back, the bounds start at 64
    result = fit_values(sizes, first, delta=0.1, seed=0, largest_budget=6400.0)
    assert result["fit"]["exponent"] == pytest.approx(1.0)
    assert [b["from"] for b in result["censored_bounds"]] == [64.0, 64.0]
    assert result["censored_bounds"][0]["exponent_above"] == pytest.approx(math.log2(6400 / 800))


def test_censored_bounds_need_a_settled_size_below() -> None:
    assert censored_bounds([4.0, 8.0], [math.inf, 10.0], 100.0) == []
