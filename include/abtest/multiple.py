"""Multiple comparisons across variants and metrics: Holm-Bonferroni and Benjamini-Hochberg.

- Holm (family-wise error rate): with p-values sorted ascending p_(1) <= ... <= p_(m), the
  adjusted value is ``max_{j<=i} min(1, (m - j + 1) p_(j))``.
- Benjamini-Hochberg (false discovery rate): ``min_{j>=i} min(1, m p_(j) / j)``.

A hypothesis is rejected when its adjusted p-value is at most alpha; results are in the
input order. Both agree with ``statsmodels.stats.multitest.multipletests`` (``holm`` and
``fdr_bh``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from include.abtest.errors import InvalidArgument

log = logging.getLogger(__name__)

Method = Literal["holm", "bh"]
METHODS: tuple[str, ...] = ("holm", "bh")


@dataclass(frozen=True, slots=True)
class MultipleTestingResult:
    """Adjusted p-values and decisions, in the order of the input.

    Attributes:
        adjusted: adjusted p-values.
        reject: True where the adjusted p-value is at most alpha.
        method: ``holm`` or ``bh``.
        alpha: the family level.
    """

    adjusted: tuple[float, ...]
    reject: tuple[bool, ...]
    method: str
    alpha: float


def _validated(p_values: Sequence[float], alpha: float) -> np.ndarray:
    if not 0.0 < alpha < 1.0:
        raise InvalidArgument(f"alpha must lie in (0, 1), got {alpha!r}")
    p = np.asarray(list(p_values), dtype=np.float64)
    if p.ndim != 1:
        raise InvalidArgument("p_values must be a flat sequence")
    bad = ~np.isfinite(p) | (p < 0.0) | (p > 1.0)
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise InvalidArgument(f"p_values[{i}] must lie in [0, 1], got {p[i]!r}")
    return p


def holm(p_values: Sequence[float], alpha: float = 0.05) -> MultipleTestingResult:
    """Holm-Bonferroni step-down adjustment (controls the family-wise error rate).

    Args:
        p_values: raw p-values.
        alpha: family-wise level.

    Returns:
        Adjusted p-values and rejections in input order.

    Raises:
        InvalidArgument: when a p-value or alpha is out of range.
    """
    p = _validated(p_values, alpha)
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = np.minimum((m - np.arange(m)) * p[order], 1.0)
    adjusted_sorted = np.maximum.accumulate(scaled) if m else scaled
    adjusted = np.empty_like(p)
    adjusted[order] = adjusted_sorted
    return MultipleTestingResult(
        adjusted=tuple(float(x) for x in adjusted),
        reject=tuple(bool(x <= alpha) for x in adjusted),
        method="holm",
        alpha=alpha,
    )


def benjamini_hochberg(p_values: Sequence[float], alpha: float = 0.05) -> MultipleTestingResult:
    """Benjamini-Hochberg step-up adjustment (controls the false discovery rate).

    Args:
        p_values: raw p-values.
        alpha: false discovery rate.

    Returns:
        Adjusted p-values and rejections in input order.

    Raises:
        InvalidArgument: when a p-value or alpha is out of range.
    """
    p = _validated(p_values, alpha)
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(m * p[order] / np.arange(1, m + 1), 1.0)
    adjusted_sorted = np.minimum.accumulate(scaled[::-1])[::-1] if m else scaled
    adjusted = np.empty_like(p)
    adjusted[order] = adjusted_sorted
    return MultipleTestingResult(
        adjusted=tuple(float(x) for x in adjusted),
        reject=tuple(bool(x <= alpha) for x in adjusted),
        method="bh",
        alpha=alpha,
    )


def adjust_p_values(
    p_values: Sequence[float], method: Method = "holm", alpha: float = 0.05
) -> MultipleTestingResult:
    """Adjust p-values for multiple comparisons.

    Args:
        p_values: raw p-values (NaN is not allowed: drop comparisons that reported an error).
        method: ``holm`` (Holm-Bonferroni) or ``bh`` (Benjamini-Hochberg).
        alpha: family level.

    Returns:
        Adjusted p-values and rejections in input order.

    Raises:
        InvalidArgument: when the method is unknown or a value is out of range.
    """
    if method == "holm":
        return holm(p_values, alpha)
    if method == "bh":
        return benjamini_hochberg(p_values, alpha)
    raise InvalidArgument(f"method must be one of {', '.join(METHODS)}, got {method!r}")
