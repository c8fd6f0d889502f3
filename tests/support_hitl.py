"""Human-in-the-loop in tests: a real Airflow api-server and an approver answering through its REST API.

The api-server runs on the tests' metadata DB (the one ``support_airflow.run_dag`` runs ``dag.test()``
on) with the simple auth manager and named admin users, so an answer is recorded as given by that
user, as it would be from the UI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from support import REPO, free_port, stop, wait_http
from support_airflow import ensure_airflow_db

from modelgate_dev.cli import answerable

APPROVERS = {"ana": "ana-test-password", "bo": "bo-test-password"}


@dataclass
class ApiServer:
    """A running api-server: its process, base URL and the users who may log in."""

    proc: subprocess.Popen[bytes]
    url: str
    passwords: dict[str, str]

    def wait_ready(self, timeout: float = 120) -> ApiServer:
        """Wait until the REST API answers (the server is started early and warms up meanwhile)."""
        wait_http(f"{self.url}/api/v2/version", timeout=timeout, proc=self.proc)
        return self


@contextmanager
def api_server_process(
    folder: Path, env: dict[str, str] | None = None, viewers: dict[str, str] | None = None
) -> Iterator[ApiServer]:
    """Start ``airflow api-server`` on loopback (users :data:`APPROVERS`, all admin), stop it on exit.

    The repository root is on its ``PYTHONPATH`` (as in the local stack), so the plugins folder's
    modules import ``plugins.*`` and ``include.*``.

    Args:
        folder: where its password file and log go.
        env: more environment variables for the server (e.g. the MLflow server it reads).
        viewers: read-only users (SimpleAuthManager's ``viewer`` role) and their passwords.

    Yields:
        The server, not yet necessarily ready (see :meth:`ApiServer.wait_ready`).
    """
    ensure_airflow_db()
    port = free_port()
    passwords = folder / "passwords.json"
    users = {**APPROVERS, **(viewers or {})}
    passwords.write_text(json.dumps(users))
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p),
        **(env or {}),
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="False",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=",".join(
            [*(f"{u}:admin" for u in APPROVERS), *(f"{u}:viewer" for u in viewers or {})]
        ),
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(passwords),
    )
    airflow = Path(sys.executable).parent / "airflow"
    with open(folder / "api-server.log", "wb") as log:
        proc = subprocess.Popen(
            [str(airflow), "api-server", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield ApiServer(proc, f"http://127.0.0.1:{port}", users)
    finally:
        stop(proc, timeout=3)


class Approver(threading.Thread):
    """Answers a DAG's HITL requests through the Airflow REST API, logged in as ``user``.

    ``answers`` maps a task id to the option to choose, or to the full PATCH body
    (``{"chosen_options": [...], "params_input": {...}}``); each task id is answered once (every
    map index of a mapped task gets the same answer until one is given), once its task has parked
    (``modelgate_dev.cli.answerable``). The form bodies shown to the
    human are kept in ``bodies``, the PATCH responses in ``responses``, failures in ``errors``.
    """

    def __init__(
        self, server: ApiServer, dag_id: str, answers: dict[str, str | dict[str, Any]], user: str = "ana"
    ) -> None:
        super().__init__(daemon=True)
        self.server, self.dag_id, self.user = server, dag_id, user
        self.answers = dict(answers)
        self.bodies: dict[str, str] = {}
        self.responses: dict[str, dict[str, Any]] = {}
        self.done = threading.Event()
        self.errors: list[str] = []

    def _login(self, c: httpx.Client) -> None:
        r = c.post("/auth/token", json={"username": self.user, "password": self.server.passwords[self.user]})
        r.raise_for_status()
        c.headers["Authorization"] = f"Bearer {r.json()['access_token']}"

    def _answer(self, c: httpx.Client, detail: dict[str, Any]) -> None:
        ti = detail["task_instance"]
        if not answerable(detail) or ti["task_id"] not in self.answers:
            return
        self.bodies[ti["task_id"]] = detail["body"]
        answer = self.answers.pop(ti["task_id"])
        body = answer if isinstance(answer, dict) else {"chosen_options": [answer], "params_input": {}}
        url = (
            f"/api/v2/dags/{self.dag_id}/dagRuns/{ti['dag_run_id']}/taskInstances/"
            f"{ti['task_id']}/{ti['map_index']}/hitlDetails"
        )
        p = c.patch(url, json=body)
        if p.status_code == 200:
            self.responses[ti["task_id"]] = p.json()
        else:
            self.errors.append(f"{p.status_code} {p.text[:300]}")

    def run(self) -> None:
        deadline = time.monotonic() + 240
        try:
            with httpx.Client(base_url=self.server.url, timeout=30) as c:
                self._login(c)
                while self.answers and time.monotonic() < deadline and not self.done.is_set():
                    r = c.get(f"/api/v2/dags/{self.dag_id}/dagRuns/~/hitlDetails")
                    for d in r.json().get("hitl_details", []) if r.status_code == 200 else []:
                        self._answer(c, d)
                    time.sleep(0.5)
        except httpx.HTTPError as e:
            self.errors.append(f"{type(e).__name__}: {e}")

    def finish(self, timeout: float = 10) -> Approver:
        """Stop polling and wait for the thread."""
        self.done.set()
        self.join(timeout)
        return self
