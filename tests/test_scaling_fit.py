"""The scaling cell's statistics: first passing budgets, N̂, and the power-law fit with its CI."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scalegym.suites.scaling import first_passing_budgets, fit_power_law, sample_complexity


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
    with pytest.raises(ValueError, match="two sizes or more"):
        fit_power_law(sizes, first)
