"""Bayesian view (chance to win, expected loss, priors) and power (MDE and sample size)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats
from statsmodels.stats.power import NormalIndPower

from include.abtest import (
    InvalidArgument,
    MeanStats,
    NormalPrior,
    compare,
    minimum_detectable_effect,
    posterior,
    proportion_variance,
    sample_size_per_arm,
)


def test_chance_to_win_is_normal_cdf_of_estimate_over_se(two_samples):
    c, t = (MeanStats.from_values(x) for x in two_samples)
    for difference in ("absolute", "relative"):
        res = compare(c, t, difference=difference)
        assert res.chance_to_win == pytest.approx(stats.norm.cdf(res.effect / res.se), rel=1e-12)


def test_expected_loss_equals_numerical_integration_of_the_posterior():
    post = posterior(0.03, 0.05)
    loss, _ = integrate.quad(lambda d: -d * stats.norm.pdf(d, 0.03, 0.05), -1, 0)
    gain, _ = integrate.quad(lambda d: d * stats.norm.pdf(d, 0.03, 0.05), 0, 1)
    assert post.expected_loss == pytest.approx(loss, rel=1e-8)
    assert post.expected_loss_control == pytest.approx(gain, rel=1e-8)
    low, high = post.credible_interval(0.95)
    assert (low, high) == pytest.approx((0.03 - 1.959963984540054 * 0.05, 0.03 + 1.959963984540054 * 0.05))


def test_proper_prior_shrinks_the_posterior_by_precision_weighting():
    post = posterior(0.10, 0.05, NormalPrior(mean=0.0, variance=0.05**2))
    # Equal precisions: the posterior mean is halfway, the variance halved.
    assert post.mean == pytest.approx(0.05)
    assert post.sd == pytest.approx(0.05 / math.sqrt(2))
    flat = posterior(0.10, 0.05)
    vague = posterior(0.10, 0.05, NormalPrior(0.0, 1e12))
    assert vague.chance_to_win == pytest.approx(flat.chance_to_win, rel=1e-9)
    assert post.chance_to_win < flat.chance_to_win


def test_compare_passes_the_prior_to_the_bayesian_view(two_samples):
    c, t = (MeanStats.from_values(x) for x in two_samples)
    flat = compare(c, t)
    skeptical = compare(c, t, prior=NormalPrior(0.0, flat.se**2))
    assert skeptical.p_value == flat.p_value
    assert skeptical.chance_to_win == pytest.approx(
        stats.norm.cdf((flat.effect / 2) / (flat.se / math.sqrt(2)))
    )


def test_bad_prior_or_se_is_rejected():
    with pytest.raises(InvalidArgument, match="prior variance must be positive"):
        NormalPrior(0.0, 0.0)
    with pytest.raises(InvalidArgument, match="standard error must be positive"):
        posterior(0.1, 0.0)


@pytest.mark.parametrize("alternative", ["two-sided", "greater"])
def test_mde_matches_statsmodels_normal_power(alternative):
    variance, n = 4.0, 1200
    mde = minimum_detectable_effect(variance, n, alpha=0.05, power=0.8, alternative=alternative)
    sm_alt = "two-sided" if alternative == "two-sided" else "larger"
    d = NormalIndPower().solve_power(nobs1=n, alpha=0.05, power=0.8, ratio=1.0, alternative=sm_alt)
    # statsmodels' two-sided power also counts the far tail; it is negligible at 80% power.
    assert mde == pytest.approx(d * math.sqrt(variance), rel=1e-4)


@pytest.mark.parametrize("sequential", [None, 5000.0])
@pytest.mark.parametrize("baseline", [None, 0.1])
def test_power_round_trip_sample_size_for_the_mde_of_n_is_n(sequential, baseline):
    variance = proportion_variance(0.1)
    for n in (500, 4321, 100_000):
        mde = minimum_detectable_effect(
            variance, n, baseline_mean=baseline, sequential_tuning_parameter=sequential
        )
        assert (
            sample_size_per_arm(
                variance, mde * (1 + 1e-9), baseline_mean=baseline, sequential_tuning_parameter=sequential
            )
            == n
        )
        needed = sample_size_per_arm(
            variance,
            0.01 if baseline is None else 0.1,
            baseline_mean=baseline,
            sequential_tuning_parameter=sequential,
        )
        assert minimum_detectable_effect(
            variance, needed, baseline_mean=baseline, sequential_tuning_parameter=sequential
        ) <= (0.01 if baseline is None else 0.1)
        assert minimum_detectable_effect(
            variance, needed - 1, baseline_mean=baseline, sequential_tuning_parameter=sequential
        ) > (0.01 if baseline is None else 0.1)


def test_sequential_testing_costs_sample_size():
    v = proportion_variance(0.2)
    assert sample_size_per_arm(v, 0.01, sequential_tuning_parameter=5000.0) > sample_size_per_arm(v, 0.01)


def test_mde_is_achieved_in_simulation():
    rng = np.random.default_rng(21)
    n, variance = 400, 1.0
    mde = minimum_detectable_effect(variance, n)
    detected = [
        compare(
            MeanStats.from_values(rng.normal(0, 1, n)), MeanStats.from_values(rng.normal(mde, 1, n))
        ).p_value
        < 0.05
        for _ in range(600)
    ]
    assert 0.75 <= np.mean(detected) <= 0.85


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: minimum_detectable_effect(0.0, 100), "variance must be positive"),
        (lambda: minimum_detectable_effect(1.0, 1), "n_per_arm must be an integer >= 2"),
        (lambda: minimum_detectable_effect(1.0, 100, power=1.0), "power must lie in"),
        (lambda: sample_size_per_arm(1.0, 0.0), "effect must be finite and non-zero"),
        (
            lambda: sample_size_per_arm(1.0, 0.1, baseline_mean=0.0),
            "baseline_mean must be finite and non-zero",
        ),
        (lambda: proportion_variance(1.0), "rate must lie in"),
    ],
)
def test_power_rejects_out_of_range_input(call, message):
    with pytest.raises(InvalidArgument, match=message):
        call()
