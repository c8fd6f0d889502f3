"""Hot swap under load, SIGTERM under load, events on disk, a failing event sink, TLS."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pyarrow.parquet as pq
from conftest import two_variants

BODY = {"inputs": [[0.5, -1.0, 2.0, 0.25]]}


class Load:
    """Client threads that send requests until stopped, recording every outcome.

    Each thread keeps one keep-alive connection (httpx opens a new one when an answer said
    ``Connection: close``). ``ConnectError`` means the request was never sent (connection refused).
    """

    def __init__(self, url: str, threads: int = 4, stop_on_connect_error: bool = False) -> None:
        self.url = url
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.results: list[tuple[float, int | str]] = []  # (start time, status or error class)
        self.closes = 0  # answers that carried Connection: close
        self.stop_on_connect_error = stop_on_connect_error
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def _run(self, i: int) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        with httpx.Client(base_url=self.url, timeout=30, limits=limits) as c:
            n = 0
            while not self.stop.is_set():
                t0 = time.monotonic()
                try:
                    resp = c.post("/invocations", json=BODY, headers={"X-Unit-Id": f"t{i}-{n}"})
                    status: int | str = resp.status_code
                    if resp.headers.get("connection") == "close":
                        with self.lock:
                            self.closes += 1
                except httpx.HTTPError as e:
                    status = type(e).__name__
                with self.lock:
                    self.results.append((t0, status))
                n += 1
                if self.stop_on_connect_error and status == "ConnectError":
                    return

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)


def count_events(root: Path, shadow: bool | None = False) -> int:
    files = sorted(root.rglob("*.parquet"))
    if not files:
        return 0
    n = 0
    for f in files:
        t = pq.read_table(f)
        if shadow is None:
            n += t.num_rows
        else:
            n += sum(1 for s in t.column("shadow").to_pylist() if s == shadow)
    return n


def test_routes_replaced_ten_times_under_load_fail_no_request(router_factory, models):
    r = router_factory(two_variants(models["a"], models["b"], canary_bp=1000))
    plans = [
        ("b", 1000),
        ("c", 2500),
        ("b", 5000),
        ("c", 0),
        ("a", 9000),
        ("b", 100),
        ("c", 3000),
        ("b", 2000),
        ("c", 7000),
        ("b", 1000),
    ]
    with Load(r.url) as load, r.admin() as a:
        time.sleep(0.3)
        for canary, bp in plans:
            routes = two_variants(models["a"], models[canary], canary_bp=bp)["models"]["churn"]
            resp = a.put("/admin/models/churn/routes", json=routes)
            assert resp.status_code == 200, resp.text
            time.sleep(0.15)
        time.sleep(0.3)
    statuses = [s for _, s in load.results]
    assert len(statuses) > 200
    assert set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
    with r.admin() as a:
        assert a.get("/admin/routes").json()["revision"] >= 11
        assert sum(ch["action"] == "routes.put" for ch in a.get("/admin/changes").json()["changes"]) == 10


def test_sigterm_under_load_fails_no_in_flight_request_and_every_answer_is_an_event(router_factory, models):
    r = router_factory(
        two_variants(models["a"], models["b"], canary_bp=2000),
        extra_env={"ROUTER_EVENTS_FLUSH_SECONDS": "30"},
    )  # only the shutdown flush writes
    with Load(r.url, threads=6, stop_on_connect_error=True) as load:
        time.sleep(1.0)
        t_sig = time.monotonic()
        os.killpg(r.proc.pid, signal.SIGTERM)
        rc = r.proc.wait(timeout=30)
        load.stop.set()
    assert rc == 0, r.log()
    before = [s for t, s in load.results if t < t_sig]
    after = [s for t, s in load.results if t >= t_sig]
    assert len(before) > 100 and set(before) == {200}, {s: before.count(s) for s in set(before)}
    # after SIGTERM: answered normally while draining, then refused at connect (never sent, never failed)
    assert set(after) <= {200, "ConnectError"}, {s: after.count(s) for s in set(after)}
    answered = sum(1 for _, s in load.results if s == 200)
    assert count_events(r.events_root) == answered
    assert "events flushed" in r.log()


def test_sigterm_with_grace_period_and_16_keep_alive_clients_loses_nothing(router_factory, models):
    r = router_factory(
        two_variants(models["a"], models["b"], canary_bp=2000),
        extra_env={"ROUTER_EVENTS_FLUSH_SECONDS": "30", "ROUTER_SHUTDOWN_GRACE_SECONDS": "1.5"},
    )
    with (
        Load(r.url, threads=16, stop_on_connect_error=True) as load,
        httpx.Client(base_url=r.url, timeout=10) as probe,
    ):
        time.sleep(1.0)
        t_sig = time.monotonic()
        os.killpg(r.proc.pid, signal.SIGTERM)
        time.sleep(0.3)
        ready = probe.get("/v2/health/ready")  # a new connection: the listener is still open
        rc = r.proc.wait(timeout=60)
        load.stop.set()
    assert rc == 0, r.log()
    assert ready.status_code == 503 and ready.headers["connection"] == "close"
    statuses = [s for _, s in load.results]
    after = [s for t, s in load.results if t >= t_sig]
    # every request that was sent got an answer; refused connects were never sent
    assert set(statuses) <= {200, "ConnectError"}, {s: statuses.count(s) for s in set(statuses)}
    answered_in_grace = sum(1 for t, s in load.results if s == 200 and t_sig + 0.1 <= t <= t_sig + 1.2)
    assert answered_in_grace > 16, (answered_in_grace, len(after))
    assert load.closes >= 16  # answers during the drain told the clients to close
    answered = statuses.count(200)
    assert count_events(r.events_root) == answered
    assert "events flushed" in r.log()


def test_readiness_turns_false_while_draining(router_factory, models):
    r = router_factory(
        two_variants(models["a"], models["b"]), extra_env={"ROUTER_DRAIN_TIMEOUT_SECONDS": "3"}
    )
    with httpx.Client(base_url=r.url, timeout=10) as held:  # an open connection keeps the drain going
        assert held.get("/v2/health/ready").status_code == 200
        os.killpg(r.proc.pid, signal.SIGTERM)
        time.sleep(0.3)
        resp = held.get("/v2/health/ready")
        assert resp.status_code == 503 and resp.json() == {"ready": False, "generation": 1, "stale": False}
        assert resp.headers["connection"] == "close"
    assert r.proc.wait(timeout=30) == 0


def test_event_records_carry_the_documented_fields(router_factory, models):
    r = router_factory(
        two_variants(
            models["a"],
            models["b"],
            canary_bp=5000,
            shadow={"variant": "shadow", "uri": str(models["c"]), "percent": 100},
        )
    )
    with r.client() as c:
        for i in range(20):
            c.post(
                "/invocations",
                json=BODY,
                headers={
                    "X-Unit-Id": f"u{i}",
                    "X-Consent": "true" if i % 2 else "false",
                    "X-Request-Id": f"req-{i}",
                },
            )
    assert r.stop() == 0
    files = sorted(r.events_root.rglob("*.parquet"))
    assert files and all(
        f.parent.name.startswith("hour=") and f.parent.parent.name.startswith("date=") for f in files
    )
    rows = [row for f in files for row in pq.read_table(f).to_pylist()]
    primary = [x for x in rows if not x["shadow"]]
    shadow = [x for x in rows if x["shadow"]]
    assert len(primary) == 20 and len(shadow) == 20
    assert (
        {x["request_id"] for x in primary}
        == {f"req-{i}" for i in range(20)}
        == {x["request_id"] for x in shadow}
    )
    assert {x["variant"] for x in shadow} == {"shadow"}
    for x in primary:
        i = int(x["request_id"].split("-")[1])
        consent = i % 2 == 1
        assert x["consent"] is consent
        assert x["unit_id"] == (f"u{i}" if consent else None), "no unit id without consent (docs/privacy.md)"
        assert x["model"] == "churn" and x["status"] == 200 and x["rows"] == 1 and 0 < x["score"] < 1
        assert x["latency_ms"] > 0 and x["model_version"]


def test_a_failing_event_sink_keeps_serving_and_counts_dropped_records(router_factory, models, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the events directory should be")
    r = router_factory(
        two_variants(models["a"], models["b"]),
        extra_env={
            "ROUTER_EVENTS_ROOT": str(blocker / "events"),
            "ROUTER_EVENTS_MAX_BUFFER": "10",
            "ROUTER_EVENTS_FLUSH_SECONDS": "0.2",
        },
    )
    with r.client() as c:
        for _ in range(30):
            assert c.post("/invocations", json=BODY).status_code == 200
        deadline = time.monotonic() + 20  # the writer runs at nice 10: on a loaded machine it can lag
        while True:
            time.sleep(0.5)
            m = c.get("/metrics").text
            if "router_events_sink_failures_total 0" not in m or time.monotonic() > deadline:
                break
    dropped = int(
        next(line.split()[-1] for line in m.splitlines() if line.startswith("router_events_dropped_total"))
    )
    buffered = int(
        next(line.split()[-1] for line in m.splitlines() if line.startswith("router_events_buffered"))
    )
    failures = int(
        next(
            line.split()[-1]
            for line in m.splitlines()
            if line.startswith("router_events_sink_failures_total")
        )
    )
    assert failures >= 1 and dropped >= 20 and dropped + buffered == 30


def test_serves_https_when_given_a_certificate(router_factory, models, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    r = router_factory(
        two_variants(models["a"], models["b"]),
        scheme="https",
        wait=False,
        args=["--ssl-certfile", str(cert), "--ssl-keyfile", str(key)],
    )
    deadline = time.monotonic() + 60
    with httpx.Client(verify=str(cert), timeout=5) as c:
        while True:
            try:
                resp = c.post(f"{r.url}/invocations", json=BODY)
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline and r.proc.poll() is None, r.log()
                time.sleep(0.25)
    assert resp.status_code == 200 and "predictions" in resp.json()
