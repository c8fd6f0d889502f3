"""Consent end to end (issue 17): header, OIP v2 ``parameters.consent``, deployment default, and events.

Parsing and the default run in-process against ``create_app``; the acceptance test sends traffic from
1,000 units (10 % without consent) through a real router process, reads every event file it wrote,
and runs the A/B reduction and report over them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.dataset as ds
import pytest
from conftest import two_variants


def read_events(root: Path) -> list[dict]:
    return ds.dataset(str(root), format="parquet", partitioning="hive").to_table().to_pylist()


def oip(row: list[float], **params: object) -> dict:
    body: dict = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": row}]}
    if params:
        body["parameters"] = params
    return body


@pytest.fixture
def routes(models):
    return two_variants(models["a"], models["b"], canary_bp=5000)


def test_consent_comes_from_header_or_parameters_and_defaults_to_deny(inproc_factory, routes, tmp_path):
    r = inproc_factory(routes, events_enabled=True, events_input_sample=1.0)
    cases = {  # request id -> (headers, parameters, expected consent)
        "h-true": ({"X-Consent": "true"}, {}, True),
        "h-yes": ({"X-Consent": "YES"}, {}, True),
        "h-false": ({"X-Consent": "0"}, {}, False),
        "p-true": ({}, {"consent": True}, True),
        "p-false": ({}, {"consent": False}, False),
        "both-true": ({"X-Consent": "1"}, {"consent": True}, True),
        "none": ({}, {}, False),  # ROUTER_CONSENT_DEFAULT is deny
    }
    with r.client() as c:
        for rid, (headers, params, _) in cases.items():
            resp = c.post(
                "/v2/models/churn/infer",
                json=oip([0.1, 0.2, 0.3, 0.4], **params),
                headers={**headers, "X-Unit-Id": f"unit-{rid}", "X-Request-Id": rid},
            )
            assert resp.status_code == 200, resp.text  # answered whatever the consent
        bad = [
            ({"X-Consent": "maybe"}, {}, "X-Consent must be one of"),
            ({}, {"consent": "true"}, "parameters.consent must be a boolean"),
            ({"X-Consent": "true"}, {"consent": False}, "disagree"),
        ]
        for headers, params, msg in bad:
            resp = c.post("/v2/models/churn/infer", json=oip([0.1, 0.2, 0.3, 0.4], **params), headers=headers)
            assert resp.status_code == 400 and msg in resp.json()["error"], resp.text
            assert resp.json()["code"] == "bad_consent"
        nulled = oip([0.1, 0.2, 0.3, 0.4])
        nulled["parameters"] = None  # some clients send JSON null: no consent said, the default applies
        resp = c.post(
            "/v2/models/churn/infer", json=nulled, headers={"X-Consent": "true", "X-Request-Id": "null-p"}
        )
        assert resp.status_code == 200, resp.text
        # MLflow's protocol has no parameters: the header or the default decide
        resp = c.post("/invocations", json={"inputs": [[0.1, 0.2, 0.3, 0.4]]}, headers={"X-Unit-Id": "u-ml"})
        assert resp.status_code == 200
    r.close()
    events = {e["request_id"]: e for e in read_events(tmp_path / "inproc" / "events")}
    for rid, (_, _, expected) in cases.items():
        e = events[rid]
        assert e["consent"] is expected, rid
        assert e["unit_id"] == (f"unit-{rid}" if expected else None), rid
        assert (e["inputs"] is not None) is expected, rid  # sample 1.0: every consenting request sampled
    assert events.pop("null-p")["consent"] is True
    ml = [e for e in events.values() if e["request_id"] not in cases]
    assert len(ml) == 1 and ml[0]["consent"] is False and ml[0]["unit_id"] is None


def test_a_deployment_may_default_to_consent(inproc_factory, routes, tmp_path):
    r = inproc_factory(routes, events_enabled=True, consent_default=True)
    with r.client() as c:
        assert (
            c.post("/v2/models/churn/infer", json=oip([0.0] * 4), headers={"X-Unit-Id": "u1"}).status_code
            == 200
        )
        resp = c.post(
            "/v2/models/churn/infer", json=oip([0.0] * 4), headers={"X-Unit-Id": "u2", "X-Consent": "no"}
        )
        assert resp.status_code == 200
    r.close()
    by_unit = {e["unit_id"]: e["consent"] for e in read_events(tmp_path / "inproc" / "events")}
    assert by_unit == {"u1": True, None: False}


def _string_cells(rows: list[dict]) -> list[str]:
    return [str(v) for row in rows for v in row.values() if v is not None]


def test_traffic_of_1000_units_leaves_no_trace_of_those_without_consent(router_factory, models, tmp_path):
    """Acceptance: 1,000 units, 10 % without consent, through a real router; files and A/B report."""
    from include.abtest.analysis import analyse_window
    from include.abtest.experiment import parse_experiment
    from include.abtest.reduce import reduce_window
    from include.abtest.report import render_html

    r = router_factory(
        two_variants(models["a"], models["b"], canary_bp=5000),
        extra_env={"ROUTER_EVENTS_INPUT_SAMPLE": "1.0", "ROUTER_EVENTS_FLUSH_SECONDS": "0.2"},
    )
    start = datetime.now(UTC) - timedelta(minutes=5)
    units = [f"person-{k:04d}" for k in range(1000)]
    refusing = {u for k, u in enumerate(units) if k % 10 == 3}  # 100 units, 10 %
    marker = {u: 7000.0 + k for k, u in enumerate(units) if u in refusing}  # inputs only they send
    sent_refusing = 0
    with r.client() as c:
        for k, u in enumerate(units):
            for j in range(2):
                if u in refusing:
                    row = [marker[u], 1.5, -2.25, float(j)]
                    # half say so in the header, half in the OIP parameters
                    headers = {"X-Unit-Id": u, "X-Consent": "false"} if k % 2 else {"X-Unit-Id": u}
                    body = oip(row) if k % 2 else oip(row, consent=False)
                    sent_refusing += 1
                else:
                    headers = {"X-Unit-Id": u, "X-Consent": "true"}
                    body = oip([k / 1000, 0.5, -0.5, float(j)])
                resp = c.post("/v2/models/churn/infer", json=body, headers=headers)
                assert resp.status_code == 200, resp.text
    assert r.stop() == 0
    files = sorted(r.events_root.rglob("*.parquet"))
    assert files
    rows = read_events(r.events_root)
    primary = [e for e in rows if not e["shadow"]]
    assert len(primary) == 2000
    assert sum(1 for e in primary if not e["consent"]) == sent_refusing == 200
    cells = _string_cells(rows)
    leaked = [u for u in refusing if any(u in cell for cell in cells)]
    assert not leaked, f"unit ids without consent in event files: {leaked[:5]}"
    for e in rows:
        if e["inputs"] is not None:
            values = json.loads(e["inputs"])["input"]
            assert values[0] < 7000.0, f"inputs of a unit without consent were recorded: {values}"
    consenting = {e["unit_id"] for e in primary if e["consent"]}
    assert consenting == set(units) - refusing
    assert sum(1 for e in primary if e["inputs"] is not None) == 1800, "every consenting request sampled"

    exp = parse_experiment(
        {
            "id": "consent-exp",
            "model": "churn",
            "variants": [{"name": "champion", "weight": 1}, {"name": "canary", "weight": 1}],
            "start": start.isoformat(),
            "max_duration_days": 14,
            "mde": 0.05,
            "min_sample": 100,
            "primary": {"name": "score", "type": "mean", "source": "events", "column": "score"},
        }
    )
    sums = reduce_window(exp, r.events_root, tmp_path, datetime.now(UTC) + timedelta(minutes=1))
    assert sums.counts["events_without_consent"] == 200
    assert sums.counts["units"] == 900 and sums.counts["events_without_unit"] == 0
    assert sums.counts["units_without_consent"] == 0  # no unit id of theirs reached the files
    results = analyse_window(exp, sums)
    assert results["counts"]["events_without_consent"] == 200
    html = render_html(results)
    assert "<tr><td>events_without_consent</td><td>200</td></tr>" in html, "the report shows the exclusion"


def test_grpc_consent_from_metadata_or_parameters_and_the_same_event_rules(router_factory, models):
    import grpc
    import numpy as np
    from oip_support import OipGrpc
    from support import free_port

    port = free_port()
    r = router_factory(two_variants(models["a"], models["b"]), args=["--grpc-port", str(port)])
    g = OipGrpc(f"127.0.0.1:{port}")
    x = {"input": np.array([[0.5, -1.0, 2.0, 0.25]], dtype=np.float32)}
    try:
        g.call("ModelInfer", g.infer("churn", x, id="g-md"), [("x-unit-id", "g1"), ("x-consent", "true")])
        req = g.infer("churn", x, id="g-param")
        req.parameters["consent"].bool_param = True
        g.call("ModelInfer", req, [("x-unit-id", "g2")])
        g.call("ModelInfer", g.infer("churn", x, id="g-none"), [("x-unit-id", "g3")])
        bad = g.infer("churn", x, id="g-bad")
        bad.parameters["consent"].bool_param = False
        with pytest.raises(grpc.RpcError) as err:
            g.call("ModelInfer", bad, [("x-unit-id", "g4"), ("x-consent", "yes")])
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "disagree" in err.value.details()
    finally:
        g.close()
    assert r.stop() == 0
    events = {e["request_id"]: e for e in read_events(r.events_root) if not e["shadow"]}
    assert {k: (e["unit_id"], e["consent"]) for k, e in events.items()} == {
        "g-md": ("g1", True),
        "g-param": ("g2", True),
        "g-none": (None, False),
    }
