"""Counts and commit totals in, rates per million commits with exact Poisson confidence intervals out.

An occurrence count over a history is treated as a Poisson count; its exact (Garwood, 1936) interval is
``[G⁻¹(α/2; k), G⁻¹(1−α/2; k+1)]`` where ``G⁻¹(p; a)`` is the quantile of the unit-scale gamma distribution of
shape ``a`` (equivalently ``χ²(p; 2k)/2`` and ``χ²(1−α/2; 2k+2)/2``); the lower bound is 0 when ``k = 0``.
scipy is not a dependency, so the regularized incomplete gamma function and its inverse are computed here
(series and Lentz continued fraction, as in Numerical Recipes §6.2, then bisection) — tested against known values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

METHOD = ("exact Poisson interval (Garwood): [χ²(α/2; 2k)/2, χ²(1−α/2; 2k+2)/2] for a count k, "
          "divided by the commits scanned and multiplied by 10⁶; α = 0.05")
MILLION = 1e6
_EPS = 1e-15
_TINY = 1e-300


def _gamma_series(a: float, x: float) -> float:
    """P(a, x) by its power series; converges quickly for x < a + 1."""
    term = total = 1.0 / a
    n = a
    for _ in range(100_000):
        n += 1.0
        term *= x / n
        total += term
        if abs(term) < abs(total) * _EPS:
            break
    return total * math.exp(-x + a * math.log(x) - math.lgamma(a))


def _gamma_fraction(a: float, x: float) -> float:
    """Q(a, x) = 1 − P(a, x) by its continued fraction (modified Lentz); converges quickly for x ≥ a + 1."""
    b = x + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    h = d
    for i in range(1, 100_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = _TINY if abs(d) < _TINY else d
        c = b + an / c
        c = _TINY if abs(c) < _TINY else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return math.exp(-x + a * math.log(x) - math.lgamma(a)) * h


def gamma_cdf(a: float, x: float) -> float:
    """The regularized lower incomplete gamma function P(a, x): the CDF at x of Gamma(shape=a, scale=1)."""
    if a <= 0:
        raise ValueError("the shape a must be positive")
    if x <= 0:
        return 0.0
    if x < a + 1.0:
        return _gamma_series(a, x)
    return 1.0 - _gamma_fraction(a, x)


def gamma_quantile(p: float, a: float) -> float:
    """x such that P(a, x) = p, by bisection (P is increasing in x); 1e-12 relative precision."""
    if not 0.0 <= p < 1.0:
        raise ValueError("p must be in [0, 1)")
    if p == 0.0:
        return 0.0
    lo, hi = 0.0, max(1.0, a)
    while gamma_cdf(a, hi) < p:
        lo, hi = hi, hi * 2.0
    for _ in range(400):
        mid = (lo + hi) / 2.0
        if gamma_cdf(a, mid) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break
    return (lo + hi) / 2.0


def poisson_interval(k: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Garwood) two-sided interval for the mean of a Poisson variable observed as ``k``."""
    if k < 0:
        raise ValueError("a count cannot be negative")
    alpha = 1.0 - confidence
    low = 0.0 if k == 0 else gamma_quantile(alpha / 2.0, k)
    return low, gamma_quantile(1.0 - alpha / 2.0, k + 1)


def per_million(count: float, commits: int) -> float | None:
    """count / commits × 10⁶, rounded to 4 decimals; None (JSON null) when no commit was scanned, never inf."""
    return round(count / commits * MILLION, 4) if commits else None


def rate_interval(count: int, commits: int) -> tuple[float | None, float | None]:
    """The 95% interval of count / commits × 10⁶ (4 decimals); (None, None) when no commit was scanned."""
    if not commits:
        return None, None
    low, high = poisson_interval(int(count))
    return round(low / commits * MILLION, 4), round(high / commits * MILLION, 4)


def poisson_limits(expected: float, confidence: float = 0.95) -> tuple[int, int]:
    """The central range of a Poisson count of mean ``expected``: the smallest k with P(X ≤ k) ≥ α/2 and the
    smallest with P(X ≤ k) ≥ 1 − α/2 (a funnel plot's limits). Summed term by term; a normal approximation above a
    mean of 500, where e^−λ underflows and the two agree to within a count."""
    alpha = 1.0 - confidence
    if expected <= 0:
        return 0, 0
    if expected > 500:
        z = 1.959963984540054 if confidence == 0.95 else math.sqrt(2) * _erfinv(confidence)
        half = z * math.sqrt(expected)
        return max(0, math.floor(expected - half)), math.ceil(expected + half)
    term = math.exp(-expected)
    total, k, low = term, 0, None
    while True:
        if low is None and total >= alpha / 2:
            low = k
        if total >= 1 - alpha / 2:
            return low if low is not None else k, k
        k += 1
        term *= expected / k
        total += term


def _erfinv(y: float) -> float:
    """erf⁻¹ by bisection (only for confidences other than 95%)."""
    lo, hi = 0.0, 6.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if math.erf(mid) < y else (lo, mid)
    return (lo + hi) / 2


CLUSTER_METHOD = ("percentile bootstrap over repositories (2,000 resamples of the repositories with replacement, "
                  "seed 0; the ratio Σ count / Σ commits × 10⁶ of each): allows for occurrences clustering in a few "
                  "repositories, which the Poisson interval assumes away; when no repository has any, the exact "
                  "Poisson interval")


def cluster_interval(counts: Sequence[int], commits: Sequence[int], *, resamples: int = 2000, seed: int = 0
                     ) -> tuple[float | None, float | None]:
    """The 95% interval of Σ counts / Σ commits × 10⁶ over repositories, resampled as CLUSTER_METHOD says;
    (None, None) with fewer than two repositories that have commits."""
    import numpy as np  # here: a scan's summary.json needs it only for a corpus

    pairs = sorted((c, n) for c, n in zip(counts, commits, strict=True) if n)  # the same set, the same interval
    if len(pairs) < 2:
        return None, None
    k = np.array([c for c, _ in pairs], dtype=float)
    n = np.array([n for _, n in pairs], dtype=float)
    if not k.any():
        return rate_interval(0, int(n.sum()))
    picks = np.random.default_rng(seed).integers(0, len(pairs), size=(resamples, len(pairs)))
    ratios = k[picks].sum(axis=1) / n[picks].sum(axis=1) * MILLION
    low, high = np.percentile(ratios, [2.5, 97.5])
    return round(float(low), 4), round(float(high), 4)


def with_rates(frame: pd.DataFrame, count: str = "count", commits: str = "commits", prefix: str = "") -> pd.DataFrame:
    """Add ``rate``, ``rate_low``, ``rate_high`` (per million commits, Float64, NA without commits or count).

    ``frame[count]`` and ``frame[commits]`` are integer columns (nullable: NA counts give NA rates).
    """
    import numpy as np  # here: summary.json's rates (above) need neither numpy nor pandas
    import pandas as pd

    counts = frame[count].astype("Int64")
    totals = frame[commits].astype("Int64")
    usable = counts.notna() & totals.notna() & (totals > 0)
    bounds = [poisson_interval(int(k)) if ok else (np.nan, np.nan)
              for k, ok in zip(counts.fillna(0).tolist(), usable.tolist(), strict=True)]
    scale = (MILLION / totals.where(usable)).astype("Float64")
    low = pd.Series([b[0] for b in bounds], index=frame.index, dtype="Float64")
    high = pd.Series([b[1] for b in bounds], index=frame.index, dtype="Float64")
    return frame.assign(**{
        f"{prefix}rate": (counts.astype("Float64") * scale).where(usable),
        f"{prefix}rate_low": (low * scale).where(usable),
        f"{prefix}rate_high": (high * scale).where(usable),
    })
