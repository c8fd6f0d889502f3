"""Calibration on simulated experiments: false-positive rates at alpha, with and without peeking."""

from __future__ import annotations

import numpy as np

from include.abtest import MeanStats, ProportionStats, compare
from include.abtest.frequentist import two_sample_test

ALPHA = 0.05


def test_aa_false_positive_rate_of_the_welch_test_is_alpha():
    rng = np.random.default_rng(11)
    sims = 1000
    control = rng.lognormal(0.0, 0.5, (sims, 300))
    treatment = rng.lognormal(0.0, 0.5, (sims, 250))
    rejections = [
        compare(MeanStats.from_values(c), MeanStats.from_values(t)).p_value < ALPHA
        for c, t in zip(control, treatment)
    ]
    assert 0.03 <= np.mean(rejections) <= 0.07


def test_aa_false_positive_rate_of_the_proportion_test_is_alpha():
    rng = np.random.default_rng(12)
    sims = 1000
    conv_c = rng.binomial(2000, 0.1, sims)
    conv_t = rng.binomial(2100, 0.1, sims)
    rejections = [
        compare(ProportionStats(2000, int(a)), ProportionStats(2100, int(b)), difference="relative").p_value
        < ALPHA
        for a, b in zip(conv_c, conv_t)
    ]
    assert 0.03 <= np.mean(rejections) <= 0.07


def _daily_looks(rng, sims, looks, per_look, lift=0.0):
    """Cumulative per-look sufficient statistics of both arms, from sums merged day after day."""
    c = rng.normal(1.0, 1.0, (sims, looks, per_look))
    t = rng.normal(1.0 + lift, 1.0, (sims, looks, per_look))
    out = []
    for arm in (c, t):
        sums = np.cumsum(arm.sum(axis=2), axis=1)
        squares = np.cumsum((arm**2).sum(axis=2), axis=1)
        n = per_look * np.arange(1, looks + 1)
        stats = [
            MeanStats(int(n[j]), float(sums[i, j]), float(squares[i, j]))
            for i in range(sims)
            for j in range(looks)
        ]
        mean = np.array([s.mean for s in stats]).reshape(sims, looks)
        var = np.array([s.variance for s in stats]).reshape(sims, looks)
        out.append((mean, var, np.broadcast_to(n, (sims, looks))))
    return out


def test_daily_peeking_inflates_fixed_horizon_errors_but_not_the_confidence_sequence():
    rng = np.random.default_rng(13)
    (mc, vc, nc), (mt, vt, nt) = _daily_looks(rng, sims=1000, looks=20, per_look=50)
    naive = two_sample_test(mc, vc, nc, mt, vt, nt, alpha=ALPHA)
    seq = two_sample_test(mc, vc, nc, mt, vt, nt, alpha=ALPHA, sequential_tuning_parameter=5000.0)
    last_look_fpr = np.mean(naive.p_value[:, -1] < ALPHA)
    naive_fpr = np.mean((naive.p_value < ALPHA).any(axis=1))
    seq_excludes_zero = (seq.ci_low > 0) | (seq.ci_high < 0)
    seq_fpr = np.mean(seq_excludes_zero.any(axis=1))
    assert 0.03 <= last_look_fpr <= 0.07
    assert naive_fpr > 2 * ALPHA
    assert seq_fpr <= ALPHA
    assert np.array_equal(seq_excludes_zero, seq.p_value <= ALPHA)


def test_confidence_sequence_still_detects_a_real_effect_under_peeking():
    rng = np.random.default_rng(14)
    (mc, vc, nc), (mt, vt, nt) = _daily_looks(rng, sims=200, looks=20, per_look=50, lift=0.2)
    seq = two_sample_test(mc, vc, nc, mt, vt, nt, alpha=ALPHA, sequential_tuning_parameter=5000.0)
    detected = (seq.ci_low > 0).any(axis=1)
    assert detected.mean() > 0.8
    # The true effect lies inside the always-valid interval at every look in most runs.
    covered = ((seq.ci_low <= 0.2) & (seq.ci_high >= 0.2)).all(axis=1)
    assert covered.mean() >= 1 - ALPHA
