"""Always-valid confidence sequences: GrowthBook's formulas, and p-values consistent with intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from include.abtest import (
    DEFAULT_TUNING_PARAMETER,
    InvalidArgument,
    MeanStats,
    SequentialConfig,
    compare,
    sequential_halfwidth,
    sequential_p_value,
    sequential_rho,
)


def test_default_tuning_parameter_is_5000():
    assert DEFAULT_TUNING_PARAMETER == 5000.0
    assert SequentialConfig().tuning_parameter == 5000.0


def test_rho_follows_the_mixture_formula_with_alpha_doubled_for_one_sided():
    la = math.log(0.05)
    assert sequential_rho(0.05, 5000) == pytest.approx(
        math.sqrt((-2 * la + math.log(-2 * la + 1)) / 5000), rel=1e-14
    )
    l2 = math.log(0.10)
    assert sequential_rho(0.05, 5000, two_sided=False) == pytest.approx(
        math.sqrt((-2 * l2 + math.log(-2 * l2 + 1)) / 5000), rel=1e-14
    )


def test_two_sided_halfwidth_is_the_asymptotic_confidence_sequence_radius():
    se, n, alpha = 0.12, 3000.0, 0.05
    rho = sequential_rho(alpha, 5000)
    s2 = se**2 * n
    expected = math.sqrt(s2) * math.sqrt(
        2 * (n * rho**2 + 1) * math.log(math.sqrt(n * rho**2 + 1) / alpha) / (n * rho) ** 2
    )
    assert float(sequential_halfwidth(se, n, alpha)) == pytest.approx(expected, rel=1e-13)


def test_one_sided_halfwidth_uses_the_one_sided_radius():
    se, n, alpha = 0.12, 3000.0, 0.05
    rho = sequential_rho(alpha, 5000, two_sided=False)
    expected = math.sqrt(
        se**2
        * n
        * 2
        * (n * rho**2 + 1)
        / (n * rho) ** 2
        * math.log(1 + math.sqrt(n * rho**2 + 1) / (2 * alpha))
    )
    assert float(sequential_halfwidth(se, n, alpha, alternative="greater")) == pytest.approx(
        expected, rel=1e-13
    )


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_sequential_p_value_is_below_alpha_exactly_when_the_interval_excludes_zero(rng, alternative):
    est = rng.normal(0, 0.3, 4000)
    se = rng.uniform(0.05, 0.2, 4000)
    n = rng.integers(100, 50_000, 4000).astype(float)
    p = sequential_p_value(est, se, n, 0.05, alternative=alternative)
    hw = sequential_halfwidth(se, n, 0.05, alternative=alternative)
    if alternative == "two-sided":
        excludes = np.abs(est) > hw
    elif alternative == "greater":
        excludes = est - hw > 0
    else:
        excludes = est + hw < 0
    assert np.all((p <= 0.05) == excludes)
    assert np.all((p >= 0) & (p <= 1))
    assert 0 < excludes.sum() < excludes.size


def test_one_sided_p_value_is_the_alpha_at_which_the_bound_touches_zero():
    est, se, n = 0.25, 0.1, 4000.0
    p = float(sequential_p_value(est, se, n, 0.05, alternative="greater"))
    rho = sequential_rho(0.05, 5000, two_sided=False)
    hw_at_p = math.sqrt(
        se**2 * n * 2 * (n * rho**2 + 1) / (n * rho) ** 2 * math.log(1 + math.sqrt(n * rho**2 + 1) / (2 * p))
    )
    assert hw_at_p == pytest.approx(est, rel=1e-10)
    assert float(sequential_p_value(-est, se, n, 0.05, alternative="greater")) == 1.0


def test_sequential_interval_is_wider_than_the_fixed_horizon_interval_at_any_size(rng):
    for n in (50, 500, 5000, 50_000):
        c = MeanStats.from_values(rng.normal(0, 1, n))
        t = MeanStats.from_values(rng.normal(0.1, 1, n))
        fixed = compare(c, t)
        seq = compare(c, t, sequential=SequentialConfig(5000))
        assert seq.effect == fixed.effect and seq.se == fixed.se
        assert seq.ci[1] - seq.ci[0] > fixed.ci[1] - fixed.ci[0]
        assert seq.p_value >= fixed.p_value
        assert seq.sequential_tuning_parameter == 5000.0


def test_tuning_parameter_must_be_positive():
    with pytest.raises(InvalidArgument, match="tuning_parameter must be positive"):
        SequentialConfig(0.0)
    with pytest.raises(InvalidArgument, match="tuning parameter must be positive"):
        sequential_rho(0.05, -1.0)
