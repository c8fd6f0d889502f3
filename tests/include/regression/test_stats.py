"""KS, PSI, agreement, AUC and percentiles against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from include.regression import stats


def test_ks_statistic_is_the_largest_gap_between_the_two_ecdfs() -> None:
    # ECDFs of [1,2,3,4] and [3,4,5,6] differ most on [2, 3): 0.5 - 0 = 0.5
    res = stats.ks_two_sample(np.array([1.0, 2, 3, 4]), np.array([3.0, 4, 5, 6]))
    assert res.statistic == pytest.approx(0.5)
    assert 0.0 < res.pvalue < 1.0


def test_ks_ignores_non_finite_scores_and_refuses_an_empty_sample() -> None:
    res = stats.ks_two_sample(np.array([1.0, 2, np.nan]), np.array([1.0, 2, np.inf]))
    assert res.statistic == 0.0
    with pytest.raises(ValueError, match="finite"):
        stats.ks_two_sample(np.array([np.nan]), np.array([1.0]))


def test_psi_matches_the_hand_computed_value_on_median_bins() -> None:
    # two bins split at the reference median 4.5: expected [0.5, 0.5], actual [0.75, 0.25]
    res = stats.psi(np.arange(10.0), np.array([0.0, 0, 0, 9]), bins=2)
    hand = (0.75 - 0.5) * math.log(0.75 / 0.5) + (0.25 - 0.5) * math.log(0.25 / 0.5)
    assert res.psi == pytest.approx(hand)
    assert res.expected == (0.5, 0.5) and res.actual == (0.75, 0.25)
    assert res.edges == (-math.inf, 4.5, math.inf)


def test_psi_of_identical_samples_is_zero_and_an_empty_bin_uses_the_floor() -> None:
    x = np.linspace(0, 1, 101)
    assert stats.psi(x, x).psi == pytest.approx(0.0, abs=1e-12)
    res = stats.psi(np.arange(10.0), np.full(4, 100.0), bins=2)
    e = stats.PSI_EPSILON
    hand = (e - 0.5) * math.log(e / 0.5) + (1 - 0.5) * math.log(1 / 0.5)
    assert res.psi == pytest.approx(hand)


def test_psi_refuses_fewer_than_two_bins() -> None:
    with pytest.raises(ValueError, match="2 bins"):
        stats.psi(np.arange(5.0), np.arange(5.0), bins=1)


def test_auc_counts_ties_half_and_matches_pairs_by_hand() -> None:
    y = np.array([0, 0, 1, 1])
    # positive-negative pairs: (0.35 vs 0.1, 0.4) -> 1 + 0; (0.8 vs 0.1, 0.4) -> 1 + 1: 3/4
    assert stats.roc_auc(y, np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
    assert stats.roc_auc(y, np.array([0.5, 0.5, 0.5, 0.5])) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="both classes"):
        stats.roc_auc(np.array([1, 1]), np.array([0.1, 0.2]))


def test_agreement_and_p99() -> None:
    assert stats.agreement_rate(np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0])) == 0.75
    with pytest.raises(ValueError, match="equal length"):
        stats.agreement_rate(np.array([0]), np.array([0, 1]))
    assert stats.percentile_ms(np.arange(1, 101) / 1000.0, 99) == pytest.approx(99.01)
