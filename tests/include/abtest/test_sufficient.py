"""Sufficient statistics: reduction from raw values, merging, and rejection of impossible sums."""

from __future__ import annotations

import numpy as np
import pytest

from include.abtest import (
    CupedStats,
    InvalidStatistics,
    MeanStats,
    ProportionStats,
    RatioStats,
)


def test_mean_stats_from_values_match_numpy_moments(rng):
    x = rng.normal(3.0, 1.5, 1000)
    s = MeanStats.from_values(x)
    assert s.n == 1000
    assert s.mean == pytest.approx(x.mean(), rel=1e-12)
    assert s.variance == pytest.approx(x.var(ddof=1), rel=1e-10)


def test_merging_partitions_equals_reducing_all_rows_at_once(rng):
    x = rng.normal(5.0, 2.0, 3000)
    parts = np.array_split(x, 7)
    merged = sum(MeanStats.from_values(p) for p in parts)
    whole = MeanStats.from_values(x)
    assert merged.n == whole.n
    assert merged.sum == pytest.approx(whole.sum, rel=1e-12)
    assert merged.sum_squares == pytest.approx(whole.sum_squares, rel=1e-12)
    assert MeanStats.from_values(parts[0]).merge(MeanStats.from_values(parts[1])) == (
        MeanStats.from_values(parts[0]) + MeanStats.from_values(parts[1])
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda x, y: ProportionStats.from_values((x > 0).astype(int)),
        lambda x, y: RatioStats.from_values(x, np.abs(y) + 1),
        lambda x, y: CupedStats.from_values(x, y),
    ],
    ids=["proportion", "ratio", "cuped"],
)
def test_every_kind_merges_field_by_field_like_a_single_reduction(rng, make):
    x, y = rng.normal(size=500), rng.normal(size=500)
    whole = make(x, y)
    merged = make(x[:200], y[:200]) + make(x[200:], y[200:])
    assert type(merged) is type(whole)
    for field in type(whole).__dataclass_fields__:
        assert getattr(merged, field) == pytest.approx(getattr(whole, field), rel=1e-12)


def test_empty_is_the_neutral_element_of_merge(rng):
    s = RatioStats.from_values(rng.normal(size=10), rng.uniform(1, 2, 10))
    assert RatioStats.empty() + s == s
    assert RatioStats.empty().n == 0


def test_merging_different_kinds_is_refused():
    with pytest.raises(TypeError, match="cannot merge MeanStats with ProportionStats"):
        MeanStats(2, 1.0, 1.0).merge(ProportionStats(2, 1))


def test_proportion_variance_is_p_times_one_minus_p():
    s = ProportionStats(n=200, successes=30)
    assert s.mean == 0.15
    assert s.variance == pytest.approx(0.15 * 0.85)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: MeanStats(n=-1, sum=0.0, sum_squares=0.0), "n must be >= 0"),
        (lambda: MeanStats(n=10, sum=100.0, sum_squares=50.0), "variance below zero"),
        (lambda: MeanStats(n=10, sum=float("nan"), sum_squares=50.0), "sum must be finite"),
        (lambda: MeanStats(n=0, sum=1.0, sum_squares=1.0), "n is 0"),
        (lambda: MeanStats(n=2.5, sum=1.0, sum_squares=1.0), "n must be an integer"),
        (lambda: ProportionStats(n=10, successes=11), "exceed n"),
        (lambda: ProportionStats(n=10, successes=-1), "successes must be >= 0"),
        (lambda: RatioStats(10, 10.0, 20.0, 10.0, 20.0, 100.0), "cross_sum is inconsistent"),
        (lambda: CupedStats(10, 10.0, 20.0, 10.0, 5.0, 10.0), "pre_sum_squares gives a variance below zero"),
    ],
    ids=[
        "negative-n",
        "negative-variance",
        "nan-sum",
        "sums-without-units",
        "fractional-n",
        "too-many-successes",
        "negative-successes",
        "impossible-covariance",
        "cuped-negative-pre-variance",
    ],
)
def test_impossible_statistics_are_rejected_with_a_message_naming_the_problem(build, message):
    with pytest.raises(InvalidStatistics, match=message):
        build()


def test_constant_values_give_zero_variance_not_a_rounding_error():
    s = MeanStats.from_values(np.full(1000, 0.1))
    assert s.variance == 0.0


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: MeanStats.from_values([[1.0, 2.0]]), "one-dimensional"),
        (lambda: MeanStats.from_values([1.0, np.inf]), "NaN or infinite"),
        (lambda: ProportionStats.from_values([0, 1, 2]), "0 or 1"),
        (lambda: RatioStats.from_values([1.0, 2.0], [1.0]), "differ in length"),
        (lambda: CupedStats.from_values([1.0, 2.0], [1.0]), "differ in length"),
    ],
)
def test_bad_raw_arrays_are_rejected(build, message):
    with pytest.raises(InvalidStatistics, match=message):
        build()
