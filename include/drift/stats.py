"""Per-feature drift statistics (PSI, KS, Jensen-Shannon) with p-values from their null at the actual sizes.

For one feature with ``n`` reference and ``m`` current values:

- **KS**: the two-sample Kolmogorov-Smirnov statistic and its p-value (``scipy.stats.ks_2samp``'s exact
  distribution up to :data:`KS_EXACT_MAX` values a side, its asymptotic ``kstwo`` beyond).
- **PSI** and **JS** are computed on ``bins`` bins cut at the quantiles of the *pooled* sample (levels
  for categorical features). Binning on pooled ranks makes both statistics distribution-free under no
  drift: the current sample's bin counts are then multivariate hypergeometric (bin sizes fixed, ``m``
  drawn), whatever the feature's distribution. Their p-values come from :data:`NULL_DRAWS` draws of that
  exact null at the actual ``n`` and ``m`` (cached per sizes), so a threshold holds at n = 100 as at
  n = 100,000; a fixed cut such as "PSI > 0.1" does not (its false-alarm rate depends on n).
- The feature's p-value combines the three by the Cauchy combination test (Liu and Xie 2020, *JASA*
  115:393), valid in the tail under arbitrary dependence between the three; features are then
  combined with Benjamini-Hochberg in :mod:`include.drift.detect`.

PSI = ``sum (c - r) ln(c / r)`` over bin shares (counts smoothed by 0.5); JS is the Jensen-Shannon
divergence of the bin shares in bits (0 = same, 1 = disjoint).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import stats

NULL_DRAWS = 20_000
"""Draws of the hypergeometric null per (bin sizes, m); p-values of PSI and JS have resolution 1/20001."""

DEFAULT_BINS = 10
"""Bins of PSI and JS (deciles of the pooled sample)."""

_SMOOTH = 0.5


@dataclass(frozen=True)
class FeatureDrift:
    """Drift statistics of one feature.

    Attributes:
        psi: population stability index of the bin shares.
        psi_p: p-value of the PSI under no drift at these sample sizes.
        ks: Kolmogorov-Smirnov statistic.
        ks_p: its p-value.
        js: Jensen-Shannon divergence of the bin shares (bits).
        js_p: p-value of the JS divergence under no drift.
        p_value: Cauchy combination of the three p-values.
    """

    psi: float
    psi_p: float
    ks: float
    ks_p: float
    js: float
    js_p: float
    p_value: float


def _psi(cur: np.ndarray, ref: np.ndarray, m: int, n: int, k: int) -> np.ndarray:
    """PSI for rows of current counts ``cur`` and reference counts ``ref`` (shape ``(..., k)``)."""
    c = (cur + _SMOOTH) / (m + _SMOOTH * k)
    r = (ref + _SMOOTH) / (n + _SMOOTH * k)
    return np.asarray(((c - r) * np.log(c / r)).sum(axis=-1))


def _js(cur: np.ndarray, ref: np.ndarray, m: int, n: int) -> np.ndarray:
    """Jensen-Shannon divergence in bits between the bin shares of ``cur`` and ``ref``."""
    p, q = cur / m, ref / n
    mid = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / mid), 0.0)
        kl_q = np.where(q > 0, q * np.log2(q / mid), 0.0)
    return np.asarray(0.5 * (kl_p.sum(axis=-1) + kl_q.sum(axis=-1)))


@lru_cache(maxsize=256)
def _null(sizes: tuple[int, ...], m: int, draws: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted null draws of (PSI, JS) for bins of these pooled sizes with ``m`` current values."""
    rng = np.random.default_rng(abs(hash((sizes, m))) % 2**32)
    colors = np.asarray(sizes, dtype=np.int64)
    cur = rng.multivariate_hypergeometric(colors, m, size=draws).astype(np.float64)
    ref = colors - cur
    n = int(colors.sum()) - m
    return np.sort(_psi(cur, ref, m, n, len(sizes))), np.sort(_js(cur, ref, m, n))


def _upper_p(null_sorted: np.ndarray, observed: float) -> float:
    """Monte Carlo p-value ``(1 + #{null >= observed}) / (draws + 1)`` (tolerant of rounding)."""
    above = null_sorted.size - np.searchsorted(null_sorted, observed * (1 - 1e-12), side="left")
    return float((1 + above) / (null_sorted.size + 1))


def cauchy_combination(p_values: list[float]) -> float:
    """Cauchy combination (ACAT) of p-values with equal weights.

    Args:
        p_values: p-values in (0, 1].

    Returns:
        The combined p-value.
    """
    p = np.clip(np.asarray(p_values, dtype=np.float64), 1e-300, 1.0)
    terms = np.where(p < 1e-15, 1.0 / (p * math.pi), np.tan((0.5 - p) * math.pi))
    t = float(terms.mean())
    if t > 1e15:
        return min(1.0, 1.0 / (t * math.pi))
    return float(min(1.0, max(0.0, 0.5 - math.atan(t) / math.pi)))


KS_EXACT_MAX = 2_000
"""Above this many values on a side, the KS p-value is asymptotic (``kstwo`` at ``n m / (n + m)``)."""


def _ks_and_bins(ref: np.ndarray, cur: np.ndarray, bins: int) -> tuple[float, np.ndarray, np.ndarray]:
    """KS statistic and pooled-quantile bin counts (reference, current) from one sort of the pooled values."""
    n, m = ref.size, cur.size
    pooled = np.concatenate([ref, cur])
    order = np.argsort(pooled)  # ties: only the last index of each value is read
    values = pooled[order]
    is_cur = order >= n
    last = np.r_[np.nonzero(values[1:] != values[:-1])[0], values.size - 1]  # last index of each value
    cum_c = np.cumsum(is_cur)[last] / m
    cum_r = np.cumsum(~is_cur)[last] / n
    ks = float(np.abs(cum_c - cum_r).max())
    pos = (values.size - 1) * np.linspace(0, 1, bins + 1)[1:-1]
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, values.size - 1)
    edges = np.unique(values[lo] + (pos - lo) * (values[hi] - values[lo]))  # np.quantile, linear
    idx = np.searchsorted(edges, values, side="right")
    c = np.bincount(idx, weights=is_cur.astype(np.float64), minlength=edges.size + 1)
    total = np.bincount(idx, minlength=edges.size + 1).astype(np.float64)
    keep = total > 0
    return ks, (total - c)[keep], c[keep]


def _ks_p(ref: np.ndarray, cur: np.ndarray, ks: float) -> float:
    n, m = ref.size, cur.size
    if max(n, m) <= KS_EXACT_MAX:
        return float(stats.ks_2samp(ref, cur).pvalue)
    return float(stats.kstwo.sf(ks, np.round(n * m / (n + m))))


def _level_counts(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    levels, codes = np.unique(np.concatenate([ref, cur]), return_inverse=True)
    r = np.bincount(codes[: ref.size], minlength=levels.size)
    c = np.bincount(codes[ref.size :], minlength=levels.size)
    return r.astype(np.float64), c.astype(np.float64)


def feature_drift(
    reference: np.ndarray, current: np.ndarray, bins: int = DEFAULT_BINS, categorical: bool = False
) -> FeatureDrift:
    """Compare one feature's current values with its reference values.

    Args:
        reference: reference values (no missing values).
        current: current values (no missing values).
        bins: number of pooled-quantile bins for PSI and JS.
        categorical: treat the values as levels (bins = levels; KS is then not defined and omitted).

    Returns:
        The statistics and p-values.

    Raises:
        ValueError: an empty sample.
    """
    n, m = int(reference.size), int(current.size)
    if n == 0 or m == 0:
        raise ValueError(f"drift needs values on both sides, got {n} reference and {m} current")
    if categorical:
        r, c = _level_counts(reference, current)
        ks, ks_p = math.nan, math.nan
    else:
        ks, r, c = _ks_and_bins(reference, current, bins)
        ks_p = _ks_p(reference, current, ks)
    k = r.size
    psi = float(_psi(c, r, m, n, k))
    js = float(_js(c, r, m, n))
    if k < 2:
        psi_p = js_p = 1.0
    else:
        null_psi, null_js = _null(tuple(int(v) for v in r + c), m, NULL_DRAWS)
        psi_p, js_p = _upper_p(null_psi, psi), _upper_p(null_js, js)
    parts = [psi_p, js_p] + ([] if math.isnan(ks_p) else [ks_p])
    return FeatureDrift(psi, psi_p, ks, ks_p, js, js_p, cauchy_combination(parts))


def benjamini_hochberg(p_values: list[float], alpha: float) -> list[bool]:
    """Benjamini-Hochberg step-up: which hypotheses are rejected at false discovery rate ``alpha``.

    Args:
        p_values: one p-value per hypothesis.
        alpha: the level.

    Returns:
        One flag per p-value, in the input order.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.size == 0:
        return []
    order = np.argsort(p, kind="stable")
    passed = p[order] <= alpha * np.arange(1, p.size + 1) / p.size
    k = int(np.nonzero(passed)[0].max()) + 1 if passed.any() else 0
    out = np.zeros(p.size, dtype=bool)
    out[order[:k]] = True
    return [bool(v) for v in out]
