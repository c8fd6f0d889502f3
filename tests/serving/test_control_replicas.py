"""Several real router processes following one routes store (issue 12).

"Nothing lost" in these tests means: every request a client sent to a replica that stayed up got a
2xx answer, and every answered request is one event record of that replica (counted in its Parquet
files after a graceful stop flushed them).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Router, start_router, two_variants
from support import stop
from support_postgres import Postgres, postgres_server
from test_lifecycle import Load, count_events

from include.registry import audit

BODY = {"inputs": [[0.5, -1.0, 2.0, 0.25]]}


def _replica(tmp_path: Path, i: int, routes: dict[str, Any], store_url: str) -> Router:
    env = {"ROUTER_STORE_URL": store_url, "ROUTER_STORE_POLL_SECONDS": "0.5"}
    return start_router(tmp_path / f"replica{i}", routes, extra_env=env)


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[Callable[..., list[Router]]]:
    started: list[Router] = []

    def factory(routes: dict[str, Any], n: int, store_url: str) -> list[Router]:
        rs = [_replica(tmp_path, i, routes, store_url) for i in range(n)]
        started.extend(rs)
        return rs

    yield factory
    for r in started:
        stop(r.proc)


def ready(r: Router) -> dict[str, Any]:
    resp = httpx.get(f"{r.url}/v2/health/ready", timeout=10)
    assert resp.headers["x-routes-generation"] == str(resp.json()["generation"])
    return dict(resp.json())


PROBES: Counter[str] = Counter()
"""Scoring requests the tests themselves sent, per replica URL (they are events too)."""


def served_variant(r: Router) -> str:
    resp = httpx.post(f"{r.url}/invocations", json=BODY, timeout=10)
    assert resp.status_code == 200, resp.text
    PROBES[r.url] += 1
    return resp.headers["x-variant"]


def wait_for(pred: Callable[[], bool], timeout: float, what: str) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return time.monotonic() - t0
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s: {what}")


def only(model: Path, name: str) -> dict[str, Any]:
    """Routes of ``churn`` with one variant ``name`` serving ``model``."""
    return {"variants": [{"name": name, "uri": str(model), "weight_bp": 10000}]}


def test_a_change_sent_to_replica_2_is_served_by_replicas_0_and_1_within_5_s(replicas, models, tmp_path):
    url = f"sqlite:///{tmp_path / 'control.db'}"
    rs = replicas(two_variants(models["a"], models["b"], canary_bp=1000), 3, url)
    # the routes file seeded the store once (generation 1); the others found it there
    assert [ready(r)["generation"] for r in rs] == [1, 1, 1]
    with rs[2].admin() as a:
        resp = a.put("/admin/models/churn/routes", json=only(models["c"], "v2"),
                     headers={"X-Change-Reason": "test", "X-Run-Id": "run-42",
                              "X-Actor": "airflow:canary_promotion"})
    assert resp.status_code == 200, resp.text
    gen = resp.json()["generation"]
    assert gen == 2 and ready(rs[2])["generation"] == 2 and served_variant(rs[2]) == "v2"
    took = wait_for(lambda: all(ready(r)["generation"] == gen for r in rs[:2]), 5.0, "replicas 0, 1 at gen 2")
    assert all(served_variant(r) == "v2" for r in rs[:2]), took
    for r in rs:
        m = httpx.get(f"{r.url}/metrics").text
        assert "router_routes_generation 2\n" in m and "router_routes_stale 0\n" in m
        assert 'router_variant_weight_bp{model="churn",variant="v2"} 10000' in m
    # one audit record per change, in the same database, chain intact
    recs = audit.read_records(url)
    assert [(r.actor, r.action, r.run_id) for r in recs] == [
        ("router-seed", "routes.seed", None), ("airflow:canary_promotion via admin", "routes.put", "run-42"),
    ]
    assert audit.verify(url).ok


def test_a_replica_killed_mid_change_comes_back_on_the_current_generation(replicas, models, tmp_path):
    url = f"sqlite:///{tmp_path / 'control.db'}"
    rs = replicas(two_variants(models["a"], models["b"], canary_bp=1000), 3, url)
    plans = [only(models["c"], "v2"), two_variants(models["a"], models["c"], 5000)["models"]["churn"],
             only(models["b"], "v4")]
    with Load(rs[0].url, threads=2) as load0, Load(rs[2].url, threads=2) as load2:
        time.sleep(0.5)
        answers: list[httpx.Response] = []
        sender = threading.Thread(
            target=lambda: answers.append(rs[0].admin().put("/admin/models/churn/routes", json=plans[0]))
        )
        sender.start()
        os.killpg(rs[1].proc.pid, signal.SIGKILL)  # while replica 0 loads and commits the change
        sender.join(60)
        assert rs[1].proc.wait(timeout=30) == -signal.SIGKILL
        assert answers[0].status_code == 200, answers[0].text
        for plan in plans[1:]:
            resp = rs[2].admin().put("/admin/models/churn/routes", json=plan)
            assert resp.status_code == 200, resp.text
        final = resp.json()["generation"]
        # restart the killed replica on its state dir: it serves the current generation from its first answer
        back = start_router(tmp_path / "replica1", two_variants(models["a"], models["b"], canary_bp=1000),
                            extra_env={"ROUTER_STORE_URL": url})
        try:
            assert ready(back)["generation"] == final == 4
            assert served_variant(back) == "v4"
        finally:
            stop(back.proc)
        wait_for(lambda: ready(rs[0])["generation"] == final, 5.0, "replica 0 converged")
        time.sleep(0.3)
    for r, load in ((rs[0], load0), (rs[2], load2)):
        statuses = [s for _, s in load.results]
        assert len(statuses) > 50 and set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
        assert r.stop() == 0
        assert count_events(r.events_root) == len(statuses) + PROBES[r.url]
    assert audit.verify(url).ok and len(audit.read_records(url)) == 4


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with postgres_server(("audit_owner", "audit_writer")) as pg:
        yield pg


def test_store_down_during_traffic_replicas_serve_report_stale_and_catch_up(replicas, models, postgres):
    db = postgres.new_database()
    audit.setup_postgres(postgres.url("audit_owner", db), "audit_writer")
    url = postgres.url("audit_writer", db)
    rs = replicas(two_variants(models["a"], models["b"], canary_bp=1000), 2, url)
    with Load(rs[0].url, threads=2) as load0, Load(rs[1].url, threads=2) as load1:
        time.sleep(0.5)
        postgres.stop()
        try:
            wait_for(lambda: all(ready(r)["stale"] for r in rs), 15.0, "both replicas report stale")
            for r in rs:
                assert "router_routes_stale 1\n" in httpx.get(f"{r.url}/metrics").text
                assert ready(r)["generation"] == 1 and ready(r)["ready"] is True
            # a change while the store is down is refused with a clear error and changes nothing
            resp = rs[0].admin().put("/admin/models/churn/routes", json=only(models["c"], "v2"))
            assert resp.status_code == 503 and resp.json()["code"] == "store_unavailable", resp.text
            assert served_variant(rs[0]) in {"champion", "canary"}
            time.sleep(1.0)  # traffic keeps flowing on the last good routes
        finally:
            postgres.start()
        wait_for(lambda: not any(ready(r)["stale"] for r in rs), 15.0, "both replicas catch up")
        resp = rs[0].admin().put("/admin/models/churn/routes", json=only(models["c"], "v2"))
        assert resp.status_code == 200 and resp.json()["generation"] == 2, resp.text
        wait_for(lambda: ready(rs[1])["generation"] == 2, 5.0, "replica 1 follows after the outage")
        assert served_variant(rs[1]) == "v2"
        time.sleep(0.3)
    for r, load in ((rs[0], load0), (rs[1], load1)):
        statuses = [s for _, s in load.results]
        assert len(statuses) > 50 and set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
        assert r.stop() == 0
        assert count_events(r.events_root) == len(statuses) + PROBES[r.url]
        assert "routes store unreachable" in r.log() or "reachable again" in r.log()


def test_a_guard_trip_on_one_replica_stops_the_variant_on_every_replica(replicas, models, tmp_path):
    url = f"sqlite:///{tmp_path / 'control.db'}"
    guard = {"window": 20, "min_requests": 5, "max_error_rate": 0.1}
    rs = replicas(two_variants(models["a"], models["broken"], canary_bp=5000, guard=guard), 2, url)
    statuses = []
    with httpx.Client(base_url=rs[0].url, timeout=10) as c:  # traffic reaches replica 0 only
        for i in range(200):
            statuses.append(c.post("/invocations", json=BODY, headers={"X-Unit-Id": f"u{i}"}).status_code)
            if i % 5 == 4 and 500 in statuses:
                w = httpx.get(f"{rs[0].url}/metrics").text
                if 'router_variant_weight_bp{model="churn",variant="canary"} 0' in w:
                    break
    assert 500 in statuses  # the broken canary failed until the guard tripped on replica 0
    # replica 1 never saw a failure, yet stops sending to the canary: the cut went through the store
    wait_for(lambda: ready(rs[1])["generation"] == 2, 5.0, "replica 1 follows the guard's cut")
    for r in rs:
        m = httpx.get(f"{r.url}/metrics").text
        assert 'router_variant_weight_bp{model="churn",variant="champion"} 10000' in m
        assert 'router_variant_weight_bp{model="churn",variant="canary"} 0' in m
        assert "router_routes_generation 2\n" in m
    assert {served_variant(rs[1]) for _ in range(20)} == {"champion"}
    cut = [r for r in audit.read_records(url) if r.action == "guard.cut"]
    assert len(cut) == 1 and cut[0].actor == "router-guard"
    assert [v["weight_bp"] for v in cut[0].after["variants"]] == [10000, 0]
