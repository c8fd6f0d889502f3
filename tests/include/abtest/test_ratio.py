"""Ratio metrics (sum Y / sum X per arm) with the delta method, against a hand computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from include.abtest import RatioStats, compare


def _sessions_and_revenue(rng, n, rate):
    sessions = rng.poisson(3.0, n) + 1
    revenue = rng.gamma(2.0, rate, n) * sessions
    return revenue, sessions.astype(float)


def test_ratio_stats_variance_equals_hand_delta_method(rng):
    y, x = _sessions_and_revenue(rng, 2000, 1.0)
    s = RatioStats.from_values(y, x)
    my, mx = y.mean(), x.mean()
    cov = np.cov(y, x, ddof=1)
    hand = cov[0, 0] / mx**2 - 2 * my * cov[0, 1] / mx**3 + my**2 * cov[1, 1] / mx**4
    assert s.mean == pytest.approx(y.sum() / x.sum(), rel=1e-12)
    assert s.variance == pytest.approx(hand, rel=1e-9)


def test_ratio_comparison_matches_a_linearised_welch_test_on_raw_units(rng):
    yc, xc = _sessions_and_revenue(rng, 3000, 1.0)
    yt, xt = _sessions_and_revenue(rng, 2800, 1.08)
    res = compare(RatioStats.from_values(yc, xc), RatioStats.from_values(yt, xt))
    # Linearisation: z_i = (y_i - R x_i) / mean(x); var(mean z) is the delta-method variance.
    rc, rt = yc.sum() / xc.sum(), yt.sum() / xt.sum()
    zc = (yc - rc * xc) / xc.mean()
    zt = (yt - rt * xt) / xt.mean()
    se = math.sqrt(zc.var(ddof=1) / zc.size + zt.var(ddof=1) / zt.size)
    df = stats.ttest_ind(zt, zc, equal_var=False).df
    assert res.effect == pytest.approx(rt - rc, rel=1e-12)
    assert res.se == pytest.approx(se, rel=1e-9)
    assert res.df == pytest.approx(df, rel=1e-9)
    assert abs(res.p_value - 2 * stats.t.sf(abs((rt - rc) / se), df)) < 1e-9


def test_ratio_relative_difference_uses_the_ratio_as_the_control_mean(rng):
    yc, xc = _sessions_and_revenue(rng, 3000, 1.0)
    yt, xt = _sessions_and_revenue(rng, 2800, 1.08)
    c, t = RatioStats.from_values(yc, xc), RatioStats.from_values(yt, xt)
    res = compare(c, t, difference="relative")
    expected_se = math.sqrt(t.variance / (t.n * c.mean**2) + c.variance * t.mean**2 / (c.n * c.mean**4))
    assert res.effect == pytest.approx((t.mean - c.mean) / c.mean, rel=1e-12)
    assert res.se == pytest.approx(expected_se, rel=1e-12)


def test_ratio_with_denominator_one_reduces_to_a_mean_test(rng):
    yc, yt = rng.normal(5, 1, 500), rng.normal(5.2, 1.3, 450)
    res = compare(RatioStats.from_values(yc, np.ones(500)), RatioStats.from_values(yt, np.ones(450)))
    ref = stats.ttest_ind(yt, yc, equal_var=False)
    assert abs(res.p_value - ref.pvalue) < 1e-9
