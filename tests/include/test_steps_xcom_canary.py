"""The typed step records of the canary DAG: XCom round trips and clear errors on bad dicts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from include.canary import steps as cs
from include.canary.policy import CanaryPolicy
from include.errors import ModelgateError
from include.xcom import InvalidXcom, XcomRecord

POLICY = CanaryPolicy()
PLAN = cs.Plan(
    "churn", "2", POLICY.to_dict(), POLICY.source, POLICY.weights_bp, None, "1", "alice", "## evidence"
)
ROUTED = cs.Routed(
    1, 100, "2026-01-01T00:00:00+00:00", "2026-01-01T00:05:00+00:00", "2026-01-01T00:05:30+00:00"
)
JUDGED = cs.Judged(
    "marginal",
    2,
    None,
    0.75,
    ["score 0.75 between marginal 0.5 and pass 0.9"],
    [],
    ["latency_ms"],
    [{"name": "error_rate", "classification": "Pass", "critical": True, "n_canary": 40}],
    [],
    {"pass_threshold": 0.9},
    500,
    ["a", "b"],
    ["a", "b"],
    {"canary": 3, "baseline": 0},
    "## stage 2",
)
RECORDS: list[XcomRecord] = [
    PLAN,
    cs.Plan(
        "churn", "1", {}, "<defaults>", [100], "version 1 is already the champion of churn", "1", "airflow:x"
    ),
    ROUTED,
    JUDGED,
    cs.Judged("ended", 3, verdict="rolled_back"),
    cs.Outcome("promoted", "2", None, "1"),
    cs.Outcome("rolled_back", "1", "stage 2: error rate"),
    cs.Reconciled("churn", "agree", "2", "2", None),
    cs.Reconciled("iris", "unmanaged", None, None, "iris's champion variant serves a local file"),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_every_canary_record_survives_the_xcom_round_trip_as_plain_json(record: XcomRecord) -> None:
    data = record.to_xcom()
    assert json.loads(json.dumps(data)) == data, "the XCom form is plain JSON"
    assert type(record).from_xcom(json.loads(json.dumps(data))) == record


def test_the_plan_keeps_the_keys_the_approval_templates_read_and_the_policy_round_trips() -> None:
    data = PLAN.to_xcom()
    # approve_start renders ti.xcom_pull(task_ids='prepare')['model'|'version'|'evidence_md']
    assert (data["model"], data["version"], data["evidence_md"]) == ("churn", "2", "## evidence")
    assert CanaryPolicy.from_dict(cs.Plan.from_xcom(data).policy, source=PLAN.policy_source) == POLICY
    assert cs.needs_approval(PLAN) is POLICY.require_approval
    assert cs.needs_approval(cs.Plan.from_xcom({**data, "policy": {"require_approval": True}})) is True
    assert cs.needs_approval(RECORDS[1]) is False  # noop: nothing to approve
    assert cs.plan_or_none(None) is None and cs.plan_or_none(data) == PLAN


def test_a_judged_stage_keeps_the_judge_fields_and_the_bake_sensor_reads_judge_at() -> None:
    assert JUDGED.marginal and not cs.Judged("pass", 1).marginal
    assert JUDGED.to_xcom()["evidence_md"] == "## stage 2"  # approval_i renders it
    assert ROUTED.to_xcom()["judge_at"] == "2026-01-01T00:05:30+00:00"  # bake_i waits for it


def test_only_a_rolled_back_outcome_fails_the_run_with_its_reason() -> None:
    assert (
        cs.failure(cs.Outcome("rolled_back", "1", "stage 2: error rate"))
        == "canary rolled back: stage 2: error rate"
    )
    assert cs.failure(cs.Outcome("promoted", "2", None, "1")) is None
    assert cs.failure(None) is None


def _without(d: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != key}


BAD: list[tuple[type[XcomRecord], Any, str]] = [
    (cs.Plan, _without(PLAN.to_xcom(), "champion"), "Plan.champion: missing"),
    (cs.Plan, {**PLAN.to_xcom(), "weights_bp": [100, "5%"]}, "Plan.weights_bp[1]: expected int, got str"),
    (cs.Plan, {**PLAN.to_xcom(), "plan_path": "/tmp/plan.json"}, "Plan: unknown field(s) ['plan_path']"),
    (cs.Routed, {**ROUTED.to_xcom(), "stage": "1"}, "Routed.stage: expected int, got str"),
    (cs.Routed, _without(ROUTED.to_xcom(), "judge_at"), "Routed.judge_at: missing"),
    (cs.Judged, {**JUDGED.to_xcom(), "score": "high"}, "Judged.score: expected"),
    (cs.Judged, {**JUDGED.to_xcom(), "reasons": "too slow"}, "Judged.reasons: expected a list, got str"),
    (cs.Outcome, ["promoted"], "Outcome: expected a dict, got list"),
    (cs.Outcome, {"verdict": "promoted"}, "Outcome.champion: missing"),
    (cs.Reconciled, {**RECORDS[-2].to_xcom(), "served": 2}, "Reconciled.served: expected"),
]


@pytest.mark.parametrize(
    ("cls", "data", "message"), BAD, ids=[b[2].split(":")[0] + str(i) for i, b in enumerate(BAD)]
)
def test_a_malformed_canary_xcom_dict_is_refused_naming_the_record_and_field(
    cls: type[XcomRecord], data: Any, message: str
) -> None:
    with pytest.raises(InvalidXcom) as e:
        cls.from_xcom(data)
    assert message in str(e.value)
    assert isinstance(e.value, ModelgateError) and e.value.code == "invalid_xcom"


@pytest.mark.parametrize(
    ("conf", "extras", "message"),
    [
        ({"model_name": "churn", "version": "2", "actor": "mallory"}, [], "actor"),
        ({}, [], "conf needs model_name and version (or a regression Asset event)"),
        ({}, [{"model_name": "churn"}], "conf needs model_name and version"),
    ],
)
def test_prepare_refuses_a_conf_actor_or_a_missing_candidate_before_touching_the_registry(
    conf: dict[str, Any], extras: list[dict[str, Any]], message: str
) -> None:
    from include.canary.errors import CanaryStateError

    ctx = cs.Ctx(router=None, actor="alice", run_id="r1")  # type: ignore[arg-type]  # never reached
    with pytest.raises(CanaryStateError, match=message.replace("(", r"\(").replace(")", r"\)")):
        cs.prepare(conf, extras, ctx)
