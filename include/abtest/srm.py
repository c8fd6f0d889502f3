"""Sample-ratio mismatch: does the traffic split match the configured weights?

A chi-square goodness-of-fit test of the observed units per variant against
``total * weight / sum(weights)``. A p-value below 0.001 marks the experiment invalid: the
assignment or the logging is broken, and no effect estimate can be trusted.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

from include.abtest.errors import InvalidArgument, InvalidStatistics

log = logging.getLogger(__name__)

SRM_THRESHOLD = 0.001
"""p-value below which the split is declared mismatched (the experiment is invalid)."""


@dataclass(frozen=True, slots=True)
class SrmResult:
    """Outcome of a sample-ratio-mismatch check.

    Attributes:
        p_value: chi-square goodness-of-fit p-value.
        statistic: the chi-square statistic.
        expected: expected units per variant under the configured weights.
        observed: observed units per variant.
        threshold: p-value below which the split is mismatched.
    """

    p_value: float
    statistic: float
    expected: tuple[float, ...]
    observed: tuple[int, ...]
    threshold: float = SRM_THRESHOLD

    @property
    def mismatch(self) -> bool:
        """True when the split does not match the weights (p < threshold)."""
        return self.p_value < self.threshold

    @property
    def valid(self) -> bool:
        """True when the experiment passes the check (no mismatch)."""
        return not self.mismatch


def srm_test(counts: Sequence[int], weights: Sequence[float], threshold: float = SRM_THRESHOLD) -> SrmResult:
    """Chi-square goodness of fit of observed units per variant against the expected weights.

    Args:
        counts: units observed per variant.
        weights: configured traffic weights per variant, in the same order (any positive
            scale: 50/50, 0.5/0.5 and 1/1 are the same).
        threshold: p-value below which the experiment is invalid.

    Returns:
        The p-value, statistic and expected counts.

    Raises:
        InvalidStatistics: when a count is negative or not an integer, or all are zero.
        InvalidArgument: when the lengths differ, fewer than two variants are given, a
            weight is not positive or the threshold is out of range.
    """
    if len(counts) != len(weights):
        raise InvalidArgument(f"counts ({len(counts)}) and weights ({len(weights)}) differ in length")
    if len(counts) < 2:
        raise InvalidArgument("an SRM check needs at least two variants")
    if not 0.0 < threshold < 1.0:
        raise InvalidArgument(f"threshold must lie in (0, 1), got {threshold!r}")
    observed: list[int] = []
    for i, c in enumerate(counts):
        if isinstance(c, bool) or not isinstance(c, int) or c < 0:
            raise InvalidStatistics(f"counts[{i}] must be a non-negative integer, got {c!r}")
        observed.append(int(c))
    w: list[float] = []
    for i, x in enumerate(weights):
        if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x) or x <= 0:
            raise InvalidArgument(f"weights[{i}] must be a positive number, got {x!r}")
        w.append(float(x))
    total = sum(observed)
    if total == 0:
        raise InvalidStatistics("all counts are zero; there is no traffic to check")
    wsum = sum(w)
    expected = [total * x / wsum for x in w]
    res = stats.chisquare(observed, expected)
    p_value = float(res.pvalue)
    if p_value < threshold:
        log.warning("sample-ratio mismatch: observed %s, expected %s, p=%.3g", observed, expected, p_value)
    return SrmResult(
        p_value=p_value,
        statistic=float(res.statistic),
        expected=tuple(expected),
        observed=tuple(observed),
        threshold=threshold,
    )
