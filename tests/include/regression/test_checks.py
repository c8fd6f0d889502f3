"""Contract, determinism, latency, quality, drift excuse and verdict on hand-built cases."""

from __future__ import annotations

import json

import numpy as np
import pytest

from include.regression import checks as ck
from include.regression.policy import Policy
from include.regression.scoring import Predictions


def _sig(width: int | None = 30, prob_dtype: str = "float32", extra_output: bool = False) -> str:
    outputs = [
        {"name": "label", "dtype": "int64", "shape": [None]},
        {"name": "probabilities", "dtype": prob_dtype, "shape": [None, 2]},
    ]
    if extra_output:
        outputs.append({"name": "logits", "dtype": "float32", "shape": [None, 2]})
    return json.dumps(
        {"inputs": [{"name": "input", "dtype": "float32", "shape": [None, width]}], "outputs": outputs}
    )


def test_contract_accepts_same_signature_added_output_and_widened_axis(policy: Policy) -> None:
    for new in (_sig(), _sig(extra_output=True), _sig(width=None)):
        res = ck.check_contract(_sig(), new, "1.0.0", "1.1.0", policy)
        assert res.status == "pass" and res.figures["breaking"] is False, res.reason


def test_contract_fails_a_breaking_change_without_a_major_bump_and_names_it(policy: Policy) -> None:
    res = ck.check_contract(_sig(), _sig(width=29, prob_dtype="float64"), "1.0.0", "1.1.0", policy)
    assert res.status == "fail"
    assert "without a major semver bump (1.0.0 -> 1.1.0)" in res.reason
    assert "input 'input' changed shape [None, 30] -> [None, 29]" in res.reason
    assert "output 'probabilities' changed type float32 -> float64" in res.reason


def test_contract_passes_a_breaking_change_declared_by_a_major_bump_and_says_so(policy: Policy) -> None:
    res = ck.check_contract(_sig(), _sig(width=29), "1.3.0", "2.0.0", policy)
    assert res.status == "pass" and res.figures["breaking"] is True and res.figures["major_bump"] is True
    assert (
        "declared by a major bump" in res.reason and "comparisons with the champion are skipped" in res.reason
    )


def test_contract_with_an_unparseable_semver_fails(policy: Policy) -> None:
    res = ck.check_contract(_sig(), _sig(width=29), "1.0.0", "", policy)
    assert res.status == "fail" and "invalid semver" in res.reason


def _pred(p1: list[float], labels: list[int] | None = None) -> Predictions:
    p = np.array(p1, dtype=np.float64)
    lab = np.array(labels if labels is not None else (p >= 0.5).astype(int))
    return Predictions(lab, np.column_stack([1 - p, p]))


def test_determinism_passes_identical_runs_and_fails_any_difference(policy: Policy) -> None:
    a = _pred([0.1, np.nan, 0.9])
    assert ck.check_determinism(a, _pred([0.1, np.nan, 0.9]), policy).status == "pass"
    res = ck.check_determinism(a, _pred([0.1, np.nan, 0.9 + 1e-7]), policy)
    assert res.status == "fail" and res.figures["max_abs_diff"] == pytest.approx(1e-7)


def test_latency_budget_is_the_ratio_times_champion_p99_with_a_floor() -> None:
    p = Policy.from_dict({"latency": {"max_p99_ratio": 2.0, "min_budget_ms": 1.0}})
    fig = {"champion_p50_ms": 1.0, "challenger_p50_ms": 1.0, "champion_p99_ms": 3.0}
    assert ck.check_latency({**fig, "challenger_p99_ms": 5.9}, p).status == "pass"
    over = ck.check_latency({**fig, "challenger_p99_ms": 6.1}, p)
    assert over.status == "fail" and over.figures["budget_ms"] == 6.0
    tiny = {
        "champion_p50_ms": 0.01,
        "challenger_p50_ms": 0.5,
        "champion_p99_ms": 0.02,
        "challenger_p99_ms": 0.9,
    }
    assert ck.check_latency(tiny, p).status == "pass", "below the floor the ratio does not apply"


def test_quality_fails_a_worse_challenger_and_non_finite_scores(policy: Policy) -> None:
    y = np.array([0, 0, 1, 1])
    good = _pred([0.1, 0.2, 0.8, 0.9])
    worse = _pred([0.1, 0.9, 0.2, 0.8], [0, 1, 0, 1])
    res = ck.check_quality(good, worse, y, policy)
    assert res.status == "fail" and res.figures["auc_delta"] == pytest.approx(0.5 - 1.0)
    assert "AUC drops by 0.5000" in res.reason and "accuracy drops by 0.5000" in res.reason
    nan = ck.check_quality(good, _pred([0.1, np.nan, 0.8, 0.9]), y, policy)
    assert nan.status == "fail" and "1 holdout rows get non-finite probabilities" in nan.reason
    same = ck.check_quality(good, good, y, policy)
    assert same.status == "pass" and same.figures["not_worse"] is True


def test_drift_failures_become_warnings_only_when_the_holdout_shows_the_challenger_not_worse(
    policy: Policy,
) -> None:
    drift = [ck.CheckResult("agreement", "fail", "x"), ck.CheckResult("distribution", "fail", "y")]
    ok_quality = ck.CheckResult("quality", "pass", "z", {"not_worse": True})
    excused = ck.excuse_drift([*drift, ok_quality], policy)
    assert [r.status for r in excused] == ["warn", "warn", "pass"]
    assert ck.verdict(excused) == ("pass", [])
    no_holdout = ck.excuse_drift([*drift, ck.skipped("quality", "none")], policy)
    verdict, reasons = ck.verdict(no_holdout)
    assert verdict == "fail" and reasons == ["agreement: x", "distribution: y"]
    strict = Policy.from_dict({"distribution": {"drift_excused_by_better_quality": False}})
    assert ck.verdict(ck.excuse_drift([*drift, ok_quality], strict))[0] == "fail"


def test_distribution_check_holds_ks_and_psi_to_the_policy(policy: Policy) -> None:
    rng = np.random.default_rng(0)
    a = _pred(list(rng.uniform(0, 1, 2000)))
    assert ck.check_distribution(a, a, policy).status == "pass"
    shifted = _pred(list(np.clip(rng.uniform(0, 1, 2000) + 0.3, 0, 1)))
    res = ck.check_distribution(a, shifted, policy)
    assert res.status == "fail" and res.figures["ks"] > 0.25 and res.figures["psi"] > 0.1
