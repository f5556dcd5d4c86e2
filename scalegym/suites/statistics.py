"""Across-seed statistics for reports: the interquartile mean with a stratified-bootstrap interval.

After Agarwal et al., "Deep Reinforcement Learning at the Edge of the Statistical Precipice"
(NeurIPS 2021): with few runs, the mean is swayed by one outlying seed and the median throws most
runs away; the interquartile mean (IQM: the mean of the middle 50% of all scores pooled over runs
and tasks, 25% trimmed from each end) is robust and still efficient. Its uncertainty is a
percentile interval over a stratified bootstrap: each replicate resamples the runs of every task
with replacement, within that task, so each task keeps its number of runs.

Shapes: scores [R, T] (R runs/seeds, T tasks); a 1-d array is one task's runs, [R].
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

TRIM = 0.25  # cut from each end for the IQM
BOOTSTRAP_REPS = 2000


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean of all scores pooled: int(0.25·n) cut from each end, then the mean
    (the convention of `scipy.stats.trim_mean(scores, 0.25, axis=None)`)."""
    values = np.sort(np.asarray(scores, np.float64).ravel())
    n = values.size
    if n == 0:
        raise ValueError("iqm of no scores")
    cut = int(TRIM * n)
    return float(values[cut : n - cut].mean())


def _iqm_rows(samples: np.ndarray) -> np.ndarray:
    """IQM of each row of `samples` [B, n], all rows at once; [B]."""
    values = np.sort(samples, axis=1)
    n = values.shape[1]
    cut = int(TRIM * n)
    return values[:, cut : n - cut].mean(axis=1)


def stratified_bootstrap_ci(
    scores: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray] = _iqm_rows,
    *,
    reps: int = BOOTSTRAP_REPS,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of `statistic` over `reps` stratified bootstrap replicates.

    `statistic(samples [B, R·T]) → [B]` computes the statistic of each replicate (default: the
    IQM). Each replicate draws R run indices with replacement separately for every task.
    """
    matrix = _as_matrix(scores)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence}; allowed: 0 < confidence < 1")
    if reps < 1:
        raise ValueError(f"reps={reps}; allowed: integers >= 1")
    runs, tasks = matrix.shape
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, runs, size=(reps, runs, tasks))  # [B, R, T] run index per task
    samples = matrix[picks, np.arange(tasks)]  # [B, R, T]
    values = statistic(samples.reshape(reps, runs * tasks))  # [B]
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


def iqm_with_ci(scores: np.ndarray, **bootstrap: float | int) -> dict[str, float]:
    """{"iqm", "low", "high"}: the IQM of `scores` [R, T] or [R] and its 95% stratified-bootstrap
    interval (keyword arguments go to `stratified_bootstrap_ci`)."""
    matrix = _as_matrix(scores)
    low, high = stratified_bootstrap_ci(matrix, **bootstrap)  # type: ignore[arg-type]
    return {"iqm": iqm(matrix), "low": low, "high": high}


def _as_matrix(scores: np.ndarray) -> np.ndarray:
    matrix = np.asarray(scores, np.float64)
    if matrix.ndim == 1:
        matrix = matrix[:, None]
    if matrix.ndim != 2 or matrix.shape[0] < 1 or matrix.shape[1] < 1:
        raise ValueError(f"scores of shape {np.shape(scores)}; expected [runs, tasks] or [runs]")
    if not np.all(np.isfinite(matrix)):
        raise ValueError("scores must be finite")
    return matrix


def iqm_cell(per_seed: list[float] | None, decimals: int = 3) -> str:
    """A report cell: "IQM [low, high]" over seeds (`iqm_with_ci`); "–" below two seeds."""
    if not per_seed or len(per_seed) < 2:
        return "–"
    s = iqm_with_ci(np.asarray(per_seed, np.float64))
    return f"{s['iqm']:.{decimals}f} [{s['low']:.{decimals}f}, {s['high']:.{decimals}f}]"
