"""The modelgate UI plugin on a real Airflow api-server: auth, the evidence JSON, answering an approval.

The api-server loads ``plugins/modelgate_ui_plugin.py`` from the plugins folder and mounts the app at
``/modelgate``; MLflow is the session's real server and the audit log the session's. A DAG parked on
a human-in-the-loop request (``ui_dags/ui_approval_probe.py``, run with ``dag.test()``) is answered
through the plugin, and the answer must reach the waiting task.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support_airflow import ensure_airflow_db, task_states
from support_hitl import APPROVERS, ApiServer, api_server_process

pytestmark = pytest.mark.integration
PROBE = Path(__file__).parent / "ui_dags" / "ui_approval_probe.py"


@pytest.fixture(scope="module")
def ui_server(mlflow_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """An api-server with the plugin, reading the session's MLflow server."""
    env = {"MODELGATE_TRACKING_URI": mlflow_server, "MLFLOW_TRACKING_URI": mlflow_server}
    with api_server_process(tmp_path_factory.mktemp("ui-api"), env=env) as server:
        yield server.wait_ready()


def chromium() -> None:
    """Debian's chromium, installed when missing (root); the test fails, never skips, without it."""
    from modelgate_dev.browser import BrowserError, ensure_chromium

    try:
        ensure_chromium()
    except BrowserError as e:
        pytest.fail(str(e))


def token(server: ApiServer, user: str) -> str:
    r = httpx.post(f"{server.url}/auth/token", json={"username": user, "password": APPROVERS[user]}, timeout=30)
    r.raise_for_status()
    return str(r.json()["access_token"])


def get(server: ApiServer, path: str, tok: str | None = None, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {tok}"} if tok else {}
    return httpx.get(f"{server.url}{path}", headers=headers, timeout=60, **kw)


def test_anonymous_and_forged_requests_get_401_and_bad_names_a_clear_error(ui_server: ApiServer) -> None:
    for path in ("/modelgate/api/models/churn", "/modelgate/models/churn", "/modelgate/"):
        r = get(ui_server, path)
        assert r.status_code == 401, (path, r.status_code, r.text)
        assert r.headers["www-authenticate"] == "Bearer"
    assert get(ui_server, "/modelgate/api/models/churn", "not.a.jwt").status_code == 401
    forged = httpx.post(f"{ui_server.url}/modelgate/api/approvals/d/r/t/-1", json={"chosen_options": ["Approve"]})
    assert forged.status_code == 401
    tok = token(ui_server, "ana")
    plugins = {p["name"]: p for p in get(ui_server, "/api/v2/plugins", tok).json()["plugins"]}
    assert plugins["modelgate_ui"]["fastapi_apps"][0]["url_prefix"] == "/modelgate"
    assert {v["destination"] for v in plugins["modelgate_ui"]["external_views"]} == {"nav", "dag_run"}
    cross_site = httpx.post(f"{ui_server.url}/modelgate/api/approvals/d/r/t/-1", content="option=Approve&model=m",
                            headers={"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://evil.example",
                                     "Cookie": f"_token={tok}"})  # fmt: skip
    assert cross_site.status_code == 403 and "own page" in cross_site.text, cross_site.text
    bad = get(ui_server, "/modelgate/api/models/bad%20name!", tok)
    assert bad.status_code == 400 and "invalid model name" in bad.json()["detail"], bad.text
    missing = get(ui_server, "/modelgate/api/models/no-such-model", tok)
    assert missing.status_code == 404 and "no registered model" in missing.json()["detail"], missing.text


def test_json_of_a_model_registered_here_has_its_versions_verdicts_and_verified_audit(
    ui_server: ApiServer, tracking_uri: str, tmp_path: Path, logreg_onnx: Path
) -> None:
    from support import make_logreg_onnx

    from include.registry.registry import register_model, set_alias, set_version_tags

    name = "ui-json"
    v1 = register_model(name, logreg_onnx, actor="ci", tracking_uri=tracking_uri)
    other = make_logreg_onnx(tmp_path / "v2.onnx", seed=7)
    v2 = register_model(name, other, actor="ci", tracking_uri=tracking_uri)
    set_version_tags(name, v2.version, {"modelgate.regression.verdict": "fail",
                                        "modelgate.regression.reasons": '["agreement 0.81 < 0.95"]'},
                     actor="airflow:regression_testing", tracking_uri=tracking_uri)  # fmt: skip
    set_alias(name, "champion", v1.version, actor="ana", reason="first version", tracking_uri=tracking_uri)

    r = get(ui_server, f"/modelgate/api/models/{name}", token(ui_server, "ana"))
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["aliases"] == {"champion": v1.version}
    assert [v["version"] for v in doc["timeline"]] == [v1.version, v2.version]
    gates = {v["version"]: {g["gate"]: g for g in v["gates"]} for v in doc["timeline"]}
    assert gates[v1.version]["registration"]["verdict"] == "registered"
    assert gates[v1.version]["registration"]["by"] == "ci"
    assert gates[v1.version]["regression"]["verdict"] == "not run"
    assert gates[v1.version]["promotion"]["verdict"] == "champion"
    assert gates[v2.version]["regression"]["verdict"] == "fail"
    assert gates[v2.version]["regression"]["detail"]["reasons"] == ["agreement 0.81 < 0.95"]
    actions = {rec["seq"]: rec["action"] for rec in doc["audit"]["records"]}
    assert actions[gates[v1.version]["registration"]["audit"][0]] == "register"
    assert actions[gates[v1.version]["promotion"]["audit"][0]] == "set_alias"
    assert doc["audit"]["verified"] is True, doc["audit"]
    assert {rec["subject"] for rec in doc["audit"]["records"]} <= {
        f"models:/{name}/{v1.version}", f"models:/{name}/{v2.version}", f"models:/{name}@champion"}  # fmt: skip
    assert len(doc["replicas"]) >= 1 and doc["replicas"][0]["ready"] is False  # no router runs here: said so
    assert doc["replicas"][0]["error"]
    assert doc["desired"]["error"] is None and doc["desired"]["routes"] is None  # the store answers: no routes yet
    page = get(ui_server, f"/modelgate/models/{name}", token(ui_server, "bo"))
    assert page.status_code == 200 and "<svg" in page.text and ">fail<" in page.text


def _run_probe() -> Any:
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.models.dagbundle import DagBundleModel
    from airflow.utils.session import create_session

    ensure_airflow_db()
    with create_session() as session:
        session.merge(DagBundleModel(name="modelgate_ui_tests"))
        session.commit()
    bag = DagBag(dag_folder=str(PROBE))
    assert not bag.import_errors, bag.import_errors
    sync_bag_to_db(bag, bundle_name="modelgate_ui_tests", bundle_version=None)
    return bag.get_dag("ui_approval_probe").test(run_conf={"model": "ui-probe"})


def test_an_approval_answered_on_the_plugin_page_reaches_the_waiting_task_and_only_the_assignee_may(
    ui_server: ApiServer, tracking_uri: str, logreg_onnx: Path, tmp_path: Path
) -> None:
    from include.registry.registry import register_model

    register_model("ui-probe", logreg_onnx, actor="ci", tracking_uri=tracking_uri)
    from modelgate_dev.browser import AIRFLOW_COOKIE, answer_in_page

    chromium()
    ana, bo = token(ui_server, "ana"), token(ui_server, "bo")
    cookie = [{"name": AIRFLOW_COOKIE, "value": ana, "url": ui_server.url}]
    shot = tmp_path / "answered.png"
    seen: dict[str, Any] = {}

    def answer() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            doc = get(ui_server, "/modelgate/api/models/ui-probe", ana).json()
            waiting = [a for a in doc.get("approvals", []) if a["state"] in ("deferred", "awaiting_input")]
            if waiting:
                a = seen["approval"] = waiting[0]
                path = f"/modelgate/api/approvals/{a['dag_id']}/{a['dag_run_id']}/{a['task_id']}/{a['map_index']}"
                seen["bo"] = httpx.post(f"{ui_server.url}{path}", json={"chosen_options": ["Approve"]},
                                        headers={"Authorization": f"Bearer {bo}"}, timeout=60)  # fmt: skip
                # ana answers in Chromium, signed in by the UI's cookie, pressing the page's button
                seen["ana"] = answer_in_page(f"{ui_server.url}/modelgate/models/ui-probe", "Approve", cookie,
                                             ["answered approve: Approve"], shot)  # fmt: skip
                return
            time.sleep(0.5)

    t = threading.Thread(target=answer, daemon=True)
    t.start()
    dr = _run_probe()
    t.join(10)
    a = seen["approval"]
    assert a["may_answer"] is True and a["assigned_users"] == ["ana"]
    assert a["intervals"] == [{"label": "error_rate", "effect": 0.002, "low": -0.001, "high": 0.005}]
    assert [o["option"] for o in a["options"]] == ["Approve", "Reject"]
    assert seen["bo"].status_code == 403, seen["bo"].text  # not assigned: Airflow refuses, the plugin says so
    assert seen["ana"].ok, (seen["ana"].errors, seen["ana"].missing)
    assert dr.state == "success", task_states(dr)
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as s:
        x = s.query(XComModel).filter_by(run_id=dr.run_id, task_id="record", key="return_value").one()
    assert "Approve by ana" in str(x.value)
    tab = get(ui_server, f"/modelgate/runs/ui_approval_probe/{dr.run_id}", ana, follow_redirects=False)
    assert tab.status_code == 303 and tab.headers["location"] == "/modelgate/models/ui-probe", tab.text


def test_plugin_page_renders_in_chromium_signed_in_by_the_airflow_cookie(
    ui_server: ApiServer, tracking_uri: str, logreg_onnx: Path, tmp_path: Path
) -> None:
    from include.registry.registry import register_model
    from modelgate_dev.browser import AIRFLOW_COOKIE, check_pages

    chromium()
    v = register_model("ui-page", logreg_onnx, actor="ci", tracking_uri=tracking_uri)
    cookie = [{"name": AIRFLOW_COOKIE, "value": token(ui_server, "bo"), "url": ui_server.url}]
    url = f"{ui_server.url}/modelgate/models/ui-page"
    shot = tmp_path / "plugin.png"
    page, anon = check_pages([(url, ["ui-page", f"Version {v.version}", ">registered<", "Signed in as bo", "<svg"], shot)], cookie) + \
        check_pages([(url, [], None)])  # fmt: skip
    assert page.ok, (page.errors, page.missing)
    assert shot.stat().st_size > 5_000
    assert any("401" in e for e in anon.errors), anon.errors  # no cookie: refused
