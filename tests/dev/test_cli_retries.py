"""The Airflow client tries idempotent requests again when no answer comes, and never resends a change.

A real HTTP server on loopback answers like Airflow's REST API but stalls the first requests longer
than the client's timeout (as a loaded api-server did during the production demo's registration).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from modelgate_dev.cli import AirflowClient, CliError


class _Airflow(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.stall: dict[str, int] = {}  # "METHOD path" -> how many of its next requests stall
        self.seen: dict[str, int] = {}


class _Handler(BaseHTTPRequestHandler):
    server: _Airflow

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self, body: dict[str, object]) -> None:
        key = f"{self.command} {self.path.split('?')[0]}"
        self.server.seen[key] = self.server.seen.get(key, 0) + 1
        n = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(n)
        if self.server.stall.get(key, 0) > 0:
            self.server.stall[key] -= 1
            time.sleep(1.0)  # past the client's 0.3 s timeout
        data = json.dumps(body).encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the client gave up on this one

    def do_POST(self) -> None:
        if self.path == "/auth/token":
            self._answer({"access_token": "t"})
        else:
            self._answer({"dag_run_id": "manual__1", "state": "queued"})

    def do_GET(self) -> None:
        self._answer({"dag_run_id": "manual__1", "state": "success"})

    def do_PATCH(self) -> None:
        self._answer({"is_paused": False})


@pytest.fixture
def airflow() -> Iterator[_Airflow]:
    srv = _Airflow()
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def _client(srv: _Airflow) -> AirflowClient:
    return AirflowClient(
        f"http://127.0.0.1:{srv.server_address[1]}", "admin", "pw", timeout=0.3, backoff_s=0.05
    )


def test_reads_and_the_token_are_tried_again_after_a_timeout(airflow: _Airflow) -> None:
    airflow.stall = {"POST /auth/token": 1, "GET /api/v2/dags/d/dagRuns/r": 2}
    client = _client(airflow)
    assert client.run_state("d", "r") == "success"
    assert airflow.seen == {"POST /auth/token": 2, "GET /api/v2/dags/d/dagRuns/r": 3}


def test_a_read_that_never_answers_fails_naming_the_request(airflow: _Airflow) -> None:
    client = _client(airflow)
    airflow.stall = {"GET /api/v2/dags/d/dagRuns/r": 10}
    with pytest.raises(CliError, match="GET /api/v2/dags/d/dagRuns/r failed"):
        client.run_state("d", "r")
    assert airflow.seen["GET /api/v2/dags/d/dagRuns/r"] == client.attempts


def test_triggering_a_run_is_not_sent_twice(airflow: _Airflow) -> None:
    client = _client(airflow)
    airflow.stall = {"POST /api/v2/dags/d/dagRuns": 1}
    with pytest.raises(CliError, match="POST /api/v2/dags/d/dagRuns failed"):
        client.trigger("d", {})
    # the unpause before it is idempotent (sent once, answered); the run was created once, not twice
    assert airflow.seen == {
        "POST /auth/token": 1,
        "PATCH /api/v2/dags/d": 1,
        "POST /api/v2/dags/d/dagRuns": 1,
    }
