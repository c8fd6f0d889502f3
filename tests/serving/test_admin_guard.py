"""Admin API changes routes atomically and logs them; the guard cuts failing or slow variants.

In-process against ``create_app`` (no process needed), except the restart test.
"""

from __future__ import annotations

import time

from conftest import two_variants

BODY = {"inputs": [[0.5, -1.0, 2.0, 0.25]]}


def test_put_routes_swaps_validates_and_appends_to_the_change_log(inproc_factory, models):
    r = inproc_factory(two_variants(models["a"], models["b"], canary_bp=500))
    with r.admin() as a, r.client() as c:
        cur = a.get("/admin/models/churn/routes").json()["routes"]
        new = {
            **cur,
            "variants": [
                {**cur["variants"][0], "weight_bp": 7500},
                {**cur["variants"][1], "weight_bp": 2500},
            ],
        }
        resp = a.put("/admin/models/churn/routes", json=new)
        assert resp.status_code == 200, resp.text
        assert a.get("/admin/models/churn/routes").json()["routes"]["variants"][1]["weight_bp"] == 2500
        assert (
            c.get("/metrics").text.count('router_variant_weight_bp{model="churn",variant="canary"} 2500') == 1
        )
        changes = a.get("/admin/changes").json()["changes"]
        assert changes[-1]["actor"] == "admin" and changes[-1]["action"] == "routes.put"
        assert changes[-1]["before"]["variants"][1]["weight_bp"] == 500
        assert changes[-1]["after"]["variants"][1]["weight_bp"] == 2500
        # the log is append-only JSONL under the state dir
        assert (r.state_dir / "changes.jsonl").read_text().count("\n") == len(changes)

        bad = {**new, "variants": [{**new["variants"][0], "weight_bp": 9000}, new["variants"][1]]}
        resp = a.put("/admin/models/churn/routes", json=bad)
        assert resp.status_code == 400 and "sum to 10000" in resp.json()["error"]
        missing = {**new, "variants": [new["variants"][0], {**new["variants"][1], "uri": "/nope/x.onnx"}]}
        resp = a.put("/admin/models/churn/routes", json=missing)
        assert resp.status_code == 400 and "/nope/x.onnx" in resp.json()["error"]
        assert "/nope/x.onnx" in a.get("/admin/errors").json()["errors"][-1]["error"]
        # refused changes changed nothing and are not in the change log
        assert a.get("/admin/models/churn/routes").json()["routes"] == new
        assert len(a.get("/admin/changes").json()["changes"]) == len(changes)
        assert c.post("/invocations", json=BODY).status_code == 200

        # a new model can be added, then removed
        assert (
            a.put(
                "/admin/models/fraud/routes",
                json={"variants": [{"name": "v1", "uri": str(models["c"]), "weight_bp": 10000}]},
            ).status_code
            == 200
        )
        assert c.post("/models/fraud/invocations", json=BODY).headers["x-variant"] == "v1"
        assert a.delete("/admin/models/fraud/routes").status_code == 200
        assert c.post("/models/fraud/invocations", json=BODY).status_code == 404


def test_reload_rereads_the_routes_file(inproc_factory, models):
    r = inproc_factory(two_variants(models["a"], models["b"], canary_bp=500))
    import yaml

    r.routes_path.write_text(yaml.safe_dump(two_variants(models["a"], models["c"], canary_bp=1000)))
    with r.admin() as a:
        resp = a.post("/admin/reload")
        assert resp.status_code == 200, resp.text
        routes = a.get("/admin/models/churn/routes").json()["routes"]
        assert routes["variants"][1] == {"name": "canary", "uri": str(models["c"]), "weight_bp": 1000}
        assert a.get("/admin/changes").json()["changes"][-1]["action"] == "routes.reload"


def _send_until_cut(r, max_requests: int) -> tuple[int, list[int]]:
    statuses = []
    with r.client() as c, r.admin() as a:
        for i in range(max_requests):
            statuses.append(c.post("/invocations", json=BODY, headers={"X-Unit-Id": f"u{i}"}).status_code)
            if i % 5 == 4:
                w = a.get("/admin/models/churn/routes").json()["routes"]["variants"][1]["weight_bp"]
                if w == 0:
                    return i + 1, statuses
    return max_requests, statuses


def test_guard_cuts_a_failing_canary_to_zero_and_the_champion_keeps_answering(inproc_factory, models):
    guard = {"window": 50, "min_requests": 10, "max_error_rate": 0.2}
    r = inproc_factory(two_variants(models["a"], models["broken"], canary_bp=3000, guard=guard))
    n, statuses = _send_until_cut(r, 300)
    # 10 failures are needed; at 30 % canary share that takes ~33 requests; bound it at 100
    assert n <= 100, f"guard did not act within 100 requests ({n})"
    assert statuses.count(500) >= 10
    with r.client() as c, r.admin() as a:
        for i in range(50):
            resp = c.post("/invocations", json=BODY, headers={"X-Unit-Id": f"later-{i}"})
            assert resp.status_code == 200 and resp.headers["x-variant"] == "champion"
        routes = a.get("/admin/models/churn/routes").json()["routes"]
        assert [v["weight_bp"] for v in routes["variants"]] == [10000, 0]
        ev = a.get("/admin/guard/events").json()["events"]
        assert len(ev) == 1 and ev[0]["variant"] == "canary" and "error rate" in ev[0]["reason"]
        assert ev[0]["weight_bp_before"] == 3000
        assert a.get("/admin/changes").json()["changes"][-1]["actor"] == "router-guard"
        # the cut is written through the routes store, so every replica follows it
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and r.app.control.store.generation() < 2:
            time.sleep(0.05)
        row = r.app.control.store.history("churn")
        assert row["generation"] == 2 and row["actor"] == "router-guard" and "error rate" in row["reason"]
        assert [v["weight_bp"] for v in row["document"]["variants"]] == [10000, 0]
        m = c.get("/metrics").text
        assert 'router_guard_trips_total{model="churn",variant="canary"} 1' in m
        stats = {s["variant"]: s for s in a.get("/admin/stats").json()["variants"]}
        assert stats["canary"]["errors_total"] >= 10 and stats["champion"]["errors_total"] == 0


def test_guard_cuts_a_variant_slower_than_its_latency_bound(inproc_factory, models):
    guard = {"window": 40, "min_requests": 10, "max_latency_ms": 0.0001, "max_slow_rate": 0.5}
    r = inproc_factory(two_variants(models["a"], models["b"], canary_bp=5000, guard=guard))
    n, statuses = _send_until_cut(r, 200)
    assert n <= 60 and set(statuses) == {200}
    with r.admin() as a:
        ev = a.get("/admin/guard/events").json()["events"]
        assert "slower than" in ev[0]["reason"]


def test_guard_cut_survives_a_restart(router_factory, models, tmp_path):
    guard = {"window": 20, "min_requests": 5, "max_error_rate": 0.1}
    routes = two_variants(models["a"], models["broken"], canary_bp=5000, guard=guard)
    r = router_factory(routes, name="r1")
    n, _ = _send_until_cut(r, 100)
    assert n < 100
    assert r.stop() == 0
    time.sleep(0.2)
    r2 = router_factory(routes, name="r1")  # same state dir, same routes file
    with r2.admin() as a:
        assert [v["weight_bp"] for v in a.get("/admin/models/churn/routes").json()["routes"]["variants"]] == [
            10000,
            0,
        ]


def test_the_routes_file_seeds_only_models_the_store_never_held(inproc_factory, models):
    r = inproc_factory(two_variants(models["a"], models["b"], canary_bp=500), name="seeded")
    with r.admin() as a:
        routes = a.get("/admin/models/churn/routes").json()["routes"]
        routes["variants"][1]["weight_bp"], routes["variants"][0]["weight_bp"] = 2500, 7500
        assert a.put("/admin/models/churn/routes", json=routes).json()["generation"] == 2
    r.close()
    # restart on the same state dir with an edited file: the accepted change of churn stays, the new
    # model of the file is seeded
    doc = two_variants(models["a"], models["c"], canary_bp=100)
    doc["models"]["fraud"] = {"variants": [{"name": "v1", "uri": str(models["c"]), "weight_bp": 10000}]}
    r2 = inproc_factory(doc, name="seeded")
    with r2.admin() as a, r2.client() as c:
        got = a.get("/admin/models/churn/routes").json()
        assert got["generation"] == 3 and got["routes"] == routes
        assert c.post("/models/fraud/invocations", json=BODY).headers["x-variant"] == "v1"
        assert c.get("/v2/health/ready").json() == {"ready": True, "generation": 3, "stale": False}


def test_a_variant_taken_out_of_the_routes_reads_zero_weight_in_metrics_until_it_returns(
    inproc_factory, models
):
    """A rollback removes the candidate; dashboards must see it at 0 bp, not a series that stops."""
    r = inproc_factory(two_variants(models["a"], models["b"], canary_bp=1000))
    with r.admin() as a, r.client() as c:
        cur = a.get("/admin/models/churn/routes").json()["routes"]
        champion_only = {**cur, "variants": [{**cur["variants"][0], "weight_bp": 10000}]}
        assert a.put("/admin/models/churn/routes", json=champion_only).status_code == 200
        text = c.get("/metrics").text
        assert 'router_variant_weight_bp{model="churn",variant="champion"} 10000' in text
        assert text.count('router_variant_weight_bp{model="churn",variant="canary"} 0\n') == 1
        assert 'router_requests_total{model="churn",variant="canary"' not in text  # no longer served
        assert a.put("/admin/models/churn/routes", json=cur).status_code == 200
        text = c.get("/metrics").text
        assert text.count('router_variant_weight_bp{model="churn",variant="canary"}') == 1
        assert 'router_variant_weight_bp{model="churn",variant="canary"} 1000' in text
