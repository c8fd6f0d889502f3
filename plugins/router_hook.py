"""Airflow side of the router's admin API: connection ``modelgate_router`` → ``RouterHook``.

The hook only resolves its connection into an :class:`include.routing.client.RouterClient`
and delegates to it: one client, one set of errors (by HTTP status code), one audit trail. Route
changes are appended to the audit log with the DAG run id; the router keeps its own append-only
change log as well (``GET /admin/changes``).

Replicas: the connection's extra names every router replica the gates wait for
(:mod:`include.routing.replicas`): ``{"replicas": ["http://...", ...]}`` (the local stack), or
``{"kubernetes": {"service": "router", "namespace": "modelgate", "port_name": "http",
"conn_id": "kubernetes_default"}}``: the ready addresses of that headless Service's Endpoints, read
through the cncf-kubernetes provider's ``KubernetesHook`` each time the gates wait. Without either,
the connection's own URL is the only replica.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

from include.routing.client import RouterClient
from include.routing.errors import InvalidReplicas, RouterError
from include.routing.replicas import DEFAULT_CONVERGE_SECONDS, ReplicaState, replicas_from_extra

CONN_ID = "modelgate_router"

RouterHookError = RouterError
"""The hook raises the client's errors (``RouterNotFound``, ``RouterUnauthorized``, ...)."""


class RouterHook(BaseHook):
    """Wraps the router admin client for DAGs.

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
        self._client: RouterClient | None = None
        self._kubernetes: dict[str, Any] | None = None

    def get_conn(self) -> RouterClient:
        """Return the client for the connection, resolved once.

        Returns:
            The router admin client.
        """
        if self._client is not None:
            return self._client
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            conn = self.get_connection(self.router_conn_id)
        except AirflowNotFoundException:
            self._client = RouterClient.from_env(actor=self.actor, timeout=self.timeout)
            return self._client
        scheme = conn.schema or "http"
        url = f"{scheme}://{conn.host}" + (f":{conn.port}" if conn.port else "")
        extra = conn.extra_dejson
        kube = extra.get("kubernetes")
        if kube is not None and not (isinstance(kube, dict) and isinstance(kube.get("service"), str)):
            raise InvalidReplicas(f"connection {self.router_conn_id}: extra 'kubernetes' needs a 'service' name")
        self._kubernetes = kube
        replicas = replicas_from_extra(extra, url)
        self._client = RouterClient(url, conn.password or "", self.actor, self.timeout, replicas)
        return self._client

    def replicas(self) -> list[str]:
        """Return every router replica's base URL (Endpoints of the headless Service on Kubernetes).

        Returns:
            The URLs.

        Raises:
            InvalidReplicas: the extra is malformed or the Service has no ready replica.
        """
        client = self.get_conn()
        if self._kubernetes is None:
            return client.replicas
        return endpoint_replicas(self._kubernetes, scheme=client.url.split("://", 1)[0])

    def generation(self) -> int | None:
        """Return the routes generation the connection's replica serves."""
        return self.get_conn().generation()

    def wait_converged(
        self, generation: int | None, timeout: float = DEFAULT_CONVERGE_SECONDS
    ) -> list[ReplicaState]:
        """Wait until every replica (:meth:`replicas`, read now) serves ``generation``."""
        client = self.get_conn()
        client.replicas = self.replicas()
        return client.wait_converged(generation, timeout)

    def all_routes(self) -> dict[str, dict[str, Any]]:
        """Return every model's routes: ``{model: routes}``."""
        return self.get_conn().all_routes()

    def get_routes(self, model: str) -> dict[str, Any] | None:
        """Return one model's routes, or None when the router does not serve it."""
        return self.get_conn().get_routes(model)

    def put_routes(self, model: str, routes: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
        """Replace one model's routes and record the change in the audit log."""
        return self.get_conn().put_routes(model, routes, run_id)

    def set_weights(self, model: str, weights: dict[str, int], run_id: str | None = None) -> dict[str, Any]:
        """Change variant weights (basis points) of a model, keeping everything else."""
        return self.get_conn().set_weights(model, weights, run_id)

    def reload(self, run_id: str | None = None) -> dict[str, Any]:
        """Make the router re-read its routes file, recording the change in the audit log."""
        return self.get_conn().reload(run_id)

    def stats(self) -> list[dict[str, Any]]:
        """Return live per-variant statistics."""
        return self.get_conn().stats()

    def guard_events(self) -> list[dict[str, Any]]:
        """Return the guard's cut events of every replica (:meth:`replicas`, read now)."""
        client = self.get_conn()
        client.replicas = self.replicas()
        return client.guard_events()

    def changes(self, limit: int = 1000) -> list[dict[str, Any]]:
        """Return the router's own change log, oldest first."""
        return self.get_conn().changes(limit)


def endpoint_replicas(spec: dict[str, Any], scheme: str = "http") -> list[str]:
    """Read the router replicas from the Endpoints of a headless Service through ``KubernetesHook``.

    Args:
        spec: ``service`` (required), ``namespace`` (default: the Kubernetes connection's),
            ``port_name`` (default: the only port), ``conn_id`` (default ``kubernetes_default``).
        scheme: URL scheme of the replicas.

    Returns:
        The ready replicas' base URLs.

    Raises:
        InvalidReplicas: no namespace, no ready replica, or the port cannot be chosen.
    """
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

    from include.routing.replicas import replicas_from_endpoints

    hook = KubernetesHook(conn_id=spec.get("conn_id", "kubernetes_default"))
    namespace = spec.get("namespace") or hook.get_namespace()
    if not namespace:
        raise InvalidReplicas(f"no namespace for the router Service {spec['service']!r}: set extra kubernetes.namespace")
    endpoints = hook.core_v1_client.read_namespaced_endpoints(spec["service"], namespace)
    return replicas_from_endpoints(endpoints, spec.get("port_name"), scheme)
