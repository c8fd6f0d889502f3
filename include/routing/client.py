"""The one client of the router's admin API (``/admin/...``), used by the gates, the CLI and the hook.

``plugins.router_hook.RouterHook`` resolves its Airflow connection into a :class:`RouterClient`; code
outside Airflow builds one from a URL and token. Every route change is appended to the audit log.
Errors are told apart by the router's HTTP status code (:mod:`include.routing.errors`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from include.routing.errors import RouterError, RouterNotFound, RouterUnreachable, error_for_status
from include.routing.replicas import DEFAULT_CONVERGE_SECONDS, ReplicaState, replica_state, wait_converged

log = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:8500"
"""The local stack's first router replica."""


class RouterAdmin(Protocol):
    """What the gates need from the router (:class:`RouterClient` and ``RouterHook`` fit)."""

    def get_routes(self, model: str) -> dict[str, Any] | None:
        """Return a model's routes or None."""

    def put_routes(self, model: str, routes: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
        """Replace a model's routes."""

    def guard_events(self) -> list[dict[str, Any]]:
        """Return the guard's cut events."""

    def generation(self) -> int | None:
        """Return the routes generation the admin replica serves (None: it reports none)."""

    def all_routes(self) -> dict[str, dict[str, Any]]:
        """Return every model's routes: ``{model: routes}``."""

    def wait_converged(self, generation: int | None, timeout: float = DEFAULT_CONVERGE_SECONDS) -> list[ReplicaState]:
        """Wait until every replica serves ``generation``."""


class RouterClient:
    """Router admin API over httpx.

    Args:
        url: router base URL.
        token: admin bearer token.
        actor: who is recorded in the audit log for changes.
        timeout: HTTP timeout in seconds (route changes load models, so keep it generous).
        replicas: every replica's base URL, the gates wait for all of them (default: ``[url]``).
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str = "",
        actor: str = "cli",
        timeout: float = 120.0,
        replicas: Sequence[str] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.actor = actor
        self.timeout = timeout
        self.replicas = list(replicas) if replicas else [self.url]

    @classmethod
    def from_env(cls, url: str | None = None, actor: str = "cli", timeout: float = 120.0) -> RouterClient:
        """Build a client from the settings: ``MODELGATE_ROUTER_URL`` and ``ROUTER_ADMIN_TOKEN`` (CLIs, the stack).

        Args:
            url: base URL overriding ``MODELGATE_ROUTER_URL``.
            actor: who is recorded in the audit log.
            timeout: HTTP timeout in seconds.

        Returns:
            The client.
        """
        from include.config import get_settings

        s = get_settings()
        return cls(url or s.router_url, s.router_admin_token, actor=actor, timeout=timeout)

    def call(self, method: str, path: str, json: Any = None, headers: dict[str, str] | None = None) -> Any:
        """Send one admin request and return its JSON body.

        Args:
            method: HTTP method.
            path: path under the base URL.
            json: request body.
            headers: more request headers.

        Returns:
            The decoded JSON answer.

        Raises:
            RouterUnreachable: no answer.
            RouterRefused: a status >= 400 (``RouterNotFound`` for 404, ``RouterUnauthorized`` for 401/403).
        """
        import httpx

        try:
            with httpx.Client(base_url=self.url, timeout=self.timeout) as c:
                r = c.request(method, path, json=json, headers={"Authorization": f"Bearer {self.token}", **(headers or {})})
        except httpx.HTTPError as e:
            raise RouterUnreachable(f"router at {self.url} unreachable for {method} {path}: {e}") from e
        try:
            body = r.json()
        except ValueError:
            body = None
        if r.status_code >= 400:
            msg = body.get("error", body) if isinstance(body, dict) else r.text
            raise error_for_status(r.status_code, f"router refused {method} {path} ({r.status_code}): {msg}")
        if body is None:
            raise RouterError(f"router answered {method} {path} with a body that is not JSON", r.status_code)
        return body

    def get_routes(self, model: str) -> dict[str, Any] | None:
        """Return one model's routes, or None when the router does not serve it (404).

        Args:
            model: the model name.

        Returns:
            The routes as JSON data, or None.
        """
        try:
            return self.call("GET", f"/admin/models/{model}/routes")["routes"]
        except RouterNotFound:
            return None

    def put_routes(self, model: str, routes: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
        """Replace one model's routes and record the change in the audit log.

        Args:
            model: the model name.
            routes: the new routes (validated, loaded and warmed by the router before the swap).
            run_id: the run id recorded in the audit log.

        Returns:
            The router's answer (``model``, ``routes`` and ``generation``: the store's generation of
            the change, to wait for with :meth:`wait_converged`).

        Raises:
            RouterRefused: the router refused the routes (its message says why).
        """
        from include.registry.audit import append_audit

        before = self.get_routes(model)
        headers = {"X-Change-Reason": f"by {self.actor}"[:300]} | ({"X-Run-Id": run_id[:300]} if run_id else {})
        result: dict[str, Any] = self.call("PUT", f"/admin/models/{model}/routes", json=routes, headers=headers)
        append_audit(self.actor, "routes.put", f"routes:{model}", before, result["routes"], run_id)
        return result

    def set_weights(self, model: str, weights: dict[str, int], run_id: str | None = None) -> dict[str, Any]:
        """Change variant weights (basis points) of a model, keeping everything else.

        Args:
            model: the model name.
            weights: variant name to new weight; the result must still sum to 10000.
            run_id: the run id recorded in the audit log.

        Returns:
            The router's answer.

        Raises:
            RouterNotFound: the router does not serve the model.
            RouterError: unknown variants, or the router refused the weights.
        """
        routes = self.get_routes(model)
        if routes is None:
            raise RouterNotFound(f"router does not serve model {model!r}", 404)
        names = {v["name"] for v in routes["variants"]}
        unknown = set(weights) - names
        if unknown:
            raise RouterError(f"model {model!r} has no variants {sorted(unknown)}; variants: {sorted(names)}")
        for v in routes["variants"]:
            if v["name"] in weights:
                v["weight_bp"] = int(weights[v["name"]])
        return self.put_routes(model, routes, run_id)

    def reload(self, run_id: str | None = None) -> dict[str, Any]:
        """Make the router re-read its routes file, recording the change in the audit log.

        Args:
            run_id: the run id recorded in the audit log.

        Returns:
            The router's answer (``revision``, ``document``).
        """
        from include.registry.audit import append_audit

        before = self.call("GET", "/admin/routes")["document"]
        result: dict[str, Any] = self.call("POST", "/admin/reload")
        append_audit(self.actor, "routes.reload", "routes:*", before, result["document"], run_id)
        return result

    def all_routes(self) -> dict[str, dict[str, Any]]:
        """Return every model's routes the admin replica serves: ``{model: routes}``."""
        doc = self.call("GET", "/admin/routes")["document"]
        return dict((doc or {}).get("models") or {})

    def generation(self) -> int | None:
        """Return the routes generation the admin replica serves (None: it reports none).

        Raises:
            RouterUnreachable: the replica does not answer.
        """
        state = replica_state(self.url)
        if state.status is None:  # no answer at all (a replica answering without a generation is None)
            raise RouterUnreachable(f"router at {self.url} {state.error}")
        return state.generation

    def wait_converged(
        self, generation: int | None, timeout: float = DEFAULT_CONVERGE_SECONDS
    ) -> list[ReplicaState]:
        """Wait until every replica serves routes generation ``generation`` or later.

        Args:
            generation: the generation of a change (None: the router reports none, nothing to wait for).
            timeout: seconds to wait at most.

        Returns:
            The replicas' states (empty when there was nothing to wait for).

        Raises:
            NotConverged: a replica did not reach the generation in time.
        """
        if generation is None:
            log.warning("router at %s reports no routes generation: not waiting for replicas", self.url)
            return []
        return wait_converged(self.replicas, generation, timeout)

    def stats(self) -> list[dict[str, Any]]:
        """Return live per-variant statistics (requests, errors, latency quantiles, prediction mean)."""
        return self.call("GET", "/admin/stats")["variants"]

    def guard_events(self) -> list[dict[str, Any]]:
        """Return the guard's cut events (model, variant, reason, window counts) of every replica.

        A guard trips on the replica that saw the failures (and writes the cut through the store), so
        each replica is asked; one that does not answer is skipped with a warning, unless none answers.

        Raises:
            RouterUnreachable: no replica answered.
        """
        events: dict[str, dict[str, Any]] = {}
        errors: list[str] = []
        for url in self.replicas:
            try:
                got = RouterClient(url, self.token, self.actor, self.timeout).call("GET", "/admin/guard/events")
            except RouterUnreachable as err:
                errors.append(err.message)
                continue
            for event in got["events"]:
                events.setdefault(json.dumps(event, sort_keys=True, default=str), event)
        if errors and len(errors) == len(self.replicas):
            raise RouterUnreachable("; ".join(errors))
        for message in errors:
            log.warning("guard events incomplete: %s", message)
        return sorted(events.values(), key=lambda e: float(e.get("ts", 0)))

    def changes(self, limit: int = 1000) -> list[dict[str, Any]]:
        """Return the router's own change log, oldest first.

        Args:
            limit: at most this many of the latest records.

        Returns:
            The records.
        """
        return self.call("GET", f"/admin/changes?limit={limit}")["changes"]
