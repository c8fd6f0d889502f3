"""CUPED: theta pooled over both arms equals the regression slope; variance drops as promised."""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats

from include.abtest import CupedStats, MeanStats, compare


def _experiment(rng, n_c=1500, n_t=1400, lift=0.3, rho=0.7):
    pre_c = rng.normal(10, 2, n_c)
    pre_t = rng.normal(10, 2, n_t)
    noise = 2 * math.sqrt(1 - rho**2)
    post_c = 1.0 + rho * pre_c + rng.normal(0, noise, n_c)
    post_t = 1.0 + lift + rho * pre_t + rng.normal(0, noise, n_t)
    return (post_c, pre_c), (post_t, pre_t)


def test_cuped_effect_and_theta_equal_the_ancova_regression_on_raw_rows(rng):
    (yc, xc), (yt, xt) = _experiment(rng)
    res = compare(CupedStats.from_values(yc, xc), CupedStats.from_values(yt, xt))
    y = np.concatenate([yc, yt])
    treat = np.concatenate([np.zeros(yc.size), np.ones(yt.size)])
    x = np.concatenate([xc, xt])
    ols = sm.OLS(y, sm.add_constant(np.column_stack([treat, x]))).fit()
    assert res.error is None
    assert res.effect == pytest.approx(ols.params[1], rel=1e-9)
    assert res.cuped_theta == pytest.approx(ols.params[2], rel=1e-9)
    # Welch on adjusted values vs the homoskedastic OLS standard error: same to a few percent.
    assert res.se == pytest.approx(ols.bse[1], rel=0.03)


def test_cuped_p_value_is_welch_on_the_adjusted_rows(rng):
    (yc, xc), (yt, xt) = _experiment(rng)
    res = compare(CupedStats.from_values(yc, xc), CupedStats.from_values(yt, xt), alternative="greater")
    theta = res.cuped_theta
    ref = stats.ttest_ind(yt - theta * xt, yc - theta * xc, equal_var=False, alternative="greater")
    assert abs(res.p_value - ref.pvalue) < 1e-9
    assert res.df == pytest.approx(ref.df, rel=1e-9)


def test_cuped_reports_variance_reduction_near_the_squared_correlation(rng):
    (yc, xc), (yt, xt) = _experiment(rng, rho=0.8)
    adjusted = compare(CupedStats.from_values(yc, xc), CupedStats.from_values(yt, xt))
    plain = compare(MeanStats.from_values(yc), MeanStats.from_values(yt))
    r2 = np.corrcoef(np.concatenate([yc, yt]), np.concatenate([xc, xt]))[0, 1] ** 2
    assert adjusted.variance_reduction == pytest.approx(1 - adjusted.se**2 / plain.se**2, rel=1e-12)
    assert adjusted.variance_reduction == pytest.approx(r2, abs=0.03)
    assert adjusted.se < plain.se
    assert plain.cuped_theta is None and plain.variance_reduction is None


def test_cuped_adjusted_means_stay_on_the_metric_scale_and_merge_across_days(rng):
    (yc, xc), (yt, xt) = _experiment(rng)
    whole = compare(CupedStats.from_values(yc, xc), CupedStats.from_values(yt, xt), difference="relative")
    days_c = sum(CupedStats.from_values(a, b) for a, b in zip(np.array_split(yc, 4), np.array_split(xc, 4)))
    days_t = sum(CupedStats.from_values(a, b) for a, b in zip(np.array_split(yt, 3), np.array_split(xt, 3)))
    merged = compare(days_c, days_t, difference="relative")
    assert merged.effect == pytest.approx(whole.effect, rel=1e-9)
    assert merged.p_value == pytest.approx(whole.p_value, rel=1e-9)
    # adjusted mean = post - theta (pre - pooled pre mean): its average over units is the raw mean.
    pooled = (yc.sum() + yt.sum()) / (yc.size + yt.size)
    weighted = (whole.control_mean * yc.size + whole.treatment_mean * yt.size) / (yc.size + yt.size)
    assert weighted == pytest.approx(pooled, rel=1e-9)


def test_cuped_with_a_constant_covariate_reports_an_error(rng):
    y = rng.normal(size=100)
    res = compare(CupedStats.from_values(y, np.ones(100)), CupedStats.from_values(y + 1, np.ones(100)))
    assert res.error is not None and "pre-period covariate has zero variance" in res.error
