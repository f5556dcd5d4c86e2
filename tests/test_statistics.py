"""The IQM and its stratified-bootstrap interval (scalegym.suites.statistics)."""

import numpy as np
import pytest
from scipy import stats

from scalegym.suites.statistics import iqm, iqm_with_ci, stratified_bootstrap_ci


def test_iqm_is_scipys_25_percent_trimmed_mean_and_ignores_an_outlier():
    rng = np.random.default_rng(0)
    for shape in [(4,), (10,), (7, 3), (33, 5)]:
        scores = rng.normal(size=shape)
        assert iqm(scores) == pytest.approx(stats.trim_mean(scores, 0.25, axis=None), abs=1e-12)
    assert iqm([1.0, 2.0, 3.0, 4.0]) == 2.5  # the middle two
    # One seed far off moves the mean, not the IQM.
    runs = np.array([1.0, 1.1, 0.9, 1.0, 1.05, 0.95, 1.0, 1000.0])
    assert iqm(runs) == pytest.approx(1.0125, abs=1e-12) and runs.mean() > 100


def test_the_bootstrap_resamples_runs_within_each_task():
    # Task 0 always scores 0 and task 1 always 1: stratified replicates keep R runs of each, so
    # the pooled IQM is 0.5 in every replicate (pooled resampling would vary it).
    scores = np.column_stack([np.zeros(6), np.ones(6)])
    assert stratified_bootstrap_ci(scores) == (0.5, 0.5)
    # One task with one run: nothing to resample.
    assert iqm_with_ci([3.0]) == {"iqm": 3.0, "low": 3.0, "high": 3.0}


def test_the_interval_covers_the_true_iqm_about_95_percent_of_the_time_and_narrows():
    # Scores ~ N(0, 1): the population IQM is 0. 200 experiments of 20 runs x 2 tasks each.
    rng = np.random.default_rng(1)
    covered = 0
    for trial in range(200):
        low, high = stratified_bootstrap_ci(rng.normal(size=(20, 2)), reps=500, seed=trial)
        covered += low <= 0.0 <= high
    assert 0.88 <= covered / 200 <= 0.99, covered
    widths = []
    for runs in (5, 20, 80):
        low, high = stratified_bootstrap_ci(rng.normal(size=(runs, 3)), seed=2)
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2]


def test_bad_scores_and_settings_are_named():
    with pytest.raises(ValueError, match="expected"):
        iqm_with_ci(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="finite"):
        iqm_with_ci([1.0, np.nan])
    with pytest.raises(ValueError, match="confidence"):
        stratified_bootstrap_ci([1.0, 2.0], confidence=1.5)
    with pytest.raises(ValueError, match="no scores"):
        iqm([])
