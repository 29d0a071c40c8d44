"""Two-proportion statistics, vectorised over numpy arrays (one element per journey or variant).

Intervals are score intervals: Wilson for one proportion, Newcombe's hybrid score interval (his
method 10, Statistics in Medicine 1998) for a difference. Both stay inside [0, 1] / [-1, 1] and keep
sensible coverage at small counts and rates near 0, where the plain Wald interval fails.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr, ndtri

ArrayLike = np.ndarray | list[float] | list[int] | float | int


def z_value(alpha: float) -> float:
    """The two-sided normal quantile: 1.959964 for alpha 0.05."""
    return float(ndtri(1 - alpha / 2))


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def proportion(successes: ArrayLike, trials: ArrayLike) -> np.ndarray:
    """successes / trials; NaN where trials is 0."""
    return _safe_div(np.asarray(successes, dtype=float), np.asarray(trials, dtype=float))


def wilson_interval(successes: ArrayLike, trials: ArrayLike, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for x/n; NaN where n is 0."""
    x = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    z = z_value(alpha)
    p = proportion(x, n)
    denom = n + z * z
    centre = _safe_div(x + z * z / 2, denom)
    with np.errstate(invalid="ignore", divide="ignore"):
        half = _safe_div(z * np.sqrt(n), denom) * np.sqrt(p * (1 - p) + _safe_div(z * z, 4 * n))
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


def newcombe_difference_interval(x1: ArrayLike, n1: ArrayLike, x2: ArrayLike, n2: ArrayLike,
                                 alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Interval for p1 - p2 from the two Wilson intervals (Newcombe's hybrid score method)."""
    p1, p2 = proportion(x1, n1), proportion(x2, n2)
    l1, u1 = wilson_interval(x1, n1, alpha)
    l2, u2 = wilson_interval(x2, n2, alpha)
    d = p1 - p2
    low = d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return low, high


def two_proportion_ztest(x1: ArrayLike, n1: ArrayLike, x2: ArrayLike, n2: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Pooled two-proportion z-test of p1 = p2: (z, two-sided p-value). NaN when undefined
    (an empty group, or both groups at 0 % or both at 100 %: there is nothing to compare)."""
    x1, n1, x2, n2 = (np.asarray(v, dtype=float) for v in (x1, n1, x2, n2))
    pooled = proportion(x1 + x2, n1 + n2)
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.sqrt(pooled * (1 - pooled) * (_safe_div(1.0, n1) + _safe_div(1.0, n2)))
    se = np.where((n1 > 0) & (n2 > 0), se, np.nan)
    z = _safe_div(proportion(x1, n1) - proportion(x2, n2), se)
    z = np.where(se > 0, z, np.nan)
    p_value = 2 * ndtr(-np.abs(z))
    return z, p_value
