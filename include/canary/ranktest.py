"""Wilcoxon rank-sum (Mann-Whitney) test with the Hodges-Lehmann shift and its confidence interval.

This reproduces R's ``wilcox.test(x, y, conf.int=TRUE)`` (R 4.x, ``stats/R/wilcox.test.R``):

- **exact** when both samples have fewer than 50 values and there are no ties: the p-value and the
  interval come from the exact null distribution of the Mann-Whitney statistic; the interval is
  ``[D(qu), D(N - qu + 1)]`` over the sorted pairwise differences ``D = x_i - y_j`` with ``qu =
  qwilcox(alpha / 2)`` (``alpha`` for one-sided intervals);
- otherwise the **normal approximation with tie and continuity correction**: the bounds are the shifts
  ``d`` where the standardised statistic of ``(x - d, y)`` crosses the normal quantile. That statistic
  is a step function of ``d`` that jumps at pairwise differences, so each bound is an order statistic of
  ``D`` (R finds the same point with ``uniroot`` to its ``tol.root``).

The estimate is the Hodges-Lehmann shift, the median of ``D`` (R's exact estimate; in the normal case R
reports the root of the uncorrected statistic, which lies within the same step). The pairwise
differences are never materialised beyond :data:`MAX_PAIRS`; larger samples select order statistics by
bisection on counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

Alternative = Literal["two-sided", "greater", "less"]

MAX_PAIRS = 4_000_000
"""Largest number of pairwise differences sorted in memory (32 MB); beyond, order statistics are selected."""

EXACT_BELOW = 50
"""R's rule: exact distribution when both samples are smaller than this and nothing is tied."""


@dataclass(frozen=True)
class RankSumResult:
    """Outcome of :func:`rank_sum_test` (``x`` against ``y``; a positive shift means ``x`` larger).

    Attributes:
        statistic: R's ``W``, the Mann-Whitney ``U`` of ``x`` (ties count one half).
        p_value: p-value for the alternative.
        estimate: Hodges-Lehmann shift (median of the pairwise differences ``x_i - y_j``).
        low: lower confidence bound (``-inf`` for ``less``).
        high: upper confidence bound (``inf`` for ``greater``).
        cles: probability of superiority ``P(X > Y) + P(X = Y) / 2`` (``W / (n_x n_y)``).
        method: ``exact`` or ``normal``.
    """

    statistic: float
    p_value: float
    estimate: float
    low: float
    high: float
    cles: float
    method: str


def _wilcox_counts(m: int, n: int) -> list[int]:
    """Counts of each value 0..m*n of the Mann-Whitney U under the null (Gaussian binomial coefficients)."""
    size = m * n + 1
    poly = [0] * size
    poly[0] = 1
    for i in range(1, m + 1):
        a = n + i
        for k in range(size - 1, a - 1, -1):  # multiply by (1 - q^a)
            poly[k] -= poly[k - a]
        for k in range(i, size):  # divide by (1 - q^i)
            poly[k] += poly[k - i]
    return poly


def _pwilcox(q: int, counts: list[int]) -> float:
    return sum(counts[: q + 1]) / sum(counts) if q >= 0 else 0.0


def _qwilcox(p: float, counts: list[int]) -> int:
    """R's ``qwilcox`` (``nmath/wilcox.c``): smallest ``q`` with ``P(U <= q) >= p`` (lower tail p <= 0.5)."""
    total = sum(counts)
    eps = 10 * np.finfo(float).eps
    acc = 0
    if p <= 0.5:
        for q, c in enumerate(counts):
            acc += c
            if acc / total >= p - eps:
                return q
        return len(counts) - 1
    target = 1 - p + eps
    for q, c in enumerate(counts):
        acc += c
        if acc / total > target:
            return len(counts) - 1 - q
    return 0


def _count_le(x: np.ndarray, ys: np.ndarray, d: float) -> int:
    """Number of pairs with ``x_i - y_j <= d`` (``ys`` sorted)."""
    return int((ys.size - np.searchsorted(ys, x - d, side="left")).sum())


def kth_difference(x: np.ndarray, y: np.ndarray, k: int, max_pairs: int = MAX_PAIRS) -> float:
    """Return the ``k``-th smallest (1-based) pairwise difference ``x_i - y_j``.

    Args:
        x: first sample.
        y: second sample.
        k: rank, ``1 <= k <= len(x) * len(y)``.
        max_pairs: above this many pairs, select by bisection instead of sorting them all.

    Returns:
        The order statistic.
    """
    n_pairs = x.size * y.size
    k = min(max(k, 1), n_pairs)
    if n_pairs <= max_pairs:
        return float(np.partition((x[:, None] - y[None, :]).ravel(), k - 1)[k - 1])
    ys = np.sort(y)
    lo, hi = float(x.min() - ys[-1]), float(x.max() - ys[0])
    lo, hi = lo - 1e-9 * (1 + abs(lo)), hi + 1e-9 * (1 + abs(hi))  # strictly outside every difference
    for _ in range(200):  # invariant: count_le(lo) < k <= count_le(hi)
        between = _count_le(x, ys, hi) - _count_le(x, ys, lo)
        mid = lo + (hi - lo) / 2
        if between <= max_pairs // 4 or not lo < mid < hi:
            break
        if _count_le(x, ys, mid) >= k:
            hi = mid
        else:
            lo = mid
    start = np.searchsorted(ys, x - hi, side="left")
    stop = np.searchsorted(ys, x - lo, side="left")
    window = np.concatenate([x[i] - ys[start[i] : stop[i]] for i in range(x.size)])
    window = np.sort(window[(window > lo) & (window <= hi)])
    below = _count_le(x, ys, lo)
    return float(window[min(max(k - below - 1, 0), window.size - 1)]) if window.size else hi


def _hodges_lehmann(x: np.ndarray, y: np.ndarray) -> float:
    n = x.size * y.size
    if n % 2:
        return kth_difference(x, y, n // 2 + 1)
    return (kth_difference(x, y, n // 2) + kth_difference(x, y, n // 2 + 1)) / 2


def _normal_bound(
    x: np.ndarray, y: np.ndarray, zq: float, correction: Alternative | None, sigma: float
) -> float:
    """Bound where R's ``wdiff(d, zq)`` changes sign: an order statistic of the pairwise differences.

    On each open interval between pairwise differences, ``U(d) = #{x_i - y_j > d}`` is constant and only
    within-sample ties remain, so ``sigma`` is constant; ``g(U) = (U - N/2 - c(U)) / sigma - zq`` is
    non-decreasing in ``U`` and the root is the smallest ``d`` with ``U(d) <= U*``, ``U* = max{U : g(U) <= 0}``.
    """
    n_pairs = x.size * y.size
    half = n_pairs / 2

    def g(u: int) -> float:
        dz = u - half
        if correction == "two-sided":
            c = 0.5 * math.copysign(1.0, dz) if dz else 0.0
        else:
            c = {"greater": 0.5, "less": -0.5, None: 0.0}[correction]
        return (dz - c) / sigma - zq

    if g(0) > 0:
        return kth_difference(x, y, n_pairs)  # R's root(): f(mumax) >= 0 gives mumax
    lo, hi = 0, n_pairs  # g(lo) <= 0; find the largest u with g(u) <= 0
    if g(hi) <= 0:
        return kth_difference(x, y, 1)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if g(mid) <= 0:
            lo = mid
        else:
            hi = mid
    return kth_difference(x, y, n_pairs - lo)


def _tie_sigma(x: np.ndarray, y: np.ndarray, pooled: np.ndarray) -> float:
    n = x.size + y.size
    _, t = np.unique(pooled, return_counts=True)
    ties = float((t.astype(np.float64) ** 3 - t).sum())
    return math.sqrt((x.size * y.size / 12.0) * ((n + 1) - ties / (n * (n - 1))))


def rank_sum_test(
    x: np.ndarray, y: np.ndarray, alternative: Alternative = "two-sided", conf_level: float = 0.95
) -> RankSumResult:
    """Wilcoxon rank-sum test of ``x`` against ``y`` with the Hodges-Lehmann shift and its interval.

    Args:
        x: first sample (the canary), finite values.
        y: second sample (the baseline), finite values.
        alternative: ``greater`` tests whether ``x`` is shifted upwards (interval ``[low, inf)``).
        conf_level: confidence level of the interval.

    Returns:
        The statistic, p-value, estimate, interval, probability of superiority and method.

    Raises:
        ValueError: an empty sample or a confidence level outside (0, 1).
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.size == 0 or y.size == 0:
        raise ValueError(f"rank-sum test needs two non-empty samples, got {x.size} and {y.size}")
    if not 0 < conf_level < 1:
        raise ValueError(f"conf_level must be in (0, 1), got {conf_level!r}")
    alpha = 1.0 - conf_level
    pooled = np.concatenate([x, y])
    ranks = stats.rankdata(pooled)
    w = float(ranks[: x.size].sum() - x.size * (x.size + 1) / 2)
    n_pairs = x.size * y.size
    tied = np.unique(pooled).size < pooled.size
    estimate = _hodges_lehmann(x, y)
    low, high = -math.inf, math.inf
    if x.size < EXACT_BELOW and y.size < EXACT_BELOW and not tied:
        method = "exact"
        counts = _wilcox_counts(x.size, y.size)
        if alternative == "two-sided":
            p = _pwilcox(int(w), counts) if w <= n_pairs / 2 else 1 - _pwilcox(int(w) - 1, counts)
            p = min(1.0, 2 * p)
            qu = max(_qwilcox(alpha / 2, counts), 1)
            low, high = kth_difference(x, y, qu), kth_difference(x, y, n_pairs - qu + 1)
        else:
            qu = max(_qwilcox(alpha, counts), 1)
            if alternative == "greater":
                p = 1 - _pwilcox(int(w) - 1, counts)
                low = kth_difference(x, y, qu)
            else:
                p = _pwilcox(int(w), counts)
                high = kth_difference(x, y, n_pairs - qu + 1)
    else:
        method = "normal"
        p = float(
            stats.mannwhitneyu(x, y, alternative=alternative, method="asymptotic", use_continuity=True).pvalue
        )
        sigma = _tie_sigma(x, y, pooled)
        ci_sigma = math.sqrt(
            (n_pairs / 12.0)
            * ((pooled.size + 1) - (_within_ties(x) + _within_ties(y)) / (pooled.size * (pooled.size - 1)))
        )
        if sigma == 0 or ci_sigma == 0:
            p, low, high = 1.0, estimate, estimate
        elif alternative == "two-sided":
            low = _normal_bound(x, y, float(stats.norm.isf(alpha / 2)), "two-sided", ci_sigma)
            high = _normal_bound(x, y, float(stats.norm.ppf(alpha / 2)), "two-sided", ci_sigma)
        elif alternative == "greater":
            low = _normal_bound(x, y, float(stats.norm.isf(alpha)), "greater", ci_sigma)
        else:
            high = _normal_bound(x, y, float(stats.norm.ppf(alpha)), "less", ci_sigma)
    p = float(p) if math.isfinite(float(p)) else 1.0
    return RankSumResult(w, min(max(p, 0.0), 1.0), estimate, low, high, w / n_pairs, method)


def _within_ties(a: np.ndarray) -> float:
    _, t = np.unique(a, return_counts=True)
    return float((t.astype(np.float64) ** 3 - t).sum())
