"""Router replicas: which there are, which routes generation each serves, and waiting until all serve one.

Every replica answers ``GET /v2/health/ready`` with header ``X-Routes-Generation`` and a JSON body
holding ``"generation"`` and ``"stale"`` (the control-plane contract, docs/canary.md). A gate that
changed routes in the store (generation ``N``) calls :func:`wait_converged` before a stage's bake
time starts: it returns once every replica reports a generation ``>= N`` and raises
:class:`~include.routing.errors.NotConverged` naming the laggards when the timeout passes first.

Replica lists come from the Airflow connection's extra locally (:func:`replicas_from_extra`) and
from the Endpoints of a headless Service on Kubernetes (:func:`replicas_from_endpoints`, fed by
``plugins.router_hook`` through the cncf-kubernetes provider's hook).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from include.routing.errors import InvalidReplicas, NotConverged

log = logging.getLogger(__name__)

GENERATION_HEADER = "X-Routes-Generation"
"""Response header of ``/v2/health/ready`` carrying the generation a replica serves."""

DEFAULT_CONVERGE_SECONDS = 30.0
"""How long a gate waits for every replica to serve a change (the issue asks p99 <= 5 s)."""


@dataclass(frozen=True)
class ReplicaState:
    """What one replica reported.

    Attributes:
        url: the replica's base URL.
        generation: the routes generation it serves (None: no answer or none reported).
        stale: whether it says it cannot reach the store (None: not reported).
        error: why there is no generation, in words (None when there is one).
        status: the HTTP status of its readiness answer (None: it did not answer).
    """

    url: str
    generation: int | None
    stale: bool | None = None
    error: str | None = None
    status: int | None = None

    def describe(self) -> str:
        """Return the state in words, for messages."""
        if self.generation is None:
            return self.error or "no generation"
        return f"generation {self.generation}" + (" (stale: cannot reach the store)" if self.stale else "")


def replica_state(url: str, timeout: float = 2.0) -> ReplicaState:
    """Read one replica's generation from ``GET /v2/health/ready`` (header first, then the body).

    A 503 answer (starting, draining) still counts when it reports a generation.

    Args:
        url: the replica's base URL.
        timeout: HTTP timeout in seconds.

    Returns:
        The replica's state; ``generation`` is None with ``error`` set when it did not say.
    """
    import httpx

    base = url.rstrip("/")
    try:
        r = httpx.get(f"{base}/v2/health/ready", timeout=timeout)
    except httpx.HTTPError as e:
        return ReplicaState(base, None, error=f"unreachable: {type(e).__name__}: {e}")
    try:
        body = r.json()
    except ValueError:
        body = None
    body = body if isinstance(body, dict) else {}
    raw = r.headers.get(GENERATION_HEADER, body.get("generation"))
    stale = body.get("stale")
    try:
        generation = int(raw) if raw is not None else None
    except (TypeError, ValueError):
        return ReplicaState(
            base, None, error=f"reported a generation that is not an integer: {raw!r}", status=r.status_code
        )
    if generation is None:
        return ReplicaState(
            base, None, error=f"reports no routes generation (status {r.status_code})", status=r.status_code
        )
    return ReplicaState(base, generation, bool(stale) if stale is not None else None, status=r.status_code)


def wait_converged(
    replicas: Sequence[str], generation: int, timeout: float = DEFAULT_CONVERGE_SECONDS, poll: float = 0.2
) -> list[ReplicaState]:
    """Wait until every replica serves routes generation ``generation`` or later.

    Args:
        replicas: the replicas' base URLs (at least one).
        generation: the generation the change committed.
        timeout: seconds to wait at most.
        poll: seconds between rounds.

    Returns:
        The replicas' final states, in the given order.

    Raises:
        InvalidReplicas: the list is empty.
        NotConverged: some replica did not reach ``generation`` in time (each laggard is named with
            what it reported last).
    """
    if not replicas:
        raise InvalidReplicas("no router replicas to wait for")
    t0 = time.monotonic()
    deadline = t0 + timeout
    states = {url: ReplicaState(url, None, error="not asked yet") for url in replicas}
    while True:
        for url in replicas:
            if (states[url].generation or -1) < generation:
                states[url] = replica_state(url, timeout=min(2.0, max(0.2, timeout)))
        lagging = {u: s.describe() for u, s in states.items() if (s.generation or -1) < generation}
        if not lagging:
            log.info(
                "%d replica(s) serve generation >= %d after %.2fs", len(replicas), generation, time.monotonic() - t0
            )
            return [states[u] for u in replicas]
        if time.monotonic() >= deadline:
            detail = "; ".join(f"{u}: {d}" for u, d in lagging.items())
            raise NotConverged(
                f"{len(lagging)} of {len(replicas)} router replica(s) did not serve routes generation {generation} "
                f"within {timeout:g}s: {detail}",
                lagging,
            )
        time.sleep(poll)


def _check_url(url: Any, where: str) -> str:
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise InvalidReplicas(f"{where}: a replica must be an http:// or https:// base URL, got {url!r}")
    return url.rstrip("/")


def replicas_from_extra(extra: Mapping[str, Any] | None, default: str) -> list[str]:
    """Return the replica URLs of a connection's extra ``{"replicas": [...]}``, or ``[default]``.

    Args:
        extra: the connection's extra (None or without ``replicas``: one replica, ``default``).
        default: the connection's own URL.

    Returns:
        The replicas' base URLs, without duplicates, in order.

    Raises:
        InvalidReplicas: ``replicas`` is not a non-empty list of http(s) URLs.
    """
    raw = (extra or {}).get("replicas")
    if raw is None:
        return [default.rstrip("/")]
    if not isinstance(raw, list) or not raw:
        raise InvalidReplicas(f"connection extra 'replicas' must be a non-empty list of URLs, got {raw!r}")
    return list(dict.fromkeys(_check_url(u, "connection extra 'replicas'") for u in raw))


def replicas_from_endpoints(endpoints: Any, port_name: str | None = None, scheme: str = "http") -> list[str]:
    """Return the ready replicas' base URLs from a Kubernetes ``V1Endpoints`` object.

    Only ready addresses count (``subsets[].addresses``, not ``not_ready_addresses``). With
    ``port_name`` the port of that name is used, else the subset's only port.

    Args:
        endpoints: the ``kubernetes.client.V1Endpoints`` of the router's headless Service.
        port_name: name of the HTTP port (None: the single port).
        scheme: ``http`` or ``https``.

    Returns:
        Base URLs, sorted.

    Raises:
        InvalidReplicas: no ready address, or the port cannot be chosen.
    """
    name = getattr(getattr(endpoints, "metadata", None), "name", None) or "<endpoints>"
    urls: set[str] = set()
    for subset in getattr(endpoints, "subsets", None) or []:
        ports = list(getattr(subset, "ports", None) or [])
        chosen = [p for p in ports if port_name is None or p.name == port_name]
        if len(chosen) != 1:
            have = [f"{p.name}:{p.port}" for p in ports]
            raise InvalidReplicas(
                f"endpoints {name}: cannot pick the router port ({'named ' + port_name if port_name else 'the only one'}) "
                f"among {have}"
            )
        for address in getattr(subset, "addresses", None) or []:
            host = f"[{address.ip}]" if ":" in address.ip else address.ip
            urls.add(f"{scheme}://{host}:{chosen[0].port}")
    if not urls:
        raise InvalidReplicas(f"endpoints {name} list no ready router replica")
    return sorted(urls)
