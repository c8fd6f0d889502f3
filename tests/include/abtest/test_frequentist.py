"""Welch t-tests on sufficient statistics agree with scipy and statsmodels on the raw rows."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats import proportion as sm_proportion
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from include.abtest import InvalidArgument, MeanStats, ProportionStats, RatioStats, compare


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_mean_comparison_matches_scipy_welch_on_raw_samples(two_samples, alternative):
    control, treatment = two_samples
    res = compare(MeanStats.from_values(control), MeanStats.from_values(treatment), alternative=alternative)
    ref = stats.ttest_ind(treatment, control, equal_var=False, alternative=alternative)
    assert res.error is None
    assert abs(res.p_value - ref.pvalue) < 1e-9
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-9)
    assert res.df == pytest.approx(ref.df, rel=1e-9)
    assert res.effect == pytest.approx(treatment.mean() - control.mean(), rel=1e-12)
    low, high = ref.confidence_interval(0.95)
    assert res.ci[0] == pytest.approx(low, rel=1e-9, abs=1e-12)
    assert res.ci[1] == pytest.approx(high, rel=1e-9, abs=1e-12)


def test_one_sided_intervals_are_open_on_the_side_of_the_alternative(two_samples):
    control, treatment = (MeanStats.from_values(x) for x in two_samples)
    greater = compare(control, treatment, alternative="greater")
    less = compare(control, treatment, alternative="less")
    assert greater.ci[1] == math.inf and math.isfinite(greater.ci[0])
    assert less.ci[0] == -math.inf and math.isfinite(less.ci[1])
    # Same one-sided half-width on both sides.
    assert greater.effect - greater.ci[0] == pytest.approx(less.ci[1] - less.effect, rel=1e-12)


def test_sufficient_statistics_path_equals_raw_row_path_after_merging_days(two_samples):
    control, treatment = two_samples
    daily_c = sum(MeanStats.from_values(d) for d in np.array_split(control, 5))
    daily_t = sum(MeanStats.from_values(d) for d in np.array_split(treatment, 9))
    merged = compare(daily_c, daily_t)
    ref = stats.ttest_ind(treatment, control, equal_var=False)
    assert abs(merged.p_value - ref.pvalue) < 1e-9
    assert merged.se == pytest.approx(
        math.sqrt(treatment.var(ddof=1) / 650 + control.var(ddof=1) / 800), rel=1e-9
    )


def test_mean_comparison_matches_statsmodels_compare_means(two_samples):
    control, treatment = two_samples
    res = compare(MeanStats.from_values(control), MeanStats.from_values(treatment))
    cm = CompareMeans(DescrStatsW(treatment), DescrStatsW(control))
    _, p, df = cm.ttest_ind(usevar="unequal")
    assert abs(res.p_value - p) < 1e-9
    assert res.df == pytest.approx(df, rel=1e-9)
    low, high = cm.tconfint_diff(alpha=0.05, usevar="unequal")
    assert res.ci == pytest.approx((low, high), rel=1e-9)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_proportion_test_is_welch_with_per_arm_variance_p_one_minus_p(alternative):
    c, t = ProportionStats(n=4000, successes=400), ProportionStats(n=3900, successes=441)
    res = compare(c, t, alternative=alternative)
    pc, pt = 0.1, 441 / 3900
    ref = stats.ttest_ind_from_stats(
        pt,
        math.sqrt(pt * (1 - pt)),
        3900,
        pc,
        math.sqrt(pc * (1 - pc)),
        4000,
        equal_var=False,
        alternative=alternative,
    )
    assert abs(res.p_value - ref.pvalue) < 1e-9
    assert res.effect == pytest.approx(pt - pc)


def test_proportion_test_agrees_with_statsmodels_wald_test_for_large_samples():
    c, t = ProportionStats(n=40000, successes=4000), ProportionStats(n=39000, successes=4100)
    res = compare(c, t)
    ref = sm_proportion.test_proportions_2indep(
        4100, 39000, 4000, 40000, method="wald", compare="diff", correction=False
    )
    # Same variance; the t reference with ~79,000 df differs from the normal in the 5th digit.
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-3)
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-9)


def test_proportion_raw_rows_give_the_same_result_as_counts(rng):
    rows_c = (rng.random(3000) < 0.2).astype(int)
    rows_t = (rng.random(3100) < 0.22).astype(int)
    from_rows = compare(ProportionStats.from_values(rows_c), ProportionStats.from_values(rows_t))
    from_counts = compare(ProportionStats(3000, int(rows_c.sum())), ProportionStats(3100, int(rows_t.sum())))
    assert from_rows == from_counts


def test_relative_difference_uses_the_delta_method_variance(two_samples):
    control, treatment = two_samples
    res = compare(MeanStats.from_values(control), MeanStats.from_values(treatment), difference="relative")
    c, t = control.mean(), treatment.mean()
    vc, vt = control.var(ddof=1), treatment.var(ddof=1)
    nc, nt = control.size, treatment.size
    se = math.sqrt(vt / (nt * c**2) + vc * t**2 / (nc * c**4))
    df = (vc / nc + vt / nt) ** 2 / ((vc / nc) ** 2 / (nc - 1) + (vt / nt) ** 2 / (nt - 1))
    assert res.effect == pytest.approx((t - c) / abs(c), rel=1e-12)
    assert res.se == pytest.approx(se, rel=1e-12)
    assert abs(res.p_value - 2 * stats.t.sf(abs(res.effect / se), df)) < 1e-12
    half = stats.t.ppf(0.975, df) * se
    assert res.ci == pytest.approx((res.effect - half, res.effect + half), rel=1e-12)


def test_relative_difference_divides_by_the_absolute_control_mean():
    c = MeanStats.from_values(np.array([-10.0, -12.0, -8.0, -11.0, -9.0]))
    t = MeanStats.from_values(np.array([-5.0, -6.0, -4.0, -5.5, -4.5]))
    res = compare(c, t, difference="relative")
    assert res.effect == pytest.approx((-5.0 - -10.0) / 10.0)


@pytest.mark.parametrize(
    ("control", "treatment", "difference", "message"),
    [
        (
            MeanStats.from_values([1.0, 1.0, 1.0]),
            MeanStats.from_values([1.0, 2.0, 3.0]),
            "absolute",
            "control variance is zero",
        ),
        (
            MeanStats.from_values([1.0, 2.0, 3.0]),
            MeanStats.from_values([5.0, 5.0]),
            "absolute",
            "treatment variance is zero",
        ),
        (
            MeanStats.from_values([-1.0, 1.0, 0.0]),
            MeanStats.from_values([1.0, 2.0, 3.0]),
            "relative",
            "control mean is zero",
        ),
        (MeanStats.from_values([1.0]), MeanStats.from_values([1.0, 2.0, 3.0]), "absolute", "control has n=1"),
        (ProportionStats(100, 0), ProportionStats(100, 3), "absolute", "control variance is zero"),
        (
            RatioStats(3, 1.0, 1.0, 0.0, 0.0, 0.0),
            RatioStats.from_values([1, 2, 3], [1, 1, 2]),
            "absolute",
            "denominator sum is zero",
        ),
    ],
    ids=[
        "zero-var-control",
        "zero-var-treatment",
        "zero-control-mean",
        "n-too-small",
        "no-conversions",
        "ratio-zero-den",
    ],
)
def test_degenerate_data_is_reported_as_an_error_for_that_comparison_not_raised(
    control, treatment, difference, message
):
    res = compare(control, treatment, difference=difference)
    assert res.error is not None and message in res.error
    assert math.isnan(res.p_value) and math.isnan(res.effect)
    assert not res.significant
    assert res.to_dict()["p_value"] is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alpha": 0.0}, "alpha must lie in"),
        ({"alpha": 1.5}, "alpha must lie in"),
        ({"alternative": "bigger"}, "alternative must be one of"),
        ({"difference": "ratio"}, "difference must be one of"),
    ],
)
def test_out_of_range_options_raise_invalid_argument(two_samples, kwargs, message):
    c, t = (MeanStats.from_values(x) for x in two_samples)
    with pytest.raises(InvalidArgument, match=message):
        compare(c, t, **kwargs)


def test_arms_of_different_kinds_are_refused():
    with pytest.raises(InvalidArgument, match="same kind"):
        compare(MeanStats.from_values([1.0, 2.0]), ProportionStats(10, 2))


def test_to_dict_writes_infinite_bounds_as_strings(two_samples):
    c, t = (MeanStats.from_values(x) for x in two_samples)
    d = compare(c, t, alternative="greater").to_dict()
    assert d["ci"][1] == "inf" and isinstance(d["ci"][0], float)
    assert compare(c, t, alternative="less").to_dict()["ci"][0] == "-inf"
