"""The evidence view's pure parts: figures read back from approval forms, timeline, SVG, page escaping."""

from __future__ import annotations

import math
from xml.etree import ElementTree

from include.canary.evidence import evidence_markdown
from include.evidence import approvals as ap
from include.evidence import page, svg
from include.evidence import timeline as tl
from include.evidence.links import Links

PLAN = {"model": "churn", "version": "2", "champion": "1"}
METRIC = {"canary": {"p50": 0.012}, "baseline": {"p50": 0.010}, "failed": False, "tolerance": 0.01, "p_value": 0.2,
          "n_canary": 900, "n_baseline": 880}  # fmt: skip


def test_intervals_are_read_back_from_the_canary_judge_table_the_gate_writes() -> None:
    result = {
        "stage": 1, "weight_bp": 500, "score": 70, "decision": "marginal", "reasons": ["latency marginal"],
        "metrics": [
            {**METRIC, "name": "error_rate", "classification": "marginal", "effect": 0.0021, "interval": [-0.0013, 0.0057]},
            {**METRIC, "name": "latency_ms", "classification": "pass", "effect": -1.5, "interval": [None, 2.25]},
        ],
    }  # fmt: skip
    body = evidence_markdown(PLAN, result)
    got = ap.intervals(body)
    assert [r["label"] for r in got] == ["error_rate", "latency_ms"]
    assert (got[0]["effect"], got[0]["low"], got[0]["high"]) == (0.0021, -0.0013, 0.0057)
    assert got[1]["low"] == -math.inf and got[1]["high"] == 2.25


def test_intervals_are_read_back_from_the_ab_ship_form_the_gate_writes(tmp_path) -> None:
    import sys
    from datetime import timedelta
    from pathlib import Path

    from include.abtest.analysis import analyse_experiment
    from include.abtest.decision import ship_form
    from modelgate_dev.abtest.generate import Population, generate

    sys.path.insert(0, str(Path(__file__).parents[1] / "abtest"))
    from ab_support import START, experiment

    g = generate(Population(n_units=40_000, variants={"a": 1, "b": 1}, lifts={"b": 0.25}, seed=11), tmp_path, START, days=3)
    exp = experiment(outcomes={"path": str(g.outcomes_path)})
    res = analyse_experiment(exp, g.events_root, tmp_path, as_of=START + timedelta(days=3))
    assert res["decision"]["decision"] == "ship"
    got = {r["label"]: r for r in ap.intervals(ship_form(exp, res, None)["body"])}
    want = {f"{m['name']} / {c['variant']}": c for m in res["metrics"] for c in m["comparisons"] if not c["error"]}
    assert set(got) == set(want) and "conversion / b" in got
    for label, c in want.items():
        assert math.isclose(got[label]["effect"], c["effect"], rel_tol=1e-3, abs_tol=1e-9)
        assert math.isclose(got[label]["low"], c["ci"][0], rel_tol=1e-3, abs_tol=1e-9)
        assert math.isclose(got[label]["high"], c["ci"][1], rel_tol=1e-3, abs_tol=1e-9)
    body = "| metric | role | variant | effect | CI | p (adj.) |\n| --- | --- | --- | --- | --- | --- |\n| r | g | b | error: x | | |"
    assert ap.intervals(body) == []


def test_pending_keeps_unanswered_requests_about_the_model_and_says_who_may_answer() -> None:
    def detail(subject: str, answered: bool = False, users: list[str] | None = None) -> dict:
        return {"subject": subject, "body": "", "options": ["Approve", "Reject"], "response_received": answered,
                "assigned_users": [{"id": u, "name": u} for u in users or []],
                "task_instance": {"dag_id": "canary_promotion", "dag_run_id": "r", "task_id": "t", "map_index": -1}}  # fmt: skip

    got = ap.pending(
        [detail("stage of churn"), detail("stage of churn-v2"), detail("churn", answered=True), detail("churn!", users=["bo"])],
        "churn",
        "ana",
    )
    assert [g["subject"] for g in got] == ["stage of churn", "churn!"]
    assert [g["may_answer"] for g in got] == [True, False]
    assert "rolled back" in got[0]["options"][1]["effect"]


def test_timeline_orders_gates_and_links_audit_records() -> None:
    tags = {"modelgate.status": "ready", "modelgate.registered_by": "ci", "modelgate.airflow_run_id": "manual__1",
            "modelgate.regression.verdict": "pass", "modelgate.regression.mlflow_run_id": "abc",
            "modelgate.canary.stage_0": '{"stage": 0, "percent": 1, "decision": "pass", "score": 95}',
            "modelgate.canary.stage_1": '{"stage": 1, "percent": 5, "decision": "rollback", "score": 10}',
            "modelgate.canary.verdict": "rolled_back", "modelgate.canary.reason": "error rate 0.3 > 0.05"}  # fmt: skip
    audits = [
        {"seq": 1, "ts": "t1", "actor": "ci", "action": "register", "subject": "models:/m/2", "before": None, "after": {}},
        {"seq": 2, "ts": "t2", "actor": "airflow", "action": "canary.rollback", "subject": "models:/m/2", "before": None,
         "after": {"event": "rollback", "stage": 1, "guard_events": [{"reason": "error rate 0.3"}]}},
    ]  # fmt: skip
    links = Links("http://mlflow:5000", "", {"abc": "7"})
    (v,) = tl.version_timeline("m", [{"version": "2", "created": None, "tags": tags}], audits, links)
    assert [g["gate"] for g in v["gates"]] == ["registration", "regression", "canary stage 0 (1 %)", "canary stage 1 (5 %)", "canary"]
    assert v["gates"][0]["audit"] == [1] and v["gates"][0]["links"]["airflow run"] == "/dags/model_registration/runs/manual__1"
    assert v["gates"][1]["links"]["mlflow run"] == "http://mlflow:5000/#/experiments/7/runs/abc"
    assert v["gates"][-1]["verdict"] == "rolled_back" and v["gates"][-1]["audit"] == [2]
    assert v["gates"][-1]["detail"]["guard"] == [{"reason": "error rate 0.3"}] and v["gates"][-1]["detail"]["stage"] == 1


def test_svg_plots_are_well_formed_and_mark_each_effect() -> None:
    rows = [{"label": "a <b>", "effect": 0.1, "low": -0.05, "high": 0.2}, {"label": "c", "effect": 0.3, "low": 0.1, "high": math.inf}]
    root = ElementTree.fromstring(svg.interval_plot(rows, "effects"))
    assert len(root.findall("{http://www.w3.org/2000/svg}circle")) == 2
    assert svg.interval_plot([], "none") == ""
    gates = [{"gate": "registration", "verdict": "registered"}, {"gate": "canary", "verdict": "rolled_back"}]
    ElementTree.fromstring(svg.stage_timeline([{"version": "1", "gates": gates}]))
    assert svg.tone("rolled_back") == "bad" and svg.tone("marginal") == "warn" and svg.tone("pass") == "good"


def test_page_escapes_what_comes_from_the_registry_and_forms() -> None:
    doc = {
        "model": "m", "aliases": {}, "abtests": [], "replicas": [],
        "timeline": [{"version": "1", "semver": "<script>alert(1)</script>", "gates": [tl.gate("registration", "<img src=x>")]}],
        "approvals": [{"dag_id": "d", "dag_run_id": "r/1", "task_id": "t", "map_index": -1, "subject": "<b>s</b>",
                       "body": "<script>x</script>", "options": [{"option": "Approve", "effect": None}],
                       "assigned_users": [], "may_answer": True, "intervals": []}],
        "audit": {"records": [], "verified": True, "problems": [], "notes": [], "total": 0},
    }  # fmt: skip
    html = page.render(doc, "/modelgate", "ana")
    assert "<script>" not in html and "<img src=x>" not in html and "&lt;script&gt;" in html
    assert 'action="/modelgate/api/approvals/d/r%2F1/t/-1"' in html


def test_desired_routes_come_from_the_control_plane_store_and_replicas_behind_it_are_flagged(tmp_path) -> None:
    from include.evidence import replicas as rp
    from modelgate_control.store import RouteStore

    url = f"sqlite:///{tmp_path / 'control.db'}"
    store = RouteStore(url, key_file=tmp_path / "secrets" / "audit-hmac.key")
    doc = {"champion": "a", "variants": [{"name": "a", "uri": "models:/m/1", "weight_bp": 9500},
                                         {"name": "b", "uri": "models:/m/2", "weight_bp": 500}]}  # fmt: skip
    gen = store.put("m", doc, actor="ana", reason="canary stage 1")
    store.dispose()
    assert rp.desired("nope", url)["routes"] is None
    got = rp.desired("m", url)
    assert got["error"] is None and got["generation"] == gen == got["model_generation"]
    assert got["weights"] == {"a": 95.0, "b": 5.0} and got["actor"] == "ana"
    assert rp.behind({"generation": gen - 1}, gen) is True and rp.behind({"generation": gen}, gen) is False
    assert rp.behind({"generation": None}, gen) is None
    bad = rp.desired("m", f"sqlite:///{tmp_path / 'missing' / 'x.db'}")
    assert bad["error"] and bad["routes"] is None
