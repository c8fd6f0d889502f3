"""The canary judge against hand-computed cases and against scipy on raw samples."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from include.canary.errors import InvalidPolicy
from include.canary.judge import (
    DEFAULT_METRICS,
    JudgeConfig,
    MetricConfig,
    compare_metric,
    judge,
)


def test_rank_sum_on_a_tiny_sample_gives_the_exact_hand_computed_p_value() -> None:
    # canary 1,2,3 below baseline 4,5,6: U = 0; exact P(U <= 0) = 1 / C(6, 3) = 1/20, two-sided 0.1
    cfg = MetricConfig("latency_ms", direction="either", min_samples=3, abs_tolerance=0.5)
    r = compare_metric(cfg, [1, 2, 3], [4, 5, 6], alpha=0.05)
    assert r.interval == [-5.0, -1.0] and r.alternative == "two-sided"
    assert r.statistic == 0.0 and r.p_value == pytest.approx(0.1)
    assert r.effect == pytest.approx(-3.0), "median of the 9 pairwise differences -5..-1"
    assert r.classification == "Pass", (
        "p = 0.1: the exact interval [-5, -1] is only a 90 % one (R warns the level is not achievable)"
    )
    r = compare_metric(cfg, [1, 2, 3], [4, 5, 6], alpha=0.2)
    assert r.classification == "Low" and r.failed, "direction 'either': a drop fails too"
    r = compare_metric(MetricConfig("latency_ms", min_samples=3), [1, 2, 3], [4, 5, 6], alpha=0.2)
    assert r.alternative == "greater" and r.p_value == pytest.approx(1.0), "one-sided: P(U >= 0) = 1"
    assert r.classification == "Pass" and not r.failed, "lower latency is not a failure"


def test_continuous_metric_agrees_with_scipy_on_raw_samples_and_fails_upwards() -> None:
    rng = np.random.default_rng(7)
    baseline = rng.lognormal(mean=0.0, sigma=0.3, size=400) * 10
    canary = rng.lognormal(mean=0.0, sigma=0.3, size=300) * 20
    cfg = MetricConfig("latency_ms", direction="increase", abs_tolerance=2.0, rel_tolerance=0.5)
    r = compare_metric(cfg, canary, baseline)
    ref = stats.mannwhitneyu(canary, baseline, alternative="greater")  # one-sided: increase is bad
    assert r.p_value == pytest.approx(float(ref.pvalue), rel=1e-12)
    assert r.statistic == pytest.approx(float(ref.statistic))
    assert r.cles == pytest.approx(float(ref.statistic) / (300 * 400))
    assert r.effect == pytest.approx(float(np.median(np.subtract.outer(canary, baseline))))
    assert r.tolerance == pytest.approx(max(2.0, 0.5 * float(np.median(baseline))))
    assert r.classification == "High" and r.failed
    assert r.canary["p99"] == pytest.approx(float(np.quantile(canary, 0.99)))


def test_significant_but_small_effect_passes_within_tolerance() -> None:
    rng = np.random.default_rng(3)
    baseline = rng.normal(10.0, 0.5, size=5000)
    canary = rng.normal(10.3, 0.5, size=5000)  # +3 %: significant with 5000 samples, under the 50 % tolerance
    r = compare_metric(MetricConfig("latency_ms", rel_tolerance=0.5), canary, baseline)
    assert r.p_value is not None and r.p_value < 1e-6
    assert r.classification == "Pass" and not r.failed


def test_rate_metric_uses_fisher_and_the_newcombe_interval_on_zero_one_samples() -> None:
    canary = np.r_[np.ones(10), np.zeros(90)]
    baseline = np.r_[np.ones(5), np.zeros(95)]
    r = compare_metric(MetricConfig("error_rate", "rate", abs_tolerance=0.01), canary, baseline, alpha=0.2)
    ref = stats.fisher_exact([[10, 90], [5, 95]], alternative="greater")
    assert r.p_value == pytest.approx(float(ref.pvalue), rel=1e-12) and r.p_value < 0.2
    assert r.interval[0] is not None and r.interval[0] > 0.01 and r.interval[1] == math.inf
    assert r.effect == pytest.approx(0.05) and r.classification == "High" and r.failed
    with pytest.raises(InvalidPolicy, match="samples must be 0 or 1"):
        compare_metric(MetricConfig("error_rate", "rate", min_samples=1), [0.5], [0])


def test_too_few_samples_is_nodata_and_leaves_the_score_denominator() -> None:
    rng = np.random.default_rng(0)
    base = {"error_rate": np.zeros(500), "latency_ms": rng.normal(5, 1, 500), "score": rng.random(500)}
    canary = {"error_rate": np.zeros(500), "latency_ms": rng.normal(5, 1, 500) + 20, "score": rng.random(10)}
    res = judge(canary, base)
    by = {m["name"]: m for m in res["metrics"]}
    assert by["score"]["classification"] == "NoData" and "fewer than 50" in by["score"]["reason"]
    assert by["latency_ms"]["classification"] == "High"
    # error_rate (40) passes, latency (35) fails, score has no data: 100 * 40 / 75
    assert res["score"] == pytest.approx(round(100 * 40 / 75, 2))
    assert res["decision"] == "rollback", "53.33 is below the marginal threshold 75"


def test_no_data_at_all_gives_the_on_no_data_decision() -> None:
    res = judge({}, {"latency_ms": [1.0] * 100})
    assert res["score"] is None and res["decision"] == "rollback", "critical error_rate without data fails"
    assert res["no_data"] == ["error_rate", "latency_ms", "score"]
    lenient = JudgeConfig.from_dict({"metrics": {"error_rate": {"on_no_data": "ignore"}}})
    res = judge({}, {"latency_ms": [1.0] * 100}, lenient)
    assert res["score"] is None and res["decision"] == "marginal"
    res = judge({}, {}, JudgeConfig(metrics=lenient.metrics, on_no_data="rollback"))
    assert res["decision"] == "rollback" and "no metric had enough data" in res["reasons"][0]


def test_score_bands_decide_pass_marginal_and_rollback() -> None:
    rng = np.random.default_rng(11)
    good = {"error_rate": np.zeros(300), "latency_ms": rng.normal(5, 1, 300), "score": rng.beta(2, 5, 300)}
    same = {k: v.copy() for k, v in good.items()}
    assert judge(same, good)["decision"] == "pass" and judge(same, good)["score"] == 100.0
    shifted = dict(same, score=np.clip(good["score"] + 0.4, 0, 1))  # score (25) fails: 75
    res = judge(shifted, good)
    assert (res["score"], res["decision"]) == (75.0, "marginal")
    slow = dict(same, latency_ms=good["latency_ms"] + 30)  # latency (35) fails: 65
    res = judge(slow, good)
    assert (res["score"], res["decision"]) == (65.0, "rollback")


def test_a_failed_critical_metric_rolls_back_whatever_the_score() -> None:
    cfg = JudgeConfig.from_dict({"metrics": {"error_rate": {"weight": 1}, "latency_ms": {"weight": 99}}})
    base = {"error_rate": np.zeros(1000), "latency_ms": np.full(1000, 5.0)}
    canary = {"error_rate": np.r_[np.ones(100), np.zeros(900)], "latency_ms": np.full(1000, 5.0)}
    res = judge(canary, base, cfg)
    assert res["score"] == pytest.approx(99.0) and res["score"] >= cfg.pass_threshold
    assert res["decision"] == "rollback" and res["critical_failures"] == ["error_rate"]
    assert "critical metric error_rate failed" in res["reasons"][0]


def test_a_guard_trip_rolls_back_and_is_kept_in_the_result() -> None:
    base = {"error_rate": np.zeros(100)}
    ev = [{"ts": 1.0, "model": "churn", "variant": "canary", "reason": "error rate 0.300 > 0.05"}]
    res = judge(base, base, guard_events=ev)
    assert res["decision"] == "rollback" and res["guard_events"] == ev
    assert "router guard cut the canary: error rate 0.300 > 0.05" in res["reasons"]


def test_result_is_strict_json_with_every_figure() -> None:
    res = judge(
        {"latency_ms": [1.0] * 60, "score": [0.5] * 60}, {"latency_ms": [1.0] * 60, "score": [0.5] * 60}
    )
    text = json.dumps(res, allow_nan=False)
    back = json.loads(text)
    lat = next(m for m in back["metrics"] if m["name"] == "latency_ms")
    assert lat["p_value"] == 1.0, "identical samples: no evidence of a difference"
    assert {"effect", "tolerance", "statistic", "canary", "baseline", "n_canary"} <= set(lat)
    assert back["config"]["pass_threshold"] == 95.0 and len(back["config"]["metrics"]) == 3


def test_config_from_policy_section_updates_adds_and_drops_metrics() -> None:
    cfg = JudgeConfig.from_dict(
        {
            "pass_threshold": 90,
            "metrics": {"score": None, "latency_ms": {"rel_tolerance": 0.2}, "conversion": {"kind": "rate"}},
        }
    )
    names = [m.name for m in cfg.metrics]
    assert names == ["error_rate", "latency_ms", "conversion"]
    assert (
        cfg.metrics[1].rel_tolerance == 0.2
        and cfg.metrics[1].abs_tolerance == DEFAULT_METRICS[1].abs_tolerance
    )
    assert cfg.pass_threshold == 90


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"passs_threshold": 1}, "unknown keys ['passs_threshold']"),
        ({"pass_threshold": 50, "marginal_threshold": 60}, "marginal_threshold <= pass_threshold"),
        ({"metrics": {"latency_ms": {"weight": -1}}}, "weight must be a non-negative number"),
        ({"metrics": {"latency_ms": {"direction": "up"}}}, "direction must be one of"),
        ({"metrics": {"latency_ms": {"tolerance": 1}}}, "unknown keys ['tolerance']"),
        ({"alpha": 2}, "alpha must be between 0 and 1"),
    ],
)
def test_bad_judge_settings_are_refused_with_the_problem_named(section: dict, message: str) -> None:
    with pytest.raises(InvalidPolicy) as e:
        JudgeConfig.from_dict(section)
    assert message in e.value.message


def test_outcome_metric_given_as_arrays_is_judged_like_any_rate() -> None:
    cfg = JudgeConfig.from_dict(
        {
            "metrics": {
                "conversion": {"kind": "rate", "direction": "decrease", "abs_tolerance": 0.02, "weight": 10}
            }
        }
    )
    base = {"conversion": np.r_[np.ones(300), np.zeros(700)]}
    canary = {"conversion": np.r_[np.ones(200), np.zeros(800)]}
    res = judge(canary, base, cfg)
    conv = next(m for m in res["metrics"] if m["name"] == "conversion")
    assert conv["classification"] == "Low" and conv["failed"]
    assert math.isclose(conv["effect"], -0.1)
    assert res["score"] == 0.0 and res["decision"] == "rollback"
