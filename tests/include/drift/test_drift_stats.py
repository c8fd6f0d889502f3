"""Drift statistics against scipy and hand computation, and the calibration of the drift alarm by simulation.

Calibration: under no drift, the share of false alarms over 500 independent (reference, current) pairs
must lie within alpha ± 3 Monte Carlo standard errors (``sqrt(alpha (1 - alpha) / 500)``) at n = 100
and at n = 10,000; a 0.3 SD mean shift in one of 20 features at n = 5,000 must be found in >= 90 % of
the runs, and that feature named.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from include.drift.detect import detect
from include.drift.stats import (
    _ks_and_bins,
    _ks_p,
    benjamini_hochberg,
    cauchy_combination,
    feature_drift,
)

PAIRS = 500


def test_ks_and_bins_agree_with_scipy_and_numpy_quantile_bins() -> None:
    rng = np.random.default_rng(1)
    for n, m in ((100, 130), (5000, 7000)):
        x, y = np.round(rng.normal(size=n), 2), np.round(rng.normal(0.05, size=m), 2)  # ties
        ks, r, c = _ks_and_bins(x, y, 10)
        ref = stats.ks_2samp(x, y, method="asymp" if n > 2000 else "auto")
        assert ks == pytest.approx(float(ref.statistic), abs=1e-12)
        assert _ks_p(x, y, ks) == pytest.approx(float(ref.pvalue), rel=1e-9)
        edges = np.unique(np.quantile(np.r_[x, y], np.linspace(0, 1, 11)[1:-1]))
        assert np.array_equal(r, np.bincount(np.searchsorted(edges, x, "right")))
        assert np.array_equal(c, np.bincount(np.searchsorted(edges, y, "right")))


def test_psi_and_js_of_two_level_categorical_match_hand_computation() -> None:
    # reference 80 a / 20 b, current 50 / 50; PSI with 0.5-smoothing, JS in bits vs scipy
    ref = np.array(["a"] * 80 + ["b"] * 20)
    cur = np.array(["a"] * 50 + ["b"] * 50)
    d = feature_drift(ref, cur, categorical=True)
    r = np.array([80.5, 20.5]) / 101
    c = np.array([50.5, 50.5]) / 101
    assert d.psi == pytest.approx(float(((c - r) * np.log(c / r)).sum()), rel=1e-12)
    assert d.js == pytest.approx(jensenshannon([0.8, 0.2], [0.5, 0.5], base=2) ** 2, rel=1e-12)
    assert math.isnan(d.ks) and d.psi_p < 1e-3 and d.js_p < 1e-3
    # the 2x2 table's exact test agrees that this is far from chance
    assert stats.fisher_exact([[80, 20], [50, 50]]).pvalue < 1e-4


def test_benjamini_hochberg_agrees_with_scipy_false_discovery_control() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        p = np.r_[rng.uniform(size=15), rng.uniform(0, 0.01, size=5)]
        expected = stats.false_discovery_control(p) <= 0.05
        assert benjamini_hochberg(list(p), 0.05) == list(expected)


def test_cauchy_combination_of_one_or_equal_p_values_is_that_p_value() -> None:
    assert cauchy_combination([0.03]) == pytest.approx(0.03)
    assert cauchy_combination([0.2, 0.2, 0.2]) == pytest.approx(0.2)
    assert cauchy_combination([1e-20, 0.5]) == pytest.approx(2e-20, rel=1e-6)


def _null_p_values(n: int, features: int, seed: int) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    return [
        [feature_drift(rng.normal(size=n), rng.normal(size=n)).p_value for _ in range(features)]
        for _ in range(PAIRS)
    ]


@pytest.mark.parametrize(("n", "features"), [(100, 3), (10_000, 2)])
def test_false_alarm_rate_under_no_drift_is_alpha_within_monte_carlo_error(n: int, features: int) -> None:
    pairs = _null_p_values(n, features, seed=n)
    for alpha in (0.05, 0.01):
        rate = sum(any(benjamini_hochberg(ps, alpha)) for ps in pairs) / PAIRS
        se = math.sqrt(alpha * (1 - alpha) / PAIRS)
        assert abs(rate - alpha) <= 3 * se, f"n={n} alpha={alpha}: false-alarm rate {rate}"


def test_a_fixed_psi_cut_is_not_calibrated_across_sample_sizes() -> None:
    # why thresholds come from the null: "PSI > 0.1" alarms often at n=100 and never at n=10,000
    rng = np.random.default_rng(8)
    small = np.mean([feature_drift(rng.normal(size=100), rng.normal(size=100)).psi > 0.1 for _ in range(200)])
    big = np.mean(
        [feature_drift(rng.normal(size=10_000), rng.normal(size=10_000)).psi > 0.1 for _ in range(20)]
    )
    assert small > 0.15 and big == 0.0


def test_power_for_a_0_3_sd_shift_in_one_of_20_features_at_n_5000() -> None:
    rng = np.random.default_rng(21)
    runs, found = 30, 0
    names = [f"f{i}" for i in range(20)]
    for _ in range(runs):
        ref = pd.DataFrame(rng.normal(size=(5000, 20)), columns=names)
        cur = pd.DataFrame(rng.normal(size=(5000, 20)), columns=names)
        cur["f7"] += 0.3
        out = detect(ref, cur, alpha=0.01)
        found += out["drift"] and out["features"]["f7"]["drift"]
    assert found / runs >= 0.9
