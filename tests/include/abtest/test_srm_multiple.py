"""Sample-ratio mismatch against scipy's chisquare; Holm and BH against statsmodels."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from include.abtest import (
    SRM_THRESHOLD,
    InvalidArgument,
    InvalidStatistics,
    adjust_p_values,
    benjamini_hochberg,
    holm,
    srm_test,
)


def test_srm_p_value_equals_scipy_chisquare_against_normalised_weights():
    counts, weights = [5120, 4880, 10100], [25, 25, 50]
    res = srm_test(counts, weights)
    ref = stats.chisquare(counts, [20100 * 0.25, 20100 * 0.25, 20100 * 0.5])
    assert abs(res.p_value - ref.pvalue) < 1e-12
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert res.expected == pytest.approx((5025.0, 5025.0, 10050.0))


def test_srm_flags_a_broken_split_as_invalid_and_passes_a_fair_one():
    assert SRM_THRESHOLD == 0.001
    broken = srm_test([10_000, 10_600], [0.5, 0.5])
    assert broken.p_value < 0.001 and broken.mismatch and not broken.valid
    fair = srm_test([10_000, 10_050], [1, 1])
    assert fair.valid and not fair.mismatch


def test_srm_false_alarm_rate_on_correct_splits_is_about_the_threshold():
    rng = np.random.default_rng(3)
    counts = rng.multinomial(20_000, [0.2, 0.3, 0.5], size=1000)
    flagged = sum(srm_test(list(map(int, c)), [2, 3, 5]).mismatch for c in counts)
    assert flagged <= 5  # expected 1 of 1000 at p < 0.001


@pytest.mark.parametrize(
    ("counts", "weights", "error", "message"),
    [
        ([10, 20], [1], InvalidArgument, "differ in length"),
        ([10], [1], InvalidArgument, "at least two variants"),
        ([10, -1], [1, 1], InvalidStatistics, r"counts\[1\] must be a non-negative integer"),
        ([0, 0], [1, 1], InvalidStatistics, "all counts are zero"),
        ([10, 10], [1, 0], InvalidArgument, r"weights\[1\] must be a positive number"),
    ],
)
def test_srm_rejects_bad_input_naming_the_problem(counts, weights, error, message):
    with pytest.raises(error, match=message):
        srm_test(counts, weights)


def _p_values():
    rng = np.random.default_rng(5)
    p = np.concatenate([rng.uniform(0, 0.02, 6), rng.uniform(0, 1, 14), [0.01, 0.01, 0.5]])
    rng.shuffle(p)
    return p


def test_holm_matches_statsmodels_including_ties():
    p = _p_values()
    res = holm(p, alpha=0.05)
    reject, adjusted, _, _ = multipletests(p, alpha=0.05, method="holm")
    np.testing.assert_allclose(res.adjusted, adjusted, rtol=1e-12, atol=1e-15)
    assert list(res.reject) == list(reject)


def test_benjamini_hochberg_matches_statsmodels_including_ties():
    p = _p_values()
    res = benjamini_hochberg(p, alpha=0.1)
    reject, adjusted, _, _ = multipletests(p, alpha=0.1, method="fdr_bh")
    np.testing.assert_allclose(res.adjusted, adjusted, rtol=1e-12, atol=1e-15)
    assert list(res.reject) == list(reject)
    assert sum(res.reject) >= sum(holm(p, alpha=0.1).reject)


def test_adjust_p_values_dispatches_and_rejects_bad_input():
    assert adjust_p_values([0.01, 0.04], "bh").method == "bh"
    assert adjust_p_values([0.01, 0.04], "holm").adjusted == pytest.approx((0.02, 0.04))
    with pytest.raises(InvalidArgument, match="method must be one of"):
        adjust_p_values([0.01], "bonferroni")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=r"p_values\[1\] must lie in \[0, 1\]"):
        holm([0.01, float("nan")])
