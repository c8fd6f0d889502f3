"""Always-valid confidence sequences (Gaussian mixture, Waudby-Smith et al., arXiv 2103.06476).

An asymptotic confidence sequence covers the true effect at every sample size at once with
probability at least 1 - alpha, so an experiment may be looked at every day without
inflating the false-positive rate. The formulas follow GrowthBook's ``gbstats``:

- mixing parameter, from the tuning parameter N* (the total sample size at which the
  sequence is tightest)::

      rho = sqrt((-2 ln a + ln(-2 ln a + 1)) / N*)        a = alpha (two-sided), 2 alpha (one-sided)

- with n = n_control + n_treatment and s2 = se**2 * n (the per-observation variance of the
  effect estimate), the two-sided half-width (eq. 9 of the paper)::

      hw = sqrt(s2) * sqrt(2 (n rho^2 + 1) ln(sqrt(n rho^2 + 1) / alpha) / (n rho)^2)

  and the one-sided half-width::

      hw = sqrt(s2 * 2 (n rho^2 + 1) / (n rho)^2 * ln(1 + sqrt(n rho^2 + 1) / (2 alpha)))

- the always-valid two-sided p-value is 1/E with the mixture e-value (eq. 155)::

      E = exp(rho^2 * st2 / (2 (n rho^2 + 1))) / sqrt(n rho^2 + 1),   st2 = n * estimate^2 / se^2

  and the one-sided p-value is the alpha at which the one-sided bound touches zero (rho held
  at its configured value), which has a closed form.

All functions are vectorised: they accept floats or numpy arrays.
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
import numpy.typing as npt

from include.abtest.errors import InvalidArgument

log = logging.getLogger(__name__)

DEFAULT_TUNING_PARAMETER = 5000.0
"""Default N*: the total sample size (both arms) at which the sequence is tightest."""

Alternative = Literal["two-sided", "greater", "less"]


def _check(alpha: float, tuning_parameter: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise InvalidArgument(f"alpha must lie in (0, 1), got {alpha!r}")
    if not tuning_parameter > 0.0 or not np.isfinite(tuning_parameter):
        raise InvalidArgument(f"sequential tuning parameter must be positive, got {tuning_parameter!r}")


def sequential_rho(
    alpha: float, tuning_parameter: float = DEFAULT_TUNING_PARAMETER, two_sided: bool = True
) -> float:
    """Mixing parameter rho of the Gaussian-mixture confidence sequence.

    Args:
        alpha: significance level in (0, 1).
        tuning_parameter: N*, the total sample size where the sequence is tightest.
        two_sided: False for a one-sided sequence (rho is then computed at 2 alpha).

    Returns:
        rho = sqrt((-2 ln a + ln(-2 ln a + 1)) / N*).

    Raises:
        InvalidArgument: when alpha or the tuning parameter is out of range.
    """
    _check(alpha, tuning_parameter)
    a = alpha if two_sided else min(2.0 * alpha, 1.0 - 1e-12)
    log_a = np.log(a)
    return float(np.sqrt((-2.0 * log_a + np.log(-2.0 * log_a + 1.0)) / tuning_parameter))


def sequential_halfwidth(
    se: npt.ArrayLike,
    n_total: npt.ArrayLike,
    alpha: float,
    tuning_parameter: float = DEFAULT_TUNING_PARAMETER,
    alternative: Alternative = "two-sided",
) -> npt.NDArray[np.float64]:
    """Half-width of the always-valid confidence sequence at the current sample size.

    Args:
        se: standard error of the effect estimate (float or array).
        n_total: units in both arms together (float or array).
        alpha: significance level.
        tuning_parameter: N*.
        alternative: ``two-sided``, ``greater`` or ``less`` (the last two use the one-sided form).

    Returns:
        The half-width, elementwise.

    Raises:
        InvalidArgument: when alpha or the tuning parameter is out of range.
    """
    two_sided = alternative == "two-sided"
    rho = sequential_rho(alpha, tuning_parameter, two_sided)
    se_arr = np.asarray(se, dtype=np.float64)
    n = np.asarray(n_total, dtype=np.float64)
    s2 = se_arr**2 * n
    tr2p1 = n * rho**2 + 1.0
    part = 2.0 * tr2p1 / (n * rho) ** 2
    if two_sided:
        return np.asarray(np.sqrt(s2 * part * np.log(np.sqrt(tr2p1) / alpha)), dtype=np.float64)
    return np.asarray(np.sqrt(s2 * part * np.log1p(np.sqrt(tr2p1) / (2.0 * alpha))), dtype=np.float64)


def sequential_p_value(
    estimate: npt.ArrayLike,
    se: npt.ArrayLike,
    n_total: npt.ArrayLike,
    alpha: float,
    tuning_parameter: float = DEFAULT_TUNING_PARAMETER,
    alternative: Alternative = "two-sided",
) -> npt.NDArray[np.float64]:
    """Always-valid p-value, consistent with the confidence sequence (p <= alpha iff 0 is excluded).

    Args:
        estimate: effect estimate (float or array).
        se: its standard error.
        n_total: units in both arms together.
        alpha: significance level (fixes rho, as in GrowthBook).
        tuning_parameter: N*.
        alternative: ``two-sided``, ``greater`` or ``less``.

    Returns:
        The p-value in [0, 1], elementwise.

    Raises:
        InvalidArgument: when alpha or the tuning parameter is out of range.
    """
    two_sided = alternative == "two-sided"
    rho = sequential_rho(alpha, tuning_parameter, two_sided)
    est = np.asarray(estimate, dtype=np.float64)
    se_arr = np.asarray(se, dtype=np.float64)
    n = np.asarray(n_total, dtype=np.float64)
    tr2p1 = n * rho**2 + 1.0
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        if two_sided:
            st2 = n * est**2 / se_arr**2
            log_p = 0.5 * np.log(tr2p1) - rho**2 * st2 / (2.0 * tr2p1)
            return np.asarray(np.exp(np.minimum(log_p, 0.0)), dtype=np.float64)
        # One-sided bound touches zero when hw(a) = |estimate|; solve for a with rho fixed:
        # est^2 / (s2 * part) = ln(1 + sqrt(tr2p1) / (2 a)).
        s2 = se_arr**2 * n
        part = 2.0 * tr2p1 / (n * rho) ** 2
        q = est**2 / (s2 * part)
        p = np.sqrt(tr2p1) / (2.0 * np.expm1(q))
        right_side = est > 0.0 if alternative == "greater" else est < 0.0
        out = np.where(right_side, np.minimum(p, 1.0), 1.0)
        return np.asarray(out, dtype=np.float64)
