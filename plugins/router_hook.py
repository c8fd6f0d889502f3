"""Airflow side of the router's admin API: connection ``modelgate_router`` → ``RouterHook``.

Route changes made through the hook are also appended to the foundation's audit log
(``include.registry.audit.append_audit``) with the DAG run id; the router keeps its own
append-only change log as well (``GET /admin/changes``).
"""

from __future__ import annotations

import os
from typing import Any

from airflow.sdk import BaseHook

from include.errors import ModelgateError

CONN_ID = "modelgate_router"


class RouterHookError(ModelgateError):
    """Raised when the router's admin API refuses a request or cannot be reached."""

    code = "router_admin_error"


class RouterHook(BaseHook):
    """Wraps the router admin API for DAGs.

    The connection (type ``http``) gives host and port (schema ``https`` for TLS); its password is
    the admin bearer token. Without the connection, ``MODELGATE_ROUTER_URL`` and
    ``ROUTER_ADMIN_TOKEN`` are used.

    Args:
        router_conn_id: the Airflow connection id.
        actor: who is recorded in the audit log for changes (default ``airflow``).
        timeout: HTTP timeout in seconds (route changes load models, so keep it generous).
    """

    conn_name_attr = "router_conn_id"
    default_conn_name = CONN_ID
    conn_type = "http"
    hook_name = "modelgate router"

    def __init__(
        self, router_conn_id: str = CONN_ID, actor: str = "airflow", timeout: float = 120.0, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.router_conn_id = router_conn_id
        self.actor = actor
        self.timeout = timeout
        self._base: tuple[str, str] | None = None

    def get_conn(self) -> tuple[str, str]:
        """Return the router base URL and admin token.

        Returns:
            ``(base_url, token)``.
        """
        if self._base is not None:
            return self._base
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            conn = self.get_connection(self.router_conn_id)
        except AirflowNotFoundException:
            url = os.environ.get("MODELGATE_ROUTER_URL", "http://127.0.0.1:8500")
            self._base = (url.rstrip("/"), os.environ.get("ROUTER_ADMIN_TOKEN", ""))
            return self._base
        scheme = conn.schema or "http"
        url = f"{scheme}://{conn.host}" + (f":{conn.port}" if conn.port else "")
        self._base = (url, conn.password or "")
        return self._base

    def _call(self, method: str, path: str, json: Any = None) -> Any:
        import httpx

        url, token = self.get_conn()
        try:
            with httpx.Client(base_url=url, timeout=self.timeout) as c:
                r = c.request(method, path, json=json, headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as e:
            raise RouterHookError(f"router at {url} unreachable for {method} {path}: {e}") from e
        if r.status_code >= 400:
            try:
                msg = r.json().get("error", r.text)
            except ValueError:
                msg = r.text
            raise RouterHookError(f"router refused {method} {path} ({r.status_code}): {msg}")
        return r.json()

    def get_routes(self, model: str) -> dict[str, Any] | None:
        """Return one model's routes, or None when the router does not serve it.

        Args:
            model: the model name.

        Returns:
            The routes as JSON data, or None.
        """
        try:
            return self._call("GET", f"/admin/models/{model}/routes")["routes"]
        except RouterHookError as e:
            if "(404)" in e.message:
                return None
            raise

    def put_routes(self, model: str, routes: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
        """Replace one model's routes and record the change in the audit log.

        Args:
            model: the model name.
            routes: the new routes (validated, loaded and warmed by the router before the swap).
            run_id: the Airflow run id, recorded in the audit log.

        Returns:
            The router's answer (``model``, ``revision``, ``routes``).

        Raises:
            RouterHookError: the router refused the routes (its message says why).
        """
        before = self.get_routes(model)
        result: dict[str, Any] = self._call("PUT", f"/admin/models/{model}/routes", json=routes)
        from include.registry.audit import append_audit

        append_audit(self.actor, "routes.put", f"routes:{model}", before, result["routes"], run_id)
        return result

    def set_weights(self, model: str, weights: dict[str, int], run_id: str | None = None) -> dict[str, Any]:
        """Change variant weights (basis points) of a model, keeping everything else.

        Args:
            model: the model name.
            weights: variant name to new weight; the result must still sum to 10000.
            run_id: the Airflow run id.

        Returns:
            The router's answer.

        Raises:
            RouterHookError: unknown model or variant, or the router refused the weights.
        """
        routes = self.get_routes(model)
        if routes is None:
            raise RouterHookError(f"router does not serve model {model!r}")
        names = {v["name"] for v in routes["variants"]}
        unknown = set(weights) - names
        if unknown:
            raise RouterHookError(
                f"model {model!r} has no variants {sorted(unknown)}; variants: {sorted(names)}"
            )
        for v in routes["variants"]:
            if v["name"] in weights:
                v["weight_bp"] = int(weights[v["name"]])
        return self.put_routes(model, routes, run_id)

    def reload(self, run_id: str | None = None) -> dict[str, Any]:
        """Make the router re-read its routes file, recording the change in the audit log.

        Args:
            run_id: the Airflow run id.

        Returns:
            The router's answer (``revision``, ``document``).
        """
        before = self._call("GET", "/admin/routes")["document"]
        result: dict[str, Any] = self._call("POST", "/admin/reload")
        from include.registry.audit import append_audit

        append_audit(self.actor, "routes.reload", "routes:*", before, result["document"], run_id)
        return result

    def stats(self) -> list[dict[str, Any]]:
        """Return live per-variant statistics (requests, errors, latency quantiles, prediction mean)."""
        return self._call("GET", "/admin/stats")["variants"]

    def guard_events(self) -> list[dict[str, Any]]:
        """Return the guard's cut events (model, variant, reason, window counts)."""
        return self._call("GET", "/admin/guard/events")["events"]

    def changes(self, limit: int = 1000) -> list[dict[str, Any]]:
        """Return the router's own change log, oldest first.

        Args:
            limit: at most this many of the latest records.

        Returns:
            The records.
        """
        return self._call("GET", f"/admin/changes?limit={limit}")["changes"]
