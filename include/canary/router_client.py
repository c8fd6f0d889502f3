"""A small client of the router's admin API for code outside Airflow (the rollback CLI, the demo).

It has the methods of ``plugins.router_hook.RouterHook`` that the canary code uses, so the domain
functions take either; route changes are appended to the audit log as the hook does.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

from include.canary.errors import CanaryError


class RouterAdmin(Protocol):
    """What the canary code needs from the router (``RouterHook`` and :class:`RouterClient` fit)."""

    def get_routes(self, model: str) -> dict[str, Any] | None:
        """Return a model's routes or None."""

    def put_routes(self, model: str, routes: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
        """Replace a model's routes."""

    def guard_events(self) -> list[dict[str, Any]]:
        """Return the guard's cut events."""


class RouterClient:
    """Router admin API over httpx.

    Args:
        url: router base URL (default ``MODELGATE_ROUTER_URL`` or ``http://127.0.0.1:8500``).
        token: admin token (default ``ROUTER_ADMIN_TOKEN``).
        actor: who is recorded in the audit log.
        timeout: HTTP timeout in seconds.
    """

    def __init__(
        self, url: str | None = None, token: str | None = None, actor: str = "cli", timeout: float = 120.0
    ) -> None:
        self.url = (url or os.environ.get("MODELGATE_ROUTER_URL", "http://127.0.0.1:8500")).rstrip("/")
        self.token = token if token is not None else os.environ.get("ROUTER_ADMIN_TOKEN", "")
        self.actor = actor
        self.timeout = timeout

    def _call(self, method: str, path: str, json: Any = None) -> tuple[int, Any]:
        import httpx

        try:
            with httpx.Client(base_url=self.url, timeout=self.timeout) as c:
                r = c.request(method, path, json=json, headers={"Authorization": f"Bearer {self.token}"})
        except httpx.HTTPError as e:
            raise CanaryError(f"router at {self.url} unreachable for {method} {path}: {e}") from e
        try:
            body = r.json()
        except ValueError:
            body = {"error": r.text}
        if r.status_code >= 400 and r.status_code != 404:
            raise CanaryError(f"router refused {method} {path} ({r.status_code}): {body.get('error', body)}")
        return r.status_code, body

    def get_routes(self, model: str) -> dict[str, Any] | None:
        """Return one model's routes, or None when the router does not serve it.

        Args:
            model: the model name.

        Returns:
            The routes or None.
        """
        status, body = self._call("GET", f"/admin/models/{model}/routes")
        return None if status == 404 else body["routes"]

    def put_routes(self, model: str, routes: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
        """Replace one model's routes and audit the change.

        Args:
            model: the model name.
            routes: the new routes.
            run_id: recorded in the audit log.

        Returns:
            The router's answer.

        Raises:
            CanaryError: the router refused.
        """
        from include.registry.audit import append_audit

        before = self.get_routes(model)
        status, body = self._call("PUT", f"/admin/models/{model}/routes", json=routes)
        if status == 404:
            raise CanaryError(f"router refused PUT routes of {model}: {body.get('error', body)}")
        append_audit(self.actor, "routes.put", f"routes:{model}", before, body["routes"], run_id)
        return body

    def guard_events(self) -> list[dict[str, Any]]:
        """Return the guard's cut events."""
        return self._call("GET", "/admin/guard/events")[1]["events"]
