"""Small-count tests for rates: Fisher's exact test and the Newcombe-Wilson interval of a difference.

- :func:`fisher_p`: Fisher's exact test of the 2x2 table (``scipy.stats.fisher_exact``), one-sided in
  the metric's bad direction or two-sided; exact at any count, so a handful of errors is judged right.
- :func:`newcombe_interval`: Newcombe's hybrid score interval for ``p1 - p2`` (Newcombe 1998, Stat Med
  17:873-890, method 10), built from the two Wilson score intervals; well calibrated down to zero
  events (the Wald interval collapses there).
"""

from __future__ import annotations

import math

from scipy import stats

from include.canary.ranktest import Alternative


def _check(x1: int, n1: int, x2: int, n2: int) -> None:
    if n1 <= 0 or n2 <= 0 or not 0 <= x1 <= n1 or not 0 <= x2 <= n2:
        raise ValueError(f"invalid counts for a rate comparison: {x1}/{n1}, {x2}/{n2}")


def wilson_interval(x: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score interval of a proportion ``x / n`` at normal quantile ``z``."""
    p = x / n
    centre = 2 * n * p + z * z
    spread = z * math.sqrt(z * z + 4 * n * p * (1 - p))
    den = 2 * (n + z * z)
    return max(0.0, (centre - spread) / den), min(1.0, (centre + spread) / den)


def newcombe_interval(
    x1: int, n1: int, x2: int, n2: int, conf_level: float = 0.95, alternative: Alternative = "two-sided"
) -> tuple[float, float]:
    """Newcombe-Wilson (hybrid score) interval of ``x1/n1 - x2/n2``.

    Args:
        x1: events in sample 1 (the canary).
        n1: size of sample 1.
        x2: events in sample 2 (the baseline).
        n2: size of sample 2.
        conf_level: confidence level.
        alternative: ``greater`` gives ``[low, inf)``, ``less`` gives ``(-inf, high]`` at one-sided level.

    Returns:
        ``(low, high)``.

    Raises:
        ValueError: counts out of range.
    """
    _check(x1, n1, x2, n2)
    alpha = 1 - conf_level
    z = float(stats.norm.isf(alpha / 2 if alternative == "two-sided" else alpha))
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson_interval(x1, n1, z)
    l2, u2 = wilson_interval(x2, n2, z)
    low = p1 - p2 - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = p1 - p2 + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    if alternative == "greater":
        high = math.inf
    elif alternative == "less":
        low = -math.inf
    return low, high


def fisher_p(x1: int, n1: int, x2: int, n2: int, alternative: Alternative = "two-sided") -> float:
    """Fisher's exact p-value that rate 1 differs from (``greater``: exceeds) rate 2.

    Raises:
        ValueError: counts out of range.
    """
    _check(x1, n1, x2, n2)
    table = [[x1, n1 - x1], [x2, n2 - x2]]
    return float(stats.fisher_exact(table, alternative=alternative).pvalue)
