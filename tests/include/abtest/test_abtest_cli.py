"""``python -m include.abtest.stats``: JSON in, JSON out, clear errors and exit codes, no tracebacks."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from scipy import stats

from include.abtest import CupedStats, MeanStats, ProportionStats, RatioStats, SequentialConfig, compare
from include.abtest.stats import EXIT_BAD_INPUT, EXIT_NO_TEST, EXIT_OK, run

ROOT = Path(__file__).resolve().parents[3]

MEAN_ARMS = {
    "control": {"n": 1000, "sum": 10_000.0, "sum_squares": 104_000.0},
    "treatment": {"n": 980, "sum": 10_045.0, "sum_squares": 107_500.0},
}


def _cli(payload: str | dict) -> tuple[int, dict, str]:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    proc = subprocess.run(
        [sys.executable, "-m", "include.abtest.stats"],
        input=text,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def test_cli_mean_comparison_equals_the_library_result():
    rc, out, _ = _cli({"metric_type": "mean", **MEAN_ARMS})
    expected = compare(MeanStats(1000, 10_000.0, 104_000.0), MeanStats(980, 10_045.0, 107_500.0))
    assert rc == EXIT_OK
    assert out["error"] is None
    for key in ("control_mean", "treatment_mean", "effect", "se", "p_value", "chance_to_win"):
        assert out[key] == pytest.approx(getattr(expected, key), rel=1e-12)
    assert out["ci"] == pytest.approx(list(expected.ci), rel=1e-12)


def test_cli_one_sided_interval_writes_the_infinite_bound_as_a_string():
    rc, out, _ = _cli({"metric_type": "mean", "alternative": "greater", "alpha": 0.1, **MEAN_ARMS})
    assert rc == EXIT_OK
    assert out["ci"][1] == "inf" and isinstance(out["ci"][0], float)


def test_cli_srm_alone_returns_the_chisquare_p_value():
    rc, out, _ = _cli({"srm": {"counts": [5000, 5210], "weights": [50, 50]}})
    assert rc == EXIT_OK
    assert out["srm_p_value"] == pytest.approx(stats.chisquare([5000, 5210]).pvalue, rel=1e-12)
    assert out["mismatch"] is False


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            {"metric_type": "mean", **MEAN_ARMS, "control": {"n": -5, "sum": 1.0, "sum_squares": 1.0}},
            "control.n: Input should be greater than or equal to 0",
        ),
        (
            {"metric_type": "mean", **MEAN_ARMS, "treatment": {"n": 10, "sum": 100.0, "sum_squares": 10.0}},
            "treatment: sum_squares gives a variance below zero",
        ),
        ({"metric_type": "mean", **MEAN_ARMS, "colour": "red"}, "colour: unknown field"),
        (
            {
                "metric_type": "mean",
                **MEAN_ARMS,
                "control": {"n": 10, "sum": 1.0, "sum_squares": 1.0, "x": 1},
            },
            "control.x: unknown field",
        ),
        (
            {"metric_type": "mean", **MEAN_ARMS, "control": {"n": 1, "sum": 1.0, "sum_squares": 1.0}},
            "control.n: n too small",
        ),
        ('{"metric_type": "mean", ', "invalid JSON"),
    ],
    ids=["negative-n", "negative-variance", "unknown-field", "unknown-arm-field", "n-too-small", "bad-json"],
)
def test_cli_bad_input_gives_a_json_error_and_a_non_zero_exit(payload, message):
    rc, out, _ = _cli(payload)
    assert rc == EXIT_BAD_INPUT
    assert message in out["error"]


def test_cli_zero_variance_reports_the_error_for_the_comparison():
    arms = {**MEAN_ARMS, "control": {"n": 10, "sum": 10.0, "sum_squares": 10.0}}
    rc, out, _ = _cli({"metric_type": "mean", **arms})
    assert rc == EXIT_NO_TEST
    assert "control variance is zero" in out["error"]
    assert out["p_value"] is None and out["control_mean"] == 1.0


# The remaining cases go through the same ``run`` function in-process, to keep the suite fast.


def test_run_proportion_relative_sequential_equals_the_library_result():
    payload = {
        "metric_type": "proportion",
        "difference": "relative",
        "sequential": {"tuning_parameter": 2000},
        "control": {"n": 5000, "sum": 500},
        "treatment": {"n": 5100, "sum": 590},
    }
    out, rc = run(json.dumps(payload))
    expected = compare(
        ProportionStats(5000, 500),
        ProportionStats(5100, 590),
        difference="relative",
        sequential=SequentialConfig(2000),
    )
    assert rc == EXIT_OK
    assert out["p_value"] == pytest.approx(expected.p_value, rel=1e-12)
    assert out["ci"] == pytest.approx(list(expected.ci), rel=1e-12)
    assert out["sequential"] == {"tuning_parameter": 2000.0}


def test_run_ratio_equals_the_library_result():
    c = RatioStats.from_values([3.0, 1.0, 4.0, 1.0, 5.0, 9.0], [1.0, 1.0, 2.0, 1.0, 2.0, 3.0])
    t = RatioStats.from_values([2.0, 7.0, 1.0, 8.0, 2.0, 8.0], [1.0, 2.0, 1.0, 3.0, 1.0, 2.0])

    def arm(s):
        return {
            k: getattr(s, k)
            for k in ("n", "num_sum", "num_sum_squares", "den_sum", "den_sum_squares", "cross_sum")
        }

    out, rc = run(json.dumps({"metric_type": "ratio", "control": arm(c), "treatment": arm(t)}))
    assert rc == EXIT_OK
    assert out["effect"] == pytest.approx(compare(c, t).effect, rel=1e-12)
    assert out["se"] == pytest.approx(compare(c, t).se, rel=1e-12)


def test_run_cuped_reports_theta_and_variance_reduction():
    c = CupedStats.from_values([5.0, 6.0, 7.5, 8.0, 9.0, 9.5], [1.0, 2.0, 3.0, 4.0, 5.0, 5.5])
    t = CupedStats.from_values([6.0, 6.5, 8.5, 9.0, 10.5, 11.0], [1.0, 1.5, 3.0, 3.5, 5.0, 6.0])

    def cov(s):
        return {"pre_sum": s.pre_sum, "pre_sum_squares": s.pre_sum_squares, "cross_sum": s.cross_sum}

    def mean(s):
        return {"n": s.n, "sum": s.sum, "sum_squares": s.sum_squares}

    out, rc = run(
        json.dumps(
            {
                "metric_type": "mean",
                "control": mean(c),
                "treatment": mean(t),
                "cuped": {"control": cov(c), "treatment": cov(t)},
            }
        )
    )
    expected = compare(c, t)
    assert rc == EXIT_OK
    assert out["cuped"]["theta"] == pytest.approx(expected.cuped_theta, rel=1e-12)
    assert out["cuped"]["variance_reduction"] > 0.5
    assert out["effect"] == pytest.approx(expected.effect, rel=1e-12)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "input must be a JSON object"),
        ('{"metric_type": "median", "control": {}, "treatment": {}}', "metric_type: Input should be"),
        (
            '{"metric_type": "mean", "alpha": 1.5, "control": {}, "treatment": {}}',
            "alpha: Input should be less than 1",
        ),
        (
            '{"metric_type": "proportion", "control": {"n": 10, "sum": 11}, "treatment": {"n": 10, "sum": 1}}',
            "control: successes (11) exceed n (10)",
        ),
        (
            '{"metric_type": "mean", "control": {"n": 10, "sum": NaN, "sum_squares": 1}, "treatment": {}}',
            "control.sum: Input should be a finite number",
        ),
        ('{"srm": {"counts": [10, 20], "weights": [1, 1, 1]}}', "differ in length"),
        ('{"srm": {"counts": [10, 20], "weights": [1, 1]}, "alpha": 0.1}', "alpha: unknown field"),
        (
            '{"metric_type": "ratio", "control": {"n": 3, "num_sum": 1, "num_sum_squares": 1, "den_sum": 1, '
            '"den_sum_squares": 1, "cross_sum": 1}, "treatment": {"n": 3, "num_sum": 1, "num_sum_squares": 1, '
            '"den_sum": 1, "den_sum_squares": 1, "cross_sum": 1}, "cuped": {"control": {"pre_sum": 1, '
            '"pre_sum_squares": 1, "cross_sum": 1}, "treatment": {"pre_sum": 1, "pre_sum_squares": 1, "cross_sum": 1}}}',
            "CUPED is supported for mean and proportion metrics, not ratio",
        ),
    ],
    ids=[
        "not-an-object",
        "unknown-metric",
        "alpha-out-of-range",
        "successes-exceed-n",
        "nan",
        "srm-lengths",
        "srm-extra",
        "cuped-ratio",
    ],
)
def test_run_rejects_bad_input_with_a_message_naming_the_field(text, message):
    out, rc = run(text)
    assert rc == EXIT_BAD_INPUT
    assert message in out["error"]


def test_run_never_emits_nan_in_json():
    out, rc = run(
        json.dumps(
            {
                "metric_type": "mean",
                **MEAN_ARMS,
                "difference": "relative",
                "control": {"n": 3, "sum": 0.0, "sum_squares": 2.0},
            }
        )
    )
    assert rc == EXIT_NO_TEST and "control mean is zero" in out["error"]
    text = json.dumps(out, allow_nan=False)
    assert not any(isinstance(v, float) and math.isnan(v) for v in json.loads(text).values())
