"""The typed step records of registration and regression: XCom round trips and clear errors on bad dicts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from include.errors import ModelgateError
from include.registry import steps as reg
from include.regression import steps as rt
from include.xcom import InvalidXcom, XcomRecord

CHECK = rt.Check("contract", "pass", "same signature", {"breaking": False, "psi": 0.01, "rows": 3})
PREPARED = rt.Prepared("0f3a", rt.Check("inputs", "pass", "suite passed", {"rows": 520}), 520, "champion")

RECORDS: list[XcomRecord] = [
    reg.RegistrationRequest("churn", "churn.onnx", {"git_sha": "abc", "params": {"C": 1.0}}, "1.2.0", None, None),
    reg.StagedModel("churn", "runs:/r1/model", "a" * 64, '{"inputs": []}', "1.0.0", None, None),
    reg.StagedModel("churn", "", "b" * 64, "{}", "1.0.0", "runs:/r1/spec.json", existing_version="3"),
    reg.Registered("churn", "2", "models:/churn/2", "1.1.0", "c" * 64, True),
    reg.AliasAssigned("challenger", "newly registered", "1"),
    reg.AliasAssigned(None, "artifact already registered; aliases unchanged", None),
    rt.Target("churn", "2", "1", False, {"sha256": "d"}, {"sha256": "e"}, {"synthetic": {"rows": 500}}),
    rt.Target("churn", "1", None, True, {"sha256": "d"}, None, {}),
    CHECK,
    PREPARED,
    rt.Prepared("0f3b", rt.Check("inputs", "skipped", "contract failed"), 0, None),
    rt.Scored(rt.Check("outputs", "pass", "ok"), rt.Check("determinism", "pass", "ok", {"max_abs_diff": 0.0})),
    rt.Compared(*(rt.Check(n, "warn", "x", {"p99_ms": 1.5}) for n in ("agreement", "distribution", "quality", "latency"))),
    rt.Decision("fail", ["latency: p99 too high"], "churn", "2", "0f3a", "runs:/0f3a/report/report.html"),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_every_step_record_survives_the_xcom_round_trip_as_plain_json(record: XcomRecord) -> None:
    data = record.to_xcom()
    assert json.loads(json.dumps(data)) == data, "the XCom form is plain JSON"
    assert type(record).from_xcom(json.loads(json.dumps(data))) == record


def test_the_xcom_forms_are_the_dicts_the_tasks_exchanged_before() -> None:
    # nested checks stay the CheckResult dicts the regression pipeline reads
    assert PREPARED.to_xcom() == {
        "mlflow_run_id": "0f3a",
        "inputs": {"name": "inputs", "status": "pass", "reason": "suite passed", "figures": {"rows": 520}},
        "rows": 520,
        "spec_source": "champion",
    }
    assert CHECK.result().to_dict() == CHECK.to_xcom()
    assert reg.Registered("m", "2", "models:/m/2", "1.0.0", "f", False).to_xcom() == {
        "name": "m", "version": "2", "uri": "models:/m/2", "semver": "1.0.0", "sha256": "f", "created": False,
    }


def _without(d: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != key}


BAD: list[tuple[type[XcomRecord], Any, str]] = [
    (reg.StagedModel, _without(RECORDS[1].to_xcom(), "sha256"), "StagedModel.sha256: missing"),
    (reg.Registered, {**RECORDS[3].to_xcom(), "version": 2}, "Registered.version: expected str, got int"),
    (reg.Registered, {**RECORDS[3].to_xcom(), "created": "yes"}, "Registered.created: expected bool, got str"),
    (reg.Registered, {**RECORDS[3].to_xcom(), "path": "/tmp/x"}, "Registered: unknown field(s) ['path']"),
    (reg.RegistrationRequest, ["churn"], "RegistrationRequest: expected a dict, got list"),
    (reg.RegistrationRequest, {**RECORDS[0].to_xcom(), "lineage": "abc"}, "RegistrationRequest.lineage: expected"),
    (rt.Prepared, {**PREPARED.to_xcom(), "rows": True}, "Prepared.rows: expected int, got bool"),
    (rt.Prepared, {**PREPARED.to_xcom(), "inputs": {"name": "inputs", "status": 1, "reason": ""}},
     "Prepared.inputs: Check.status: expected str, got int"),
    (rt.Decision, {**RECORDS[-1].to_xcom(), "reasons": ["a", 3]}, "Decision.reasons[1]: expected str, got int"),
    (rt.Target, _without(RECORDS[6].to_xcom(), "champion"), "Target.champion: missing"),
    (rt.Target, None, "Target: expected a dict, got NoneType"),
]


@pytest.mark.parametrize(("cls", "data", "message"), BAD, ids=[b[2].split(":")[0] + str(i) for i, b in enumerate(BAD)])
def test_a_malformed_xcom_dict_is_refused_naming_the_record_and_field(
    cls: type[XcomRecord], data: Any, message: str
) -> None:
    with pytest.raises(InvalidXcom) as e:
        cls.from_xcom(data)
    assert message in str(e.value)
    assert isinstance(e.value, ModelgateError) and e.value.code == "invalid_xcom"


def test_a_malformed_xcom_dict_fails_the_task_at_once_with_that_message() -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from plugins.task_utils import call

    with pytest.raises(AirflowFailException, match=r"invalid_xcom: Registered.sha256: missing"):
        call(reg.Registered.from_xcom, _without(RECORDS[3].to_xcom(), "sha256"))


def test_decision_failure_message_names_the_version_the_reasons_and_the_report() -> None:
    d = rt.Decision.from_xcom(RECORDS[-1].to_xcom())
    assert not d.passed
    assert d.failure() == (
        "regression verdict fail for models:/churn/2: latency: p99 too high (report: runs:/0f3a/report/report.html)"
    )
