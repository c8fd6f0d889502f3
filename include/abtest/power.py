"""Power: the minimum detectable effect for a sample size, and the sample size for an effect.

Two arms of equal size n with the same per-unit variance sigma^2, so the effect's standard
error is ``se = sqrt(2 sigma^2 / n)`` (normal approximation):

- fixed horizon: ``MDE = (z_{1-alpha/2} + z_{power}) se`` (``z_{1-alpha}`` one-sided), and
  ``n = 2 sigma^2 (z_{1-alpha/2} + z_{power})^2 / effect^2`` rounded up;
- sequential: the critical value is replaced by the confidence-sequence multiplier
  ``halfwidth/se`` at ``n_total = 2n`` (which grows slowly with n), and n is found by search.

With ``baseline_mean`` the effect is relative (a fraction of |baseline_mean|), using the
delta-method variance at the null, ``2 sigma^2 / (n baseline^2)``. For a rate p use
``sigma^2 = p(1 - p)`` (:func:`proportion_variance`).
"""

from __future__ import annotations

import logging
import math

from scipy import stats

from include.abtest.errors import InvalidArgument
from include.abtest.sequential import Alternative, sequential_halfwidth

log = logging.getLogger(__name__)

_MAX_N = 10**12


def proportion_variance(rate: float) -> float:
    """Per-unit variance p(1-p) of a conversion rate.

    Args:
        rate: conversion rate in (0, 1).

    Returns:
        p(1 - p).

    Raises:
        InvalidArgument: when the rate is outside (0, 1).
    """
    if not 0.0 < rate < 1.0:
        raise InvalidArgument(f"rate must lie in (0, 1), got {rate!r}")
    return rate * (1.0 - rate)


def _check(
    variance: float, alpha: float, power: float, alternative: str, baseline_mean: float | None
) -> None:
    if not (math.isfinite(variance) and variance > 0.0):
        raise InvalidArgument(f"variance must be positive, got {variance!r}")
    if not 0.0 < alpha < 1.0:
        raise InvalidArgument(f"alpha must lie in (0, 1), got {alpha!r}")
    if not 0.0 < power < 1.0:
        raise InvalidArgument(f"power must lie in (0, 1), got {power!r}")
    if alternative not in ("two-sided", "greater", "less"):
        raise InvalidArgument(f"alternative must be two-sided, greater or less, got {alternative!r}")
    if baseline_mean is not None and not (math.isfinite(baseline_mean) and baseline_mean != 0.0):
        raise InvalidArgument(f"baseline_mean must be finite and non-zero, got {baseline_mean!r}")


def _multiplier(
    se: float, n_per_arm: float, alpha: float, alternative: Alternative, tuning_parameter: float | None
) -> float:
    if tuning_parameter is None:
        a = alpha / 2.0 if alternative == "two-sided" else alpha
        return float(stats.norm.isf(a))
    hw = float(sequential_halfwidth(se, 2.0 * n_per_arm, alpha, tuning_parameter, alternative))
    return hw / se


def minimum_detectable_effect(
    variance: float,
    n_per_arm: int,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    alternative: Alternative = "two-sided",
    baseline_mean: float | None = None,
    sequential_tuning_parameter: float | None = None,
) -> float:
    """Smallest true effect detected with the given power at n units per arm.

    Args:
        variance: per-unit variance of the metric (assumed equal in both arms).
        n_per_arm: units in each arm, >= 2.
        alpha: significance level.
        power: probability of detecting the effect, in (0, 1).
        alternative: ``two-sided``, ``greater`` or ``less``.
        baseline_mean: control mean; when given the MDE is relative to |baseline_mean|.
        sequential_tuning_parameter: N* when the analysis uses confidence sequences.

    Returns:
        The MDE (absolute, or relative when ``baseline_mean`` is given), positive.

    Raises:
        InvalidArgument: when an input is out of range.
    """
    _check(variance, alpha, power, alternative, baseline_mean)
    if isinstance(n_per_arm, bool) or not isinstance(n_per_arm, int) or n_per_arm < 2:
        raise InvalidArgument(f"n_per_arm must be an integer >= 2, got {n_per_arm!r}")
    se = math.sqrt(2.0 * variance / n_per_arm)
    mde = (
        _multiplier(se, n_per_arm, alpha, alternative, sequential_tuning_parameter)
        + stats.norm.isf(1 - power)
    ) * se
    return float(mde / abs(baseline_mean)) if baseline_mean is not None else float(mde)


def sample_size_per_arm(
    variance: float,
    effect: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    alternative: Alternative = "two-sided",
    baseline_mean: float | None = None,
    sequential_tuning_parameter: float | None = None,
) -> int:
    """Units per arm needed to detect an effect with the given power.

    Args:
        variance: per-unit variance of the metric (assumed equal in both arms).
        effect: the effect to detect (absolute, or relative when ``baseline_mean`` is given);
            its sign is ignored.
        alpha: significance level.
        power: probability of detecting the effect, in (0, 1).
        alternative: ``two-sided``, ``greater`` or ``less``.
        baseline_mean: control mean, for a relative effect.
        sequential_tuning_parameter: N* when the analysis uses confidence sequences
            (the default elsewhere is 5000).

    Returns:
        The smallest n per arm (>= 2) whose MDE is at most the effect.

    Raises:
        InvalidArgument: when an input is out of range or the effect needs more than 10^12 units.
    """
    _check(variance, alpha, power, alternative, baseline_mean)
    if not (math.isfinite(effect) and effect != 0.0):
        raise InvalidArgument(f"effect must be finite and non-zero, got {effect!r}")
    target = abs(effect)

    def mde(n: int) -> float:
        return minimum_detectable_effect(
            variance,
            n,
            alpha=alpha,
            power=power,
            alternative=alternative,
            baseline_mean=baseline_mean,
            sequential_tuning_parameter=sequential_tuning_parameter,
        )

    if sequential_tuning_parameter is None:
        scale = abs(baseline_mean) if baseline_mean is not None else 1.0
        z = _multiplier(1.0, 2, alpha, alternative, None) + float(stats.norm.isf(1 - power))
        n = max(2, math.ceil(2.0 * variance * z**2 / (target * scale) ** 2 * (1 - 1e-12)))
        # Guard the rounding either side of the closed form.
        while n > 2 and mde(n - 1) <= target:
            n -= 1
        while mde(n) > target:
            n += 1
        return n
    lo, hi = 2, 2
    while mde(hi) > target:
        lo, hi = hi, hi * 2
        if hi > _MAX_N:
            raise InvalidArgument(f"an effect of {effect!r} needs more than {_MAX_N} units per arm")
    if mde(lo) <= target:
        return lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if mde(mid) <= target:
            hi = mid
        else:
            lo = mid
    return hi
