"""The ``modelgate`` command: trigger DAG runs through Airflow's REST API (for CI), audit, batch.

Examples::

    modelgate trigger model_registration --conf '{"model_name": "churn", "artifact_uri": "m.onnx"}'
    modelgate audit verify
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from datetime import datetime
from typing import Any

import httpx

log = logging.getLogger(__name__)

TERMINAL = {"success", "failed"}

ATTEMPTS = 4
"""Tries of an idempotent request (reads, the token, unpausing) whose answer did not come (timeout,
connection reset, 502-504): a loaded api-server answered a read of the registration run after 30 s once
and failed the production demo. Requests that change something are tried again only when they were
never sent (connection refused)."""

_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE"})

PARKED = {"awaiting_input", "deferred"}
"""Task states in which an answer to a human-in-the-loop request resumes the task. The request is
written while the task still runs, a moment before it parks; Airflow records an answer given in that
moment but resumes nothing (its PATCH handler resumes parked tasks only), and the task then waits for
an answer it already has until the approval times out. So answers wait until the task has parked."""


def answerable(detail: dict[str, Any]) -> bool:
    """Whether a human-in-the-loop request (an item of ``hitlDetails``) is unanswered and its task parked.

    Args:
        detail: one request as the REST API returns it.

    Returns:
        True when answering it now resumes its task.
    """
    return not detail.get("response_received") and detail.get("task_instance", {}).get("state") in PARKED


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class CliError(Exception):
    """Raised when the command cannot do what was asked; the message is printed as is."""


def _default_password() -> str | None:
    from modelgate_dev.stack import StackConfig

    path = StackConfig.from_env().home / "secrets" / "airflow-admin-password"
    return path.read_text().strip() if path.exists() else None


class AirflowClient:
    """A small client of Airflow 3's REST API v2 with a JWT from ``/auth/token``."""

    def __init__(
        self,
        url: str,
        username: str,
        password: str,
        timeout: float = 60.0,
        attempts: int = ATTEMPTS,
        backoff_s: float = 1.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.http = httpx.Client(base_url=self.url, timeout=timeout)
        try:
            r = self._send(
                "POST", "/auth/token", idempotent=True, json={"username": username, "password": password}
            )
        except httpx.HTTPError as e:
            raise CliError(f"cannot reach Airflow at {self.url}: {e}") from e
        if r.status_code in (401, 403):
            raise CliError(f"Airflow at {self.url} refused the credentials of user {username!r}")
        if r.status_code >= 400:
            raise CliError(f"Airflow at {self.url} answered {r.status_code} to /auth/token: {r.text[:300]}")
        self.http.headers["Authorization"] = f"Bearer {r.json()['access_token']}"

    def _send(self, method: str, path: str, *, idempotent: bool | None = None, **kw: Any) -> httpx.Response:
        """Send one request, trying an idempotent one again (up to ``attempts``) when no answer came.

        Args:
            method: HTTP method.
            path: path under the API's URL.
            idempotent: whether sending it twice does no harm (default: by method).
            **kw: passed to ``httpx.Client.request``.

        Returns:
            The last response.

        Raises:
            httpx.HTTPError: no answer after the last try.
        """
        again = method in _IDEMPOTENT if idempotent is None else idempotent
        for attempt in range(1, self.attempts + 1):
            try:
                r = self.http.request(method, path, **kw)
            except httpx.TransportError as e:
                never_sent = isinstance(e, httpx.ConnectError | httpx.ConnectTimeout)
                if attempt == self.attempts or not (again or never_sent):
                    raise
                log.warning("%s %s: %s; trying again (%d/%d)", method, path, e or type(e).__name__, attempt,
                            self.attempts)  # fmt: skip
            else:
                if not (again and r.status_code in (502, 503, 504) and attempt < self.attempts):
                    return r
                log.warning("%s %s answered %d; trying again (%d/%d)", method, path, r.status_code, attempt,
                            self.attempts)  # fmt: skip
            time.sleep(min(self.backoff_s * 2.0 ** (attempt - 1), 10.0))
        raise AssertionError("unreachable")  # pragma: no cover

    def _call(self, method: str, path: str, *, idempotent: bool | None = None, **kw: Any) -> Any:
        try:
            r = self._send(method, path, idempotent=idempotent, **kw)
        except httpx.HTTPError as e:
            raise CliError(f"{method} {path} failed: {e or type(e).__name__}") from e
        if r.status_code >= 400:
            raise CliError(f"{method} {path} answered {r.status_code}: {r.text[:500]}")
        return r.json() if r.content else None

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET ``path`` of the API (tried again when no answer comes) and return its JSON.

        Raises:
            CliError: no answer, or an error status.
        """
        return self._call("GET", path, params=params)

    def wait_for_dag(self, dag_id: str, timeout: float) -> None:
        """Wait until the dag-processor has parsed ``dag_id``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                status = self._send("GET", f"/api/v2/dags/{dag_id}").status_code
            except httpx.TransportError as e:
                status, error = 0, str(e) or type(e).__name__
            if status == 200:
                return
            if time.monotonic() > deadline:
                got = f"HTTP {status}" if status else f"no answer: {error}"
                raise CliError(f"DAG {dag_id!r} is not known to Airflow at {self.url} ({got})")
            time.sleep(1.0)

    def unpause(self, dag_id: str) -> None:
        """Unpause ``dag_id`` (asset-scheduled DAGs only run when unpaused)."""
        self._call("PATCH", f"/api/v2/dags/{dag_id}", idempotent=True, json={"is_paused": False})

    def wait_for_run_after(
        self, dag_id: str, since: datetime, timeout: float, poll: float = 2.0
    ) -> dict[str, Any]:
        """Wait for the first run of ``dag_id`` created after ``since`` to finish; return it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = self._call(
                "GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"order_by": "-id", "limit": 50}
            )
            newer = [
                r for r in runs["dag_runs"] if r.get("run_after") and _parse_time(r["run_after"]) >= since
            ]
            if newer and newer[-1]["state"] in TERMINAL:
                return dict(newer[-1])
            time.sleep(poll)
        raise CliError(f"no finished run of {dag_id} created after {since.isoformat()} within {timeout:.0f}s")

    def pending_approvals(self, dag_id: str, run_id: str = "~") -> list[dict[str, Any]]:
        """Return the human-in-the-loop requests of ``dag_id`` (one run, or all with ``~``) still unanswered
        whose task waits for the answer (see ``answerable``)."""
        details = self._call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/hitlDetails")["hitl_details"]
        return [d for d in details if answerable(d)]

    def answer(self, detail: dict[str, Any], option: str, reason: str | None = None) -> dict[str, Any]:
        """Answer one human-in-the-loop request (as returned by :meth:`pending_approvals`).

        Args:
            detail: the request.
            option: the option chosen, one of ``detail["options"]``.
            reason: written to the form's ``reason`` field when it has one.

        Raises:
            CliError: the option is not offered, or Airflow refused the answer.
        """
        if option not in detail.get("options", []):
            raise CliError(f"{option!r} is not an option of this request; options: {detail.get('options')}")
        ti = detail["task_instance"]
        params = {"reason": reason} if reason is not None and "reason" in (detail.get("params") or {}) else {}
        path = (
            f"/api/v2/dags/{ti['dag_id']}/dagRuns/{ti['dag_run_id']}/taskInstances/"
            f"{ti['task_id']}/{ti['map_index']}/hitlDetails"
        )
        return dict(self._call("PATCH", path, json={"chosen_options": [option], "params_input": params}))

    def xcom(
        self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1
    ) -> Any:
        """Return a task's XCom value (JSON data) read through the REST API."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        value = self._call("GET", path, params={"map_index": map_index})["value"]
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        """Unpause ``dag_id`` and start a run with ``conf``; return the run id."""
        self._call("PATCH", f"/api/v2/dags/{dag_id}", idempotent=True, json={"is_paused": False})
        run = self._call("POST", f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
        return str(run["dag_run_id"])

    def run_state(self, dag_id: str, run_id: str) -> str:
        """Return the state of one run."""
        return str(self._call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"])

    def failed_tasks(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Return the failed task instances of a run, each with the error line from its log."""
        tis = self._call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        out = []
        for ti in tis:
            if ti["state"] != "failed":
                continue
            out.append({"task_id": ti["task_id"], "error": self._error_line(dag_id, run_id, ti)})
        return out

    def _error_line(self, dag_id: str, run_id: str, ti: dict[str, Any]) -> str | None:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/logs/{ti['try_number']}"
        try:
            r = self._send("GET", path, headers={"Accept": "application/json"})
        except httpx.TransportError:
            return None
        if r.status_code != 200:
            return None
        content = r.json().get("content", [])
        found: str | None = None
        for item in content if isinstance(content, list) else []:
            details = item.get("error_detail") if isinstance(item, dict) else None
            for d in details or []:
                if isinstance(d, dict) and d.get("exc_value"):
                    found = f"{d.get('exc_type', 'Error')}: {d['exc_value']}"
                    if d.get("exc_type") == "AirflowFailException":
                        return found
        return found


def cmd_trigger(args: argparse.Namespace) -> int:
    """Trigger a DAG run, follow it to the end, print the outcome; non-zero exit when it failed."""
    try:
        conf = json.loads(args.conf) if args.conf else {}
    except json.JSONDecodeError as e:
        raise CliError(f"--conf is not valid JSON: {e}") from e
    if not isinstance(conf, dict):
        raise CliError("--conf must be a JSON object")
    client = _client(args)
    client.wait_for_dag(args.dag_id, args.timeout)
    run_id = client.trigger(args.dag_id, conf)
    print(f"triggered {args.dag_id} run {run_id}")
    if args.no_wait:
        return 0
    deadline = time.monotonic() + args.timeout
    state = "queued"
    while state not in TERMINAL:
        if time.monotonic() > deadline:
            print(f"run {run_id} still {state} after {args.timeout:.0f}s", file=sys.stderr)
            return 3
        time.sleep(args.poll)
        state = client.run_state(args.dag_id, run_id)
    result: dict[str, Any] = {"dag_id": args.dag_id, "run_id": run_id, "state": state}
    if state == "failed":
        result["failed_tasks"] = client.failed_tasks(args.dag_id, run_id)
    print(json.dumps(result, indent=2))
    return 0 if state == "success" else 1


def _client(args: argparse.Namespace) -> AirflowClient:
    password = args.password or _default_password()
    if not password:
        raise CliError("no Airflow password: pass --password or set MODELGATE_AIRFLOW_PASSWORD")
    return AirflowClient(args.url, args.username, password)


def cmd_approvals(args: argparse.Namespace) -> int:
    """List a DAG's unanswered approval requests, or answer the ones of a task."""
    client = _client(args)
    pending = client.pending_approvals(args.dag_id, args.run_id)
    if args.task_id:
        pending = [d for d in pending if d["task_instance"]["task_id"] == args.task_id]
    if not args.answer:
        for d in pending:
            ti = d["task_instance"]
            print(json.dumps({"run_id": ti["dag_run_id"], "task_id": ti["task_id"], "map_index": ti["map_index"],
                              "subject": d.get("subject"), "options": d.get("options")}))  # fmt: skip
        return 0
    if not pending:
        raise CliError(f"no unanswered approval request of {args.dag_id} matches")
    for d in pending:
        client.answer(d, args.answer, args.reason)
        ti = d["task_instance"]
        print(f"answered {ti['task_id']}[{ti['map_index']}] of {ti['dag_run_id']}: {args.answer}")
    return 0


def _airflow_args(p: argparse.ArgumentParser) -> None:
    from modelgate_dev.settings import get_dev_settings

    s = get_dev_settings()
    p.add_argument("--url", default=s.airflow_url)
    p.add_argument("--username", default=s.airflow_username)
    p.add_argument(
        "--password",
        default=s.airflow_password,
        help="default: $MODELGATE_AIRFLOW_PASSWORD, else the local stack's generated password",
    )


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``modelgate``."""
    p = argparse.ArgumentParser(prog="modelgate", description="modelgate: registry → gates → promotion")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("trigger", help="trigger a DAG run through Airflow's REST API and follow it")
    t.add_argument("dag_id")
    t.add_argument("--conf", default="{}", help="run conf as a JSON object")
    _airflow_args(t)
    t.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the run")
    t.add_argument("--poll", type=float, default=2.0)
    t.add_argument("--no-wait", action="store_true", help="return right after triggering")
    t.set_defaults(func=cmd_trigger)
    ap = sub.add_parser("approvals", help="list or answer a DAG's human-in-the-loop approval requests")
    ap.add_argument("dag_id")
    ap.add_argument("--run-id", default="~", help="one run (default: every run)")
    ap.add_argument("--task-id", help="only this task's requests")
    ap.add_argument("--answer", help="choose this option (e.g. Approve) for every matching request")
    ap.add_argument("--reason", help="recorded with the answer when the form has a reason field")
    _airflow_args(ap)
    ap.set_defaults(func=cmd_approvals)
    a = sub.add_parser("audit", help="audit log: verify | tail")
    a.add_argument("rest", nargs=argparse.REMAINDER)
    a.set_defaults(func=lambda ns: _delegate("include.registry.audit", ns.rest))
    b = sub.add_parser("batch", help="batch inference job (see docs/batch.md)", add_help=False)
    b.add_argument("rest", nargs=argparse.REMAINDER)
    b.set_defaults(func=lambda ns: _delegate("include.batch.__main__", ns.rest))
    return p


def _delegate(module: str, argv: list[str]) -> int:
    import importlib

    mod = importlib.import_module(module)
    return int(mod.main(argv) or 0)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``modelgate`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    delegated = {"audit": "include.registry.audit", "batch": "include.batch.__main__"}
    if argv and argv[0] in delegated:  # sub-tools own their arguments (and --help)
        try:
            return _delegate(delegated[argv[0]], argv[1:])
        except CliError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except CliError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
