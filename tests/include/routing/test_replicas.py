"""Replica discovery and the convergence wait.

The wait is exercised here against small loopback HTTP endpoints that answer ``/v2/health/ready``
the way the control-plane contract says a replica does (header, body, 503 while starting), with a
generation a test moves; the last test waits on real router processes that follow one store.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from support import free_port

from include.routing.errors import InvalidReplicas, NotConverged, RouterUnreachable
from include.routing.replicas import (
    replica_state,
    replicas_from_endpoints,
    replicas_from_extra,
    wait_converged,
)


class _Replica:
    """A loopback endpoint answering ``/v2/health/ready`` with a settable generation."""

    def __init__(self, generation: int | None, status: int = 200, header: bool = True, stale: bool = False) -> None:
        self.generation, self.status, self.header, self.stale = generation, status, header, stale
        replica = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body: dict[str, Any] = {"ready": replica.status == 200, "stale": replica.stale}
                if replica.generation is not None:
                    body["generation"] = replica.generation
                data = json.dumps(body).encode()
                self.send_response(replica.status)
                if replica.header and replica.generation is not None:
                    self.send_header("X-Routes-Generation", str(replica.generation))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def replicas() -> Iterator[list[_Replica]]:
    made = [_Replica(5), _Replica(5, header=False), _Replica(4, status=503)]
    yield made
    for r in made:
        r.server.shutdown()


def test_state_is_read_from_the_header_or_the_body_even_while_not_ready(replicas: list[_Replica]) -> None:
    a, b, c = (replica_state(r.url) for r in replicas)
    assert (a.generation, b.generation, c.generation) == (5, 5, 4)
    assert a.stale is False and a.error is None
    gone = replica_state(f"http://127.0.0.1:{free_port()}")
    assert gone.generation is None and gone.error and gone.error.startswith("unreachable")


def test_wait_returns_once_the_last_replica_catches_up(replicas: list[_Replica]) -> None:
    threading.Timer(0.6, lambda: setattr(replicas[2], "generation", 6)).start()
    t = time.monotonic()
    states = wait_converged([r.url for r in replicas], 5, timeout=10, poll=0.05)
    took = time.monotonic() - t
    assert [s.generation for s in states] == [5, 5, 6]
    assert 0.5 <= took < 5.0, took


def test_a_replica_that_does_not_converge_is_named_with_what_it_reported(replicas: list[_Replica]) -> None:
    replicas[1].stale = True
    dead = f"http://127.0.0.1:{free_port()}"
    urls = [r.url for r in replicas] + [dead]
    t = time.monotonic()
    with pytest.raises(NotConverged) as e:
        wait_converged(urls, 5, timeout=0.8, poll=0.05)
    assert time.monotonic() - t < 5.0
    assert set(e.value.lagging) == {replicas[2].url, dead}
    assert e.value.lagging[replicas[2].url] == "generation 4"
    assert "2 of 4 router replica(s) did not serve routes generation 5 within 0.8s" in e.value.message
    with pytest.raises(InvalidReplicas):
        wait_converged([], 1)


def test_replicas_come_from_the_connection_extra() -> None:
    assert replicas_from_extra(None, "http://h:1/") == ["http://h:1"]
    assert replicas_from_extra({"replicas": ["http://a:1", "http://b:2/", "http://a:1"]}, "x") == [
        "http://a:1",
        "http://b:2",
    ]
    for bad in ([], "http://a:1", ["a:1"], [1]):
        with pytest.raises(InvalidReplicas, match="replica"):
            replicas_from_extra({"replicas": bad}, "http://h:1")


def test_replicas_come_from_the_ready_addresses_of_kubernetes_endpoints() -> None:
    from kubernetes.client import (
        CoreV1EndpointPort,
        V1EndpointAddress,
        V1Endpoints,
        V1EndpointSubset,
        V1ObjectMeta,
    )

    ep = V1Endpoints(
        metadata=V1ObjectMeta(name="router"),
        subsets=[
            V1EndpointSubset(
                addresses=[V1EndpointAddress(ip="10.0.0.7"), V1EndpointAddress(ip="10.0.1.3")],
                not_ready_addresses=[V1EndpointAddress(ip="10.0.2.9")],
                ports=[CoreV1EndpointPort(name="http", port=8500), CoreV1EndpointPort(name="metrics", port=9100)],
            )
        ],
    )
    assert replicas_from_endpoints(ep, "http") == ["http://10.0.0.7:8500", "http://10.0.1.3:8500"]
    with pytest.raises(InvalidReplicas, match="cannot pick the router port"):
        replicas_from_endpoints(ep)
    with pytest.raises(InvalidReplicas, match="no ready router replica"):
        replicas_from_endpoints(V1Endpoints(metadata=V1ObjectMeta(name="router"), subsets=None))


def test_a_change_sent_to_one_real_replica_is_awaited_on_every_replica(tmp_path) -> None:
    from serving.conftest import ADMIN_TOKEN, start_router
    from support import make_logreg_onnx, stop

    from include.routing.client import RouterClient

    store = f"sqlite:///{tmp_path / 'store.db'}"
    model = make_logreg_onnx(tmp_path / "m.onnx", seed=1)
    routes = {"models": {"m": {"variants": [{"name": "champion", "uri": str(model), "weight_bp": 10000}]}}}
    replicas = [start_router(tmp_path / f"r{i}", routes, extra_env={"ROUTER_STORE_URL": store}) for i in range(2)]
    try:
        client = RouterClient(replicas[1].url, ADMIN_TOKEN, replicas=[r.url for r in replicas])
        doc = client.get_routes("m")
        doc["salt"] = "changed"
        answer = client.put_routes("m", doc, run_id="run-7")
        generation = answer["generation"]
        t = time.monotonic()
        states = client.wait_converged(generation, timeout=30)
        assert [s.generation for s in states] == [generation, generation]
        assert time.monotonic() - t < 5.0, "p99 convergence <= 5 s (the issue's bound)"
        assert RouterClient(replicas[0].url, ADMIN_TOKEN).get_routes("m")["salt"] == "changed"
        assert client.generation() == generation
        from modelgate_dev.canary.demo import replica_views, replicas_agree

        views = replica_views([r.url for r in replicas], "m")
        assert [(v["generation"], v["weights"], v["stale"]) for v in views] == [(generation, {"champion": 10000}, False)] * 2
        assert replicas_agree(views) is None
        assert "generations differ" in (replicas_agree([*views, {**views[0], "generation": generation - 1}]) or "")
        assert client.guard_events() == []
        stop(replicas[0].proc)
        assert client.guard_events() == [], "a replica that does not answer is skipped"
        stop(replicas[1].proc)
        with pytest.raises(RouterUnreachable):
            client.guard_events()
    finally:
        for r in replicas:
            stop(r.proc)
