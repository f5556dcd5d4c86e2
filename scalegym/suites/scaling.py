"""Sample-complexity scaling laws: first passing budgets, N̂ per problem size, power-law fits.

A `scaling` run trains each (size, run) with evaluations at geometric budgets; a run is one
(instance, seed) pair. Per run, the *first passing budget* is the first budget after which every
later evaluation passes (infinite when the run never settles: censored). Per size, N̂ is the
budget by which at least 1 − δ of the runs pass. The law log N̂ = a + b·log S is fitted by least
squares over the sizes whose N̂ is finite, only when at least `MIN_SETTLED` are (fewer: "too few
settled sizes", no exponent), with a bootstrap interval that resamples runs within each size. A
censored size is never dropped silently: beside the fit it gives a lower bound on the local
exponent from the last settled size below it (`censored_bounds`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MIN_SETTLED = 4  # sizes with a finite N̂ that a fit needs


class TooFewSettled(ValueError):
    """Fewer sizes with a finite N̂ than a fit needs."""


def first_passing_budgets(budgets: np.ndarray, passes: np.ndarray) -> np.ndarray:
    """Per seed, the first budget after which every later evaluation passes; inf if none.

    budgets: [E] increasing evaluation budgets; passes: [seeds, E] bool. Returns float [seeds].
    """
    budgets = np.asarray(budgets, dtype=np.float64)
    passes = np.asarray(passes, dtype=bool)
    if passes.ndim != 2 or passes.shape[1] != budgets.shape[0]:
        raise ValueError(f"passes must be [seeds, {budgets.shape[0]}], got {passes.shape}")
    if np.any(np.diff(budgets) <= 0):
        raise ValueError("budgets must be strictly increasing")
    # passing from evaluation e on: every later one passes too (a suffix of True).
    suffix_all = np.flip(np.logical_and.accumulate(np.flip(passes, axis=1), axis=1), axis=1)
    settled = suffix_all.any(axis=1)
    first = np.argmax(suffix_all, axis=1)
    return np.where(settled, budgets[first], np.inf)


def sample_complexity(first: np.ndarray, delta: float) -> float:
    """N̂: the smallest budget by which at least 1 − δ of the seeds pass (inf if none does)."""
    if not 0.0 <= delta < 1.0:
        raise ValueError(f"delta must be in [0, 1), got {delta}")
    first = np.sort(np.asarray(first, dtype=np.float64))
    need = math.ceil((1.0 - delta) * first.size - 1e-9)  # seeds that must have passed
    return float(first[max(need, 1) - 1]) if first.size else math.inf


@dataclass(frozen=True)
class PowerLawFit:
    """log N̂ = intercept + exponent · log size, with a bootstrap CI of the exponent."""

    exponent: float
    intercept: float
    ci_low: float
    ci_high: float
    level: float
    sizes: tuple[float, ...]  # sizes in the fit (N̂ finite)
    n_hat: tuple[float, ...]  # N̂ per size in the fit
    censored: tuple[float, ...]  # per size given, the fraction of runs that never settled
    excluded: tuple[float, ...]  # sizes left out because N̂ is infinite
    boot_used: float = 1.0  # the fraction of bootstrap draws with MIN_SETTLED settled sizes
    boot: tuple[tuple[float, float], ...] = field(default=(), repr=False, compare=False)
    # (intercept, exponent) of each bootstrap refit: the band of `prediction_band`


def fit_power_law(
    sizes: np.ndarray,
    first: np.ndarray,
    *,
    delta: float = 0.1,
    level: float = 0.95,
    num_boot: int = 1000,
    seed: int = 0,
    min_settled: int = MIN_SETTLED,
) -> PowerLawFit:
    """Fit N̂(size) ∝ size^b from first passing budgets [sizes, runs] (inf = censored).

    Raises `TooFewSettled` when fewer than `min_settled` sizes have a finite N̂. The CI resamples
    runs with replacement within each size and refits (percentile interval); a draw with fewer
    than `min_settled` finite N̂ is skipped, and the fraction used is recorded.
    """
    sizes = np.asarray(sizes, dtype=np.float64)
    first = np.asarray(first, dtype=np.float64)
    if first.ndim != 2 or first.shape[0] != sizes.shape[0]:
        raise ValueError(f"first must be [{sizes.shape[0]} sizes, seeds], got {first.shape}")
    if np.any(sizes <= 0):
        raise ValueError("sizes must be positive")
    n_hat = np.array([sample_complexity(row, delta) for row in first])
    keep = np.isfinite(n_hat)
    if keep.sum() < min_settled:
        raise TooFewSettled(
            f"too few settled sizes: N̂ finite at {int(keep.sum())} of {sizes.size}, a fit needs "
            f"{min_settled}"
        )
    intercept, exponent = _least_squares(np.log(sizes[keep]), np.log(n_hat[keep]))
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(num_boot):
        picks = rng.integers(0, first.shape[1], size=first.shape)
        resampled = np.take_along_axis(first, picks, axis=1)
        n_b = np.array([sample_complexity(row, delta) for row in resampled])
        ok = np.isfinite(n_b)
        if ok.sum() >= min_settled:
            boot.append(_least_squares(np.log(sizes[ok]), np.log(n_b[ok])))
    tail = (1.0 - level) / 2.0
    slopes = [b for _, b in boot]
    low, high = np.quantile(slopes, [tail, 1.0 - tail]) if boot else (math.nan, math.nan)
    return PowerLawFit(
        exponent=float(exponent),
        intercept=float(intercept),
        ci_low=float(low),
        ci_high=float(high),
        level=level,
        sizes=tuple(sizes[keep].tolist()),
        n_hat=tuple(n_hat[keep].tolist()),
        censored=tuple(np.mean(~np.isfinite(first), axis=1).tolist()),
        excluded=tuple(sizes[~keep].tolist()),
        boot_used=len(boot) / num_boot,
        boot=tuple(boot),
    )


def censored_bounds(sizes: Any, n_hat: Any, largest_budget: float | Any) -> list[dict[str, float]]:
    """Per censored size after a settled one: a lower bound on the local exponent.

    A size whose N̂ is censored needs more than its largest budget B_c; from the last settled
    size below it (N̂_s at S_s) the local exponent log(N̂_c/N̂_s)/log(S_c/S_s) is then above
    log(B_c/N̂_s)/log(S_c/S_s). sizes [G] increasing, n_hat [G] (inf: censored), largest_budget
    one number or [G] (each size's own grid).
    """
    sizes, n_hat = np.asarray(sizes, float), np.asarray(n_hat, float)
    largest = np.broadcast_to(np.asarray(largest_budget, float), sizes.shape)
    bounds = []
    last: tuple[float, float] | None = None
    for size, n, cap in zip(sizes, n_hat, largest, strict=True):
        if math.isfinite(n):
            last = (size, n)
        elif last is not None:
            exponent = math.log(cap / last[1]) / math.log(size / last[0])
            bounds.append(
                {"from": float(last[0]), "to": float(size), "exponent_above": float(exponent)}
            )
    return bounds


def prediction_band(fit: PowerLawFit, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise `fit.level` band of the bootstrap lines' N̂ at `sizes` [G]: (low [G], high [G])."""
    log_sizes = np.log(np.asarray(sizes, np.float64))
    if not fit.boot:
        nan = np.full(log_sizes.shape, math.nan)
        return nan, nan
    lines = np.array(fit.boot)  # [num_boot, 2]
    log_n = lines[:, :1] + lines[:, 1:] * log_sizes[None, :]  # [num_boot, G]
    tail = (1.0 - fit.level) / 2.0
    low, high = np.quantile(log_n, [tail, 1.0 - tail], axis=0)
    return np.exp(low), np.exp(high)


def value_record(
    budgets: np.ndarray, passes: np.ndarray, metric: np.ndarray, delta: float
) -> dict[str, Any]:
    """One size's numbers as JSON: N̂, censored seeds, first passing budgets (null: censored),
    and per budget the pass fraction and mean metric; budgets [E], passes and metric [seeds, E]."""
    first = first_passing_budgets(budgets, passes)  # [seeds]
    metric = np.asarray(metric, np.float64)
    return {
        "n_hat": _finite(sample_complexity(first, delta)),
        "censored": int(np.sum(~np.isfinite(first))),
        "first_budgets": [_finite(f) for f in first],
        "pass_fraction": np.mean(passes, axis=0).tolist(),  # [E]
        "metric_mean": [_finite(m) for m in np.mean(metric, axis=0)],  # [E]
        "metric": [[_finite(m) for m in seed] for seed in metric],  # [seeds, E]
        "passes": np.asarray(passes, int).tolist(),  # [seeds, E]
    }


def fit_values(
    sizes: list[float],
    first: list[list[float | None]],
    delta: float,
    seed: int,
    largest_budget: float | list[float],
) -> dict[str, Any]:
    """`{"fit": fit_record, "censored_bounds": [...]}` from first passing budgets [sizes][runs]
    (null: censored); `"fit": None` with `"fit_error"` when too few sizes settled."""
    budgets = np.array([[math.inf if f is None else f for f in row] for row in first])
    n_hat = np.array([sample_complexity(row, delta) for row in budgets])
    out: dict[str, Any] = {"censored_bounds": censored_bounds(sizes, n_hat, largest_budget)}
    try:
        fit = fit_power_law(np.asarray(sizes), budgets, delta=delta, seed=seed)
    except ValueError as err:
        return {**out, "fit": None, "fit_error": str(err)}
    return {**out, "fit": fit_record(fit)}


def fit_record(fit: PowerLawFit, band_points: int = 25) -> dict[str, Any]:
    """The fit as JSON-ready numbers, with its band on `band_points` sizes across the range."""
    low_size, high_size = min(fit.sizes), max(fit.sizes)
    grid = np.geomspace(low_size, high_size, band_points)
    band_low, band_high = prediction_band(fit, grid)
    return {
        "exponent": fit.exponent,
        "intercept": fit.intercept,
        "ci_low": _finite(fit.ci_low),
        "ci_high": _finite(fit.ci_high),
        "level": fit.level,
        "sizes": list(fit.sizes),
        "n_hat": list(fit.n_hat),
        "excluded": list(fit.excluded),
        "boot_used": fit.boot_used,
        "band": {
            "sizes": grid.tolist(),
            "low": [_finite(v) for v in band_low],
            "high": [_finite(v) for v in band_high],
        },
    }


def _finite(value: float) -> float | None:
    """JSON has no inf or NaN: those become null."""
    return float(value) if math.isfinite(value) else None


def _least_squares(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(intercept, slope) of y ≈ intercept + slope · x."""
    slope, intercept = np.polyfit(x, y, 1)
    return float(intercept), float(slope)
