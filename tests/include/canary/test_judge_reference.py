"""The judge's statistics against values computed outside modelgate.

- Rank-sum test, Hodges-Lehmann shift and interval: R 4.2's ``wilcox.test(x, y, conf.int=TRUE)``, printed
  by ``tests/include/canary/reference/wilcox.R`` (run with ``Rscript``; the constants below are its
  output) for three named samples: exact without ties, ties (normal approximation with tie and
  continuity correction), and 60 vs 80 values (normal approximation).
- Newcombe-Wilson interval: Newcombe (1998), Stat Med 17:873-890, Table II, method 10 (4 decimals).
- Fisher's exact test: R's ``fisher.test`` (same script).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from include.canary.judge import JudgeConfig, MetricConfig, compare_metric, judge
from include.canary.ranktest import kth_difference, rank_sum_test
from include.canary.rates import fisher_p, newcombe_interval

SAMPLES = {
    "depression": (
        [0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46],
        [1.15, 0.88, 0.90, 0.74, 1.21],
    ),
    "ties": ([3, 4, 4, 5, 6, 6, 6, 7, 8, 9], [1, 2, 2, 3, 4, 4, 5, 5, 6, 7, 7, 8]),
    "large": (
        list(np.arange(1, 61) * 37 % 101 / 7),
        list(np.arange(1, 81) * 53 % 103 / 7 + 0.3),
    ),
}
INF = math.inf
# name, alternative, conf.level, W, p, low, high, Hodges-Lehmann (median(outer(x, y, "-"))), from wilcox.R
R_WILCOX = [
    (
        "depression",
        "two-sided",
        0.95,
        35,
        0.2544122544122544,
        -0.15000000000000002,
        0.7599999999999999,
        0.305,
    ),
    ("depression", "two-sided", 0.90, 35, 0.2544122544122544, -0.07999999999999996, 0.72, 0.305),
    ("depression", "greater", 0.95, 35, 0.1272061272061272, -0.07999999999999996, INF, 0.305),
    ("depression", "greater", 0.90, 35, 0.1272061272061272, -0.050000000000000044, INF, 0.305),
    ("depression", "less", 0.95, 35, 0.89676989676989671, -INF, 0.72, 0.305),
    ("depression", "less", 0.90, 35, 0.89676989676989671, -INF, 0.7, 0.305),
    ("ties", "two-sided", 0.95, 79.5, 0.20625377679083873, -0.99999999999982425, 3.0000000000003539, 1.0),
    ("ties", "two-sided", 0.90, 79.5, 0.20625377679083873, -6.2844532723141415e-13, 2.9999999999996776, 1.0),
    ("ties", "greater", 0.95, 79.5, 0.10312688839541936, -6.6815519888254534e-13, INF, 1.0),
    ("ties", "greater", 0.90, 79.5, 0.10312688839541936, -5.7708186085158158e-13, INF, 1.0),
    ("ties", "less", 0.95, 79.5, 0.9083160726822519, -INF, 2.999999999999444, 1.0),
    ("ties", "less", 0.90, 79.5, 0.9083160726822519, -INF, 2.0000000000005911, 1.0),
    (
        "large",
        "two-sided",
        0.95,
        2379,
        0.93121158549270222,
        -1.4428571428577468,
        1.5571428571426396,
        -0.014285714285714235,
    ),
    (
        "large",
        "two-sided",
        0.90,
        2379,
        0.93121158549270222,
        -1.1571428571437909,
        1.271428571428421,
        -0.014285714285714235,
    ),
    ("large", "greater", 0.95, 2379, 0.53606750138883308, -1.1571428571438069, INF, -0.014285714285714235),
    ("large", "greater", 0.90, 2379, 0.53606750138883308, -1.0142857142852344, INF, -0.014285714285714235),
    ("large", "less", 0.95, 2379, 0.46560579274635111, -INF, 1.2714285714284401, -0.014285714285714235),
    ("large", "less", 0.90, 2379, 0.46560579274635111, -INF, 0.98571428571343267, -0.014285714285714235),
]


@pytest.mark.parametrize(("name", "alt", "level", "w", "p", "low", "high", "hl"), R_WILCOX)
def test_rank_sum_interval_matches_r_wilcox_test(
    name: str, alt: str, level: float, w: float, p: float, low: float, high: float, hl: float
) -> None:
    x, y = (np.asarray(s, dtype=float) for s in SAMPLES[name])
    r = rank_sum_test(x, y, alt, level)  # type: ignore[arg-type]
    assert r.method == ("exact" if name == "depression" else "normal")
    assert r.statistic == w
    assert r.p_value == pytest.approx(p, abs=1e-9)
    for got, want in ((r.low, low), (r.high, high), (r.estimate, hl)):
        assert got == want if math.isinf(want) else abs(got - want) < 1e-6


def test_large_samples_select_order_statistics_without_sorting_every_pair() -> None:
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=300), np.round(rng.normal(size=200), 1)  # ties inside y
    d = np.sort(np.subtract.outer(x, y).ravel())
    for k in (1, 2, 77, 30_000, 59_999, 60_000):
        assert kth_difference(x, y, k, max_pairs=1000) == d[k - 1]


def test_rank_sum_p_values_agree_with_scipy_on_random_samples() -> None:
    rng = np.random.default_rng(9)
    x, y = rng.exponential(size=120), rng.exponential(size=90) * 1.3
    for alt in ("two-sided", "greater", "less"):
        r = rank_sum_test(x, y, alt)  # type: ignore[arg-type]
        assert r.p_value == pytest.approx(float(stats.mannwhitneyu(x, y, alternative=alt).pvalue), rel=1e-12)


# Newcombe (1998) Table II, method 10: (x1, n1, x2, n2, low, high)
NEWCOMBE = [
    (56, 70, 48, 80, 0.0524, 0.3339),
    (9, 10, 3, 10, 0.1705, 0.8090),
    (6, 7, 2, 7, 0.0582, 0.8062),
    (5, 56, 0, 29, -0.0381, 0.1926),
    (0, 10, 0, 20, -0.1611, 0.2775),
    (0, 10, 0, 10, -0.2775, 0.2775),
    (10, 10, 0, 20, 0.6791, 1.0000),
    (10, 10, 0, 10, 0.6075, 1.0000),
]


@pytest.mark.parametrize(("x1", "n1", "x2", "n2", "low", "high"), NEWCOMBE)
def test_newcombe_interval_matches_the_published_table(
    x1: int, n1: int, x2: int, n2: int, low: float, high: float
) -> None:
    lo, hi = newcombe_interval(x1, n1, x2, n2, 0.95)
    assert (round(lo, 4), round(hi, 4)) == (low, high)


# R fisher.test(matrix(c(x1, n1 - x1, x2, n2 - x2), 2), alternative = "greater" / two-sided)
R_FISHER = [
    (5, 50, 0, 50, 0.02814224721441215, 0.056284494428824293),
    (3, 200, 1, 200, 0.31155659930683111, 0.62311319861366266),
    (12, 300, 4, 300, 0.036464354420360244, 0.07292870884072046),
    (64, 210, 17, 210, 2.8154173743607194e-09, 5.6308347487214198e-09),
]


@pytest.mark.parametrize(("x1", "n1", "x2", "n2", "greater", "two_sided"), R_FISHER)
def test_fisher_p_values_match_r(
    x1: int, n1: int, x2: int, n2: int, greater: float, two_sided: float
) -> None:
    assert fisher_p(x1, n1, x2, n2, "greater") == pytest.approx(greater, rel=1e-9)
    assert fisher_p(x1, n1, x2, n2) == pytest.approx(two_sided, rel=1e-9)


def test_a_handful_of_errors_is_judged_by_the_exact_test() -> None:
    # 5/50 vs 0/50: Fisher one-sided p = 0.028 (R) < 0.05 and the Newcombe lower bound is above 0
    cfg = MetricConfig("error_rate", "rate", min_samples=50)
    r = compare_metric(cfg, np.r_[np.ones(5), np.zeros(45)], np.zeros(50))
    assert r.p_value == pytest.approx(0.02814224721441215, rel=1e-9)
    assert r.classification == "High" and r.failed and r.interval[0] is not None and r.interval[0] > 0


def _mostly_zero() -> tuple[np.ndarray, np.ndarray]:
    """64 of 210 canary values non-zero against 17 of 210 baseline values (the issue's case)."""
    canary = np.r_[np.linspace(1, 10, 64), np.zeros(146)]
    baseline = np.r_[np.linspace(1, 8, 17), np.zeros(193)]
    return canary, baseline


def test_mostly_zero_metric_is_high_by_probability_of_superiority_or_mean_ratio() -> None:
    canary, baseline = _mostly_zero()
    assert canary.mean() / baseline.mean() == pytest.approx(352 / 76.5), "mean 4.6x"
    ref = stats.mannwhitneyu(canary, baseline, alternative="greater")
    shift = compare_metric(MetricConfig("refunds"), canary, baseline)
    assert shift.p_value == pytest.approx(float(ref.pvalue), rel=1e-12) and shift.p_value < 1e-8
    assert shift.effect == 0.0 and shift.interval[0] == 0.0, "both medians and the HL shift are 0"
    assert shift.classification == "Pass", "the shift rule cannot see it: that is why `effect` exists"
    cles = compare_metric(MetricConfig("refunds", effect="cles"), canary, baseline)
    assert cles.cles == pytest.approx(float(ref.statistic) / 210**2) and cles.cles >= 0.56
    assert cles.classification == "High" and cles.failed and cles.thresholds["min_cles"] == 0.56
    ratio = compare_metric(MetricConfig("refunds", effect="mean_ratio", min_mean_ratio=2), canary, baseline)
    assert ratio.classification == "High" and ratio.mean_ratio == pytest.approx(352 / 76.5)
    same = compare_metric(MetricConfig("refunds", effect="cles"), baseline, baseline)
    assert same.classification == "Pass" and same.cles == 0.5


def _critical_conversion(on_no_data: str | None) -> JudgeConfig:
    conv: dict[str, object] = {"kind": "rate", "direction": "decrease", "critical": True, "weight": 30}
    if on_no_data:
        conv["on_no_data"] = on_no_data
    return JudgeConfig.from_dict({"metrics": {"conversion": conv, "error_rate": None, "score": None}})


def test_a_critical_metric_without_enough_data_fails_the_stage() -> None:
    rng = np.random.default_rng(2)
    lat = rng.normal(5, 1, 400)
    canary = {"latency_ms": lat, "conversion": np.r_[np.ones(3), np.zeros(7)]}  # 10 vs 10: below 50
    baseline = {"latency_ms": lat.copy(), "conversion": np.r_[np.ones(4), np.zeros(6)]}
    res = judge(canary, baseline, _critical_conversion(None))
    assert res["score"] == 100.0, "latency passes"
    assert res["decision"] == "rollback" and res["no_data"] == ["conversion"]
    assert "metric conversion has no data and fails the stage" in res["reasons"][0]
    assert "fewer than 50 samples (canary 10, baseline 10)" in res["reasons"][0]
    res = judge(canary, baseline, _critical_conversion("marginal"))
    assert res["decision"] == "marginal" and "conversion has no data, a human decides" in res["reasons"][0]
    res = judge(canary, baseline, _critical_conversion("ignore"))
    assert res["decision"] == "pass"


def test_result_json_carries_estimate_interval_p_value_thresholds_classification_and_reason() -> None:
    rng = np.random.default_rng(4)
    base = rng.normal(5, 1, 200)
    res = judge({"latency_ms": rng.normal(9, 1, 200)}, {"latency_ms": base})
    lat = next(m for m in res["metrics"] if m["name"] == "latency_ms")
    assert lat["classification"] == "High" and lat["interval"][1] is None, "one-sided upper bound: inf"
    tol = max(2.0, 0.5 * float(np.median(base)))  # the default latency tolerance: +2 ms and +50 %
    assert lat["interval"][0] > lat["tolerance"] == pytest.approx(tol)
    assert {"effect", "p_value", "thresholds", "reason", "confidence", "cles", "mean_ratio"} <= set(lat)
    assert lat["thresholds"] == {"effect": "shift", "tolerance": pytest.approx(tol), "alpha": 0.05}
    assert "Hodges-Lehmann shift" in lat["reason"] and "greater" in lat["reason"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"effect": "median"}, "effect must be one of"),
        ({"min_cles": 0.4}, "min_cles must be a number in (0.5, 1]"),
        ({"min_mean_ratio": 1}, "min_mean_ratio must be a number > 1"),
        ({"on_no_data": "panic"}, "on_no_data must be one of"),
    ],
)
def test_bad_effect_settings_are_refused(settings: dict, message: str) -> None:
    from include.canary.errors import InvalidPolicy

    with pytest.raises(InvalidPolicy) as e:
        JudgeConfig.from_dict({"metrics": {"latency_ms": settings}})
    assert message in e.value.message


def test_input_drift_metric_flags_a_shifted_feature_of_the_canarys_inputs() -> None:
    rng = np.random.default_rng(12)
    base = rng.normal(size=(600, 5))
    same = rng.normal(size=(600, 5))
    shifted = same.copy()
    shifted[:, 3] += 0.5
    cfg = JudgeConfig.from_dict(
        {"metrics": {"input_drift": {"kind": "drift", "weight": 10, "critical": True}}}
    )
    res = judge({"input_drift": shifted}, {"input_drift": base}, cfg)
    drift = next(m for m in res["metrics"] if m["name"] == "input_drift")
    assert drift["classification"] == "High" and drift["thresholds"]["drifted"] == ["x3"]
    assert res["decision"] == "rollback" and res["critical_failures"] == ["input_drift"]
    ok = judge({"input_drift": same}, {"input_drift": base}, cfg)
    assert next(m for m in ok["metrics"] if m["name"] == "input_drift")["classification"] == "Pass"
    few = judge({"input_drift": same[:10]}, {"input_drift": base}, cfg)
    assert few["decision"] == "rollback" and few["no_data"][-1] == "input_drift", "critical NoData fails"
