"""deploy/prometheus: promtool accepts the config and rules, and each alert fires on the series that should fire it.

``promtool test rules`` evaluates the rules over synthetic series (Prometheus' own evaluator), so a
wrong expression, metric name, label or ``for`` duration fails here. ``.ci/run`` installs Debian's
``prometheus`` package, which carries promtool.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "modelgate.rules.yml"
CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"
REQUIRED = {  # what each alert is for -> a word its name must contain
    "guard trip": "Guard",
    "error-rate burn": "ErrorBudgetBurn",
    "p99 over SLO": "P99",
    "stale replica": "Stale",
    "events dropped": "EventsDropped",
    "DAG run failure": "DagRunFailed",
}


def _promtool() -> str:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool is not installed: apt-get install -y prometheus (.ci/run does this)")
    return exe


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_promtool(), *args], capture_output=True, text=True, timeout=120)


def _alerts() -> list[str]:
    doc = yaml.safe_load(RULES.read_text())
    return [r["alert"] for g in doc["groups"] for r in g["rules"] if "alert" in r]


def test_promtool_accepts_the_rules_and_the_config() -> None:
    res = _run("check", "rules", str(RULES))
    assert res.returncode == 0, res.stdout + res.stderr
    res = _run("check", "config", str(CONFIG))
    assert res.returncode == 0, res.stdout + res.stderr


def test_every_required_alert_exists() -> None:
    names = _alerts()
    for purpose, word in REQUIRED.items():
        assert any(word in n for n in names), f"no alert for {purpose} (a name containing {word!r})"


def _case(series: list[dict[str, str]], at: str, alerts: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": [{"eval_time": at, "alertname": n, "exp_alerts": a} for n, a in alerts.items()],
    }


STALE = {"summary": "router replica r1 serves stale routes"}
GUARD = 'router_guard_trips_total{instance="r0",job="modelgate-router",model="churn",variant="canary"}'
CASES = {
    # the series appears with its first trip (value 1): no earlier sample to compute an increase from
    "guard trip fires at the first sample": _case(
        [{"series": GUARD, "values": "_x5 1x10"}],
        "6m",
        {
            "RouterGuardTripped": [
                {
                    "exp_labels": {"model": "churn", "variant": "canary", "severity": "page"},
                    "exp_annotations": {"summary": "guard cut churn/canary to zero weight"},
                }
            ]
        },
    ),
    "guard quiet without trips": _case(
        [{"series": GUARD.replace("router_guard_trips_total", "router_requests_total"), "values": "0+10x20"}],
        "10m",
        {"RouterGuardTripped": []},
    ),
    "guard trip resolves after 15 quiet minutes": _case(
        [{"series": GUARD, "values": "1x40"}], "30m", {"RouterGuardTripped": []}
    ),
    "error budget burn at 5 % errors": _case(
        [
            {"series": 'router_requests_total{model="churn",variant="v2"}', "values": "0+100x80"},
            {"series": 'router_request_errors_total{model="churn",variant="v2"}', "values": "0+5x80"},
        ],
        "70m",
        {
            "RouterErrorBudgetBurn": [
                {
                    "exp_labels": {"model": "churn", "variant": "v2", "severity": "page"},
                    "exp_annotations": {"summary": "churn/v2 burns the error budget 14.4x too fast"},
                }
            ]
        },
    ),
    "no burn at 0.1 % errors": _case(
        [
            {"series": 'router_requests_total{model="churn",variant="v2"}', "values": "0+1000x80"},
            {"series": 'router_request_errors_total{model="churn",variant="v2"}', "values": "0+1x80"},
        ],
        "70m",
        {"RouterErrorBudgetBurn": []},
    ),
    "p99 over 50 ms": _case(
        [
            {
                "series": 'router_inference_seconds_bucket{model="churn",variant="v2",le="0.01"}',
                "values": "0+10x20",
            },
            {
                "series": 'router_inference_seconds_bucket{model="churn",variant="v2",le="0.1"}',
                "values": "0+100x20",
            },
            {
                "series": 'router_inference_seconds_bucket{model="churn",variant="v2",le="+Inf"}',
                "values": "0+100x20",
            },
        ],
        "15m",
        {
            "RouterP99OverSLO": [
                {
                    "exp_labels": {"model": "churn", "variant": "v2", "severity": "ticket"},
                    "exp_annotations": {"summary": "p99 inference of churn/v2 over 50 ms"},
                }
            ]
        },
    ),
    "stale replica": _case(
        [{"series": 'router_routes_stale{instance="r1",job="modelgate-router"}', "values": "0 0 1 1 1 1"}],
        "5m",
        {
            "RouterReplicaStale": [
                {"exp_labels": {"instance": "r1", "severity": "page"}, "exp_annotations": STALE}
            ]
        },
    ),
    "events dropped": _case(
        [
            {
                "series": 'router_events_dropped_total{instance="r0",job="modelgate-router"}',
                "values": "0 0 0 50 50",
            }
        ],
        "4m",
        {
            "RouterEventsDropped": [
                {
                    "exp_labels": {"instance": "r0", "severity": "ticket"},
                    "exp_annotations": {"summary": "router r0 dropped prediction events"},
                }
            ]
        },
    ),
    "DAG run failed": _case(
        [{"series": 'modelgate_dag_runs{dag_id="canary_promotion",state="failed"}', "values": "0 0 1 1"}],
        "3m",
        {
            "AirflowDagRunFailed": [
                {
                    "exp_labels": {"dag_id": "canary_promotion", "severity": "ticket"},
                    "exp_annotations": {"summary": "a run of DAG canary_promotion failed"},
                }
            ]
        },
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_alert_fires_exactly_when_it_should(name: str, tmp_path: Path) -> None:
    test_file = tmp_path / "test.yml"
    test_file.write_text(
        yaml.safe_dump({"rule_files": [str(RULES)], "evaluation_interval": "1m", "tests": [CASES[name]]})
    )
    res = _run("test", "rules", str(test_file))
    assert res.returncode == 0, res.stdout + res.stderr


def test_a_wrong_expectation_fails(tmp_path: Path) -> None:
    # the harness itself can fail: the stale alert does not fire before its 1 m `for`
    case = _case(
        [{"series": 'router_routes_stale{instance="r1",job="modelgate-router"}', "values": "0 0 1 1 1 1"}],
        "2m",
        {
            "RouterReplicaStale": [
                {"exp_labels": {"instance": "r1", "severity": "page"}, "exp_annotations": STALE}
            ]
        },
    )
    test_file = tmp_path / "test.yml"
    test_file.write_text(
        yaml.safe_dump({"rule_files": [str(RULES)], "evaluation_interval": "1m", "tests": [case]})
    )
    assert _run("test", "rules", str(test_file)).returncode != 0
