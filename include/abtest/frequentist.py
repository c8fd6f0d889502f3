"""Two-sample tests on per-arm moments (mean, per-unit variance, n), vectorised with numpy.

The effect is treatment minus control, absolute or relative to the control:

- absolute: ``t - c`` with variance ``var_t/n_t + var_c/n_c``;
- relative: ``(t - c)/|c|`` with delta-method variance
  ``var_t/(n_t c^2) + var_c t^2/(n_c c^4)``.

The statistic ``estimate/se`` is referred to the t distribution with Welch-Satterthwaite
degrees of freedom ``(a + b)^2 / (a^2/(n_c-1) + b^2/(n_t-1))``, ``a = var_c/n_c``,
``b = var_t/n_t``. Intervals are symmetric: two-sided ``estimate +- t_{1-alpha/2} se``;
``greater`` gives ``(estimate - t_{1-alpha} se, inf)`` and ``less``
``(-inf, estimate + t_{1-alpha} se)``. With a sequential tuning parameter the interval is
the always-valid confidence sequence of :mod:`include.abtest.sequential` instead.

Every function accepts floats or arrays (elementwise); :func:`include.abtest.compare` wraps
them for one comparison of sufficient statistics, checking validity first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats

from include.abtest.errors import InvalidArgument
from include.abtest.sequential import Alternative, sequential_halfwidth, sequential_p_value

log = logging.getLogger(__name__)

Difference = Literal["absolute", "relative"]
ALTERNATIVES: tuple[str, ...] = ("two-sided", "greater", "less")
DIFFERENCES: tuple[str, ...] = ("absolute", "relative")

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class TestArrays:
    """Elementwise results of a two-sample test (arrays of equal shape).

    Attributes:
        estimate: treatment minus control (absolute or relative).
        se: standard error of the estimate.
        df: Welch-Satterthwaite degrees of freedom.
        statistic: estimate / se.
        p_value: p-value for the chosen alternative (always-valid when sequential).
        ci_low: lower bound of the interval (``-inf`` for ``less``).
        ci_high: upper bound of the interval (``inf`` for ``greater``).
    """

    estimate: FloatArray
    se: FloatArray
    df: FloatArray
    statistic: FloatArray
    p_value: FloatArray
    ci_low: FloatArray
    ci_high: FloatArray


def check_options(alpha: float, alternative: str, difference: str) -> None:
    """Validate the options shared by every test.

    Args:
        alpha: significance level, in (0, 1).
        alternative: ``two-sided``, ``greater`` or ``less``.
        difference: ``absolute`` or ``relative``.

    Raises:
        InvalidArgument: when one of them is out of range.
    """
    if not isinstance(alpha, int | float) or not 0.0 < float(alpha) < 1.0:
        raise InvalidArgument(f"alpha must lie in (0, 1), got {alpha!r}")
    if alternative not in ALTERNATIVES:
        raise InvalidArgument(f"alternative must be one of {', '.join(ALTERNATIVES)}, got {alternative!r}")
    if difference not in DIFFERENCES:
        raise InvalidArgument(f"difference must be one of {', '.join(DIFFERENCES)}, got {difference!r}")


def welch_df(
    var_c: npt.ArrayLike, n_c: npt.ArrayLike, var_t: npt.ArrayLike, n_t: npt.ArrayLike
) -> FloatArray:
    """Welch-Satterthwaite degrees of freedom.

    Args:
        var_c: per-unit variance of the control arm.
        n_c: units in the control arm.
        var_t: per-unit variance of the treatment arm.
        n_t: units in the treatment arm.

    Returns:
        ``(a + b)^2 / (a^2/(n_c - 1) + b^2/(n_t - 1))`` with ``a = var_c/n_c``, ``b = var_t/n_t``.
    """
    nc = np.asarray(n_c, dtype=np.float64)
    nt = np.asarray(n_t, dtype=np.float64)
    a = np.asarray(var_c, dtype=np.float64) / nc
    b = np.asarray(var_t, dtype=np.float64) / nt
    return np.asarray((a + b) ** 2 / (a**2 / (nc - 1.0) + b**2 / (nt - 1.0)), dtype=np.float64)


def effect_and_variance(
    mean_c: npt.ArrayLike,
    var_c: npt.ArrayLike,
    n_c: npt.ArrayLike,
    mean_t: npt.ArrayLike,
    var_t: npt.ArrayLike,
    n_t: npt.ArrayLike,
    difference: Difference = "absolute",
) -> tuple[FloatArray, FloatArray]:
    """Point estimate of the effect and the variance of that estimate.

    Args:
        mean_c: control mean.
        var_c: per-unit variance of the control arm.
        n_c: units in the control arm.
        mean_t: treatment mean.
        var_t: per-unit variance of the treatment arm.
        n_t: units in the treatment arm.
        difference: ``absolute`` (t - c) or ``relative`` ((t - c)/|c|, delta method).

    Returns:
        ``(estimate, variance_of_estimate)``.
    """
    c = np.asarray(mean_c, dtype=np.float64)
    t = np.asarray(mean_t, dtype=np.float64)
    vc = np.asarray(var_c, dtype=np.float64) / np.asarray(n_c, dtype=np.float64)
    vt = np.asarray(var_t, dtype=np.float64) / np.asarray(n_t, dtype=np.float64)
    if difference == "absolute":
        return np.asarray(t - c, dtype=np.float64), np.asarray(vt + vc, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        estimate = (t - c) / np.abs(c)
        variance = vt / c**2 + vc * t**2 / c**4
    return np.asarray(estimate, dtype=np.float64), np.asarray(variance, dtype=np.float64)


def two_sample_test(
    mean_c: npt.ArrayLike,
    var_c: npt.ArrayLike,
    n_c: npt.ArrayLike,
    mean_t: npt.ArrayLike,
    var_t: npt.ArrayLike,
    n_t: npt.ArrayLike,
    *,
    difference: Difference = "absolute",
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    sequential_tuning_parameter: float | None = None,
) -> TestArrays:
    """Welch t-test (or always-valid sequential test) on per-arm moments.

    Invalid elements (variance or n too small, control mean zero for a relative effect)
    come out as NaN; :func:`include.abtest.compare` reports them as errors instead.

    Args:
        mean_c: control mean.
        var_c: per-unit variance of the control arm (ddof 1 for means, p(1-p) for rates).
        n_c: units in the control arm.
        mean_t: treatment mean.
        var_t: per-unit variance of the treatment arm.
        n_t: units in the treatment arm.
        difference: ``absolute`` or ``relative``.
        alpha: significance level.
        alternative: ``two-sided``, ``greater`` or ``less``.
        sequential_tuning_parameter: N* for an always-valid confidence sequence, or None
            for a fixed-horizon test.

    Returns:
        The elementwise results.

    Raises:
        InvalidArgument: when alpha, alternative or difference is out of range.
    """
    check_options(alpha, alternative, difference)
    estimate, variance = effect_and_variance(mean_c, var_c, n_c, mean_t, var_t, n_t, difference)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(variance)
        statistic = estimate / se
        df = welch_df(var_c, n_c, var_t, n_t)
    n_total = np.asarray(n_c, dtype=np.float64) + np.asarray(n_t, dtype=np.float64)
    if sequential_tuning_parameter is not None:
        p_value = sequential_p_value(estimate, se, n_total, alpha, sequential_tuning_parameter, alternative)
        hw = sequential_halfwidth(se, n_total, alpha, sequential_tuning_parameter, alternative)
    else:
        if alternative == "two-sided":
            p_value = 2.0 * stats.t.sf(np.abs(statistic), df)
            hw = stats.t.isf(alpha / 2.0, df) * se
        elif alternative == "greater":
            p_value = stats.t.sf(statistic, df)
            hw = stats.t.isf(alpha, df) * se
        else:
            p_value = stats.t.cdf(statistic, df)
            hw = stats.t.isf(alpha, df) * se
    p_value = np.asarray(p_value, dtype=np.float64)
    hw = np.asarray(hw, dtype=np.float64)
    if alternative == "greater":
        ci_low, ci_high = estimate - hw, np.full_like(estimate, np.inf)
    elif alternative == "less":
        ci_low, ci_high = np.full_like(estimate, -np.inf), estimate + hw
    else:
        ci_low, ci_high = estimate - hw, estimate + hw
    nan = ~np.isfinite(statistic) | ~(se > 0)
    if np.any(nan):
        p_value = np.where(nan, np.nan, p_value)
        ci_low = np.where(nan, np.nan, ci_low)
        ci_high = np.where(nan, np.nan, ci_high)
    return TestArrays(
        estimate=np.asarray(estimate, dtype=np.float64),
        se=np.asarray(se, dtype=np.float64),
        df=np.asarray(df, dtype=np.float64),
        statistic=np.asarray(statistic, dtype=np.float64),
        p_value=np.asarray(p_value, dtype=np.float64),
        ci_low=np.asarray(ci_low, dtype=np.float64),
        ci_high=np.asarray(ci_high, dtype=np.float64),
    )
