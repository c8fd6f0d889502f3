"""One comparison of a treatment with its control, from per-variant sufficient statistics.

:func:`compare` is the engine's main entry point. It reduces both arms to moments (mean,
per-unit variance, n) according to their kind, applies CUPED when both arms carry a
pre-period covariate, runs the Welch t-test or the always-valid sequential test, and adds
the Bayesian view. Problems of the data (too few units, zero variance, a control mean of
zero for a relative effect) are returned as a result with ``error`` set, not raised, so
one bad metric does not stop an analysis of many.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from include.abtest.bayesian import NormalPrior, posterior
from include.abtest.errors import InvalidArgument
from include.abtest.frequentist import Difference, check_options, effect_and_variance, two_sample_test
from include.abtest.sequential import DEFAULT_TUNING_PARAMETER, Alternative
from include.abtest.sufficient import ArmStats, CupedStats, MeanStats, ProportionStats, RatioStats

log = logging.getLogger(__name__)

MIN_UNITS_PER_ARM = 2
"""Fewest units per arm for which a variance (and so a test) exists."""


@dataclass(frozen=True, slots=True)
class SequentialConfig:
    """Always-valid (sequential) testing on; see :mod:`include.abtest.sequential`.

    Args:
        tuning_parameter: N*, the total sample size (both arms) where the confidence
            sequence is tightest. Default 5000.

    Raises:
        InvalidArgument: when the tuning parameter is not positive.
    """

    tuning_parameter: float = DEFAULT_TUNING_PARAMETER

    def __post_init__(self) -> None:
        if not (math.isfinite(self.tuning_parameter) and self.tuning_parameter > 0):
            raise InvalidArgument(f"tuning_parameter must be positive, got {self.tuning_parameter!r}")


@dataclass(frozen=True, slots=True)
class _Moments:
    mean: float
    variance: float
    n: int


def _json_float(value: float) -> float | str | None:
    if math.isnan(value):
        return None
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


@dataclass(frozen=True, slots=True)
class ComparisonResult:
    """Outcome of one treatment-versus-control comparison.

    Numbers that could not be computed are NaN, and ``error`` says why.

    Attributes:
        control_mean: control mean (CUPED-adjusted when CUPED applies).
        treatment_mean: treatment mean (CUPED-adjusted when CUPED applies).
        n_control: units in the control arm.
        n_treatment: units in the treatment arm.
        effect: treatment minus control, absolute or relative to |control|.
        se: standard error of the effect.
        ci: interval for the effect (an infinite bound for one-sided alternatives).
        p_value: p-value (always-valid when sequential).
        df: Welch-Satterthwaite degrees of freedom.
        statistic: effect / se.
        chance_to_win: posterior probability that the effect is above zero.
        expected_loss: posterior expected loss of shipping the treatment.
        difference: ``absolute`` or ``relative``.
        alternative: ``two-sided``, ``greater`` or ``less``.
        alpha: significance level.
        sequential_tuning_parameter: N* when the interval is a confidence sequence, else None.
        cuped_theta: CUPED coefficient theta, None without CUPED.
        variance_reduction: ``1 - var(adjusted effect)/var(unadjusted effect)``, None without CUPED.
        error: why the comparison could not be made, or None.
    """

    control_mean: float
    treatment_mean: float
    n_control: int
    n_treatment: int
    effect: float
    se: float
    ci: tuple[float, float]
    p_value: float
    df: float
    statistic: float
    chance_to_win: float
    expected_loss: float
    difference: str
    alternative: str
    alpha: float
    sequential_tuning_parameter: float | None = None
    cuped_theta: float | None = None
    variance_reduction: float | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the comparison was computed."""
        return self.error is None

    @property
    def significant(self) -> bool:
        """True when computed and the p-value is below alpha."""
        return self.error is None and self.p_value < self.alpha

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: NaN becomes null, an infinite bound the string "inf" or "-inf".

        Returns:
            A dict with ``control_mean``, ``treatment_mean``, ``effect``, ``ci``, ``se``,
            ``p_value``, ``chance_to_win``, ``error`` and the remaining fields.
        """
        cuped = None
        if self.cuped_theta is not None:
            cuped = {
                "theta": _json_float(self.cuped_theta),
                "variance_reduction": _json_float(
                    math.nan if self.variance_reduction is None else self.variance_reduction
                ),
            }
        return {
            "control_mean": _json_float(self.control_mean),
            "treatment_mean": _json_float(self.treatment_mean),
            "effect": _json_float(self.effect),
            "ci": [_json_float(self.ci[0]), _json_float(self.ci[1])],
            "se": _json_float(self.se),
            "p_value": _json_float(self.p_value),
            "chance_to_win": _json_float(self.chance_to_win),
            "expected_loss": _json_float(self.expected_loss),
            "df": _json_float(self.df),
            "n_control": self.n_control,
            "n_treatment": self.n_treatment,
            "difference": self.difference,
            "alternative": self.alternative,
            "alpha": self.alpha,
            "sequential": (
                None
                if self.sequential_tuning_parameter is None
                else {"tuning_parameter": self.sequential_tuning_parameter}
            ),
            "cuped": cuped,
            "error": self.error,
        }


class _DataProblem(Exception):
    """Internal: the data do not allow the comparison; becomes ``ComparisonResult.error``."""


def _moments(stats: MeanStats | ProportionStats | RatioStats, arm: str) -> _Moments:
    if stats.n < MIN_UNITS_PER_ARM:
        raise _DataProblem(f"{arm} has n={stats.n}; at least {MIN_UNITS_PER_ARM} units per arm are needed")
    if isinstance(stats, RatioStats) and stats.den_sum == 0.0:
        raise _DataProblem(f"{arm} denominator sum is zero; the ratio is undefined")
    return _Moments(mean=stats.mean, variance=stats.variance, n=stats.n)


def _cuped_moments(c: CupedStats, t: CupedStats) -> tuple[_Moments, _Moments, float]:
    for stats, arm in ((c, "control"), (t, "treatment")):
        if stats.n < MIN_UNITS_PER_ARM:
            raise _DataProblem(
                f"{arm} has n={stats.n}; at least {MIN_UNITS_PER_ARM} units per arm are needed"
            )
    sxx = c.pre_sum_squared_deviations + t.pre_sum_squared_deviations
    if not sxx > 0.0:
        raise _DataProblem("the pre-period covariate has zero variance; CUPED needs variation in it")
    theta = (c.cross_deviations + t.cross_deviations) / sxx
    pre_mean = (c.pre_sum + t.pre_sum) / (c.n + t.n)
    out = []
    for s in (c, t):
        syy = s.post.sum_squared_deviations
        sxx_a = s.pre_sum_squared_deviations
        sxy = s.cross_deviations
        adjusted = max(syy - 2.0 * theta * sxy + theta**2 * sxx_a, 0.0)
        out.append(
            _Moments(
                mean=s.mean - theta * (s.pre_sum / s.n - pre_mean),
                variance=adjusted / (s.n - 1),
                n=s.n,
            )
        )
    return out[0], out[1], theta


def _check_variances(mc: _Moments, mt: _Moments, difference: str) -> None:
    for m, arm in ((mc, "control"), (mt, "treatment")):
        if not math.isfinite(m.variance) or m.variance <= 0.0:
            raise _DataProblem(f"{arm} variance is zero (every unit has the same value); no test is possible")
    if difference == "relative" and mc.mean == 0.0:
        raise _DataProblem("control mean is zero; a relative difference is undefined")


def _error_result(
    control: ArmStats,
    treatment: ArmStats,
    message: str,
    difference: str,
    alternative: str,
    alpha: float,
    tuning: float | None,
) -> ComparisonResult:
    nan = math.nan
    return ComparisonResult(
        control_mean=control.mean if control.n > 0 else nan,
        treatment_mean=treatment.mean if treatment.n > 0 else nan,
        n_control=control.n,
        n_treatment=treatment.n,
        effect=nan,
        se=nan,
        ci=(nan, nan),
        p_value=nan,
        df=nan,
        statistic=nan,
        chance_to_win=nan,
        expected_loss=nan,
        difference=difference,
        alternative=alternative,
        alpha=alpha,
        sequential_tuning_parameter=tuning,
        error=message,
    )


def compare(
    control: ArmStats,
    treatment: ArmStats,
    *,
    difference: Difference = "absolute",
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    sequential: SequentialConfig | None = None,
    prior: NormalPrior | None = None,
) -> ComparisonResult:
    """Compare a treatment with its control.

    Both arms must be the same kind of statistics. :class:`CupedStats` arms are CUPED
    adjusted with theta pooled over both arms.

    Args:
        control: statistics of the control arm.
        treatment: statistics of the treatment arm.
        difference: ``absolute`` (t - c) or ``relative`` ((t - c)/|c|).
        alpha: significance level.
        alternative: ``two-sided``, ``greater`` (treatment above control) or ``less``.
        sequential: always-valid confidence sequence settings, or None for fixed horizon.
        prior: proper normal prior on the effect for the Bayesian view; None for flat.

    Returns:
        The result; ``error`` is set (and numbers are NaN) when the data allow no test.

    Raises:
        InvalidArgument: when an option is out of range or the arms differ in kind.
    """
    check_options(alpha, alternative, difference)
    if type(control) is not type(treatment):
        raise InvalidArgument(
            f"control ({type(control).__name__}) and treatment ({type(treatment).__name__}) "
            "must be the same kind of statistics"
        )
    if not isinstance(control, MeanStats | ProportionStats | RatioStats | CupedStats):
        raise InvalidArgument(f"unsupported statistics type {type(control).__name__}")
    tuning = None if sequential is None else float(sequential.tuning_parameter)
    theta: float | None = None
    try:
        if isinstance(control, CupedStats) and isinstance(treatment, CupedStats):
            mc, mt, theta = _cuped_moments(control, treatment)
        else:
            assert not isinstance(control, CupedStats) and not isinstance(treatment, CupedStats)
            mc, mt = _moments(control, "control"), _moments(treatment, "treatment")
        _check_variances(mc, mt, difference)
    except _DataProblem as e:
        log.info("comparison not possible: %s", e)
        return _error_result(control, treatment, str(e), difference, alternative, alpha, tuning)

    res = two_sample_test(
        mc.mean,
        mc.variance,
        mc.n,
        mt.mean,
        mt.variance,
        mt.n,
        difference=difference,
        alpha=alpha,
        alternative=alternative,
        sequential_tuning_parameter=tuning,
    )
    effect, se = float(res.estimate), float(res.se)
    if not (math.isfinite(effect) and math.isfinite(se) and se > 0.0):
        return _error_result(
            control,
            treatment,
            "the effect or its standard error is not finite",
            difference,
            alternative,
            alpha,
            tuning,
        )
    variance_reduction: float | None = None
    if theta is not None:
        assert isinstance(control, CupedStats) and isinstance(treatment, CupedStats)
        _, raw_var = effect_and_variance(
            control.mean,
            control.post.variance,
            control.n,
            treatment.mean,
            treatment.post.variance,
            treatment.n,
            difference,
        )
        raw = float(raw_var)
        variance_reduction = 1.0 - se**2 / raw if math.isfinite(raw) and raw > 0.0 else math.nan
    post = posterior(effect, se, prior)
    return ComparisonResult(
        control_mean=mc.mean,
        treatment_mean=mt.mean,
        n_control=mc.n,
        n_treatment=mt.n,
        effect=effect,
        se=se,
        ci=(float(res.ci_low), float(res.ci_high)),
        p_value=float(res.p_value),
        df=float(res.df),
        statistic=float(res.statistic),
        chance_to_win=post.chance_to_win,
        expected_loss=post.expected_loss,
        difference=difference,
        alternative=alternative,
        alpha=float(alpha),
        sequential_tuning_parameter=tuning,
        cuped_theta=theta,
        variance_reduction=variance_reduction,
        error=None,
    )
