"""What every router replica serves for a model: readiness, routes generation, staleness, routes.

Reads each replica's ``GET /v2/health/ready`` (``generation`` and ``stale`` in the body, header
``X-Routes-Generation``) and its admin ``GET /admin/models/{model}/routes``. A replica that does not
answer is reported as such, never hidden.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from include.routing.replicas import replica_state as read_replica

log = logging.getLogger(__name__)


def replica_state(url: str, token: str, model: str, timeout: float = 3.0) -> dict[str, Any]:
    """Return one replica's state for ``model``.

    The readiness answer is read by the gates' own reader (:func:`include.routing.replicas.replica_state`).

    Args:
        url: the replica's base URL.
        token: bearer token of the router admin API (read rights suffice).
        model: the model name.
        timeout: seconds per request.

    Returns:
        ``{"url", "ready", "generation", "stale", "routes", "error"}`` (``routes`` None when the
        replica does not serve the model).
    """
    st = read_replica(url, timeout)
    out: dict[str, Any] = {
        "url": url, "ready": st.status == 200, "generation": st.generation, "stale": st.stale, "routes": None,
        "error": st.error if st.status is None else None,
    }  # fmt: skip
    if st.status is None:
        return out
    try:
        rr = httpx.get(
            f"{url.rstrip('/')}/admin/models/{model}/routes",
            headers={"Authorization": f"Bearer {token}"}, timeout=timeout,
        )  # fmt: skip
    except httpx.HTTPError as e:
        out["error"] = f"{type(e).__name__}: {e}"
        return out
    if rr.status_code == 200:
        out["routes"] = rr.json().get("routes")
    elif rr.status_code != 404:
        out["error"] = f"routes: HTTP {rr.status_code} {rr.text[:200]}"
    return out


def replica_states(urls: list[str], token: str, model: str, timeout: float = 3.0) -> list[dict[str, Any]]:
    """Return :func:`replica_state` of every replica (asked in parallel), in the order given."""
    if not urls:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(urls))) as pool:
        return list(pool.map(lambda u: replica_state(u, token, model, timeout), urls))


def weights(routes: dict[str, Any] | None) -> dict[str, float]:
    """Return ``{variant: percent}`` of a model's routes (``weight_bp`` in basis points)."""
    if not routes:
        return {}
    return {str(v.get("name")): int(v.get("weight_bp", 0)) / 100 for v in routes.get("variants") or []}


def desired(model: str, url: str | None = None) -> dict[str, Any]:
    """Return the control plane's desired routes of ``model`` and the store's global generation.

    Args:
        model: the model name.
        url: the routes store (the audit database; default from the settings).

    Returns:
        ``{"generation", "model_generation", "routes", "weights", "actor", "reason", "run_id",
        "updated_at", "error"}``; ``error`` names why the store could not be read.
    """
    from include.registry.audit import route_store
    from modelgate_control import ControlError

    out: dict[str, Any] = {"generation": None, "model_generation": None, "routes": None, "weights": {}, "error": None}
    try:
        store = route_store(url)  # cached per URL: one engine for every page
        out["generation"] = store.generation()
        row = store.history(model)
    except ControlError as e:
        out["error"] = str(e)
        return out
    if row is not None:
        out.update(
            model_generation=row["generation"], routes=row["document"], weights=weights(row["document"]),
            actor=row["actor"], reason=row["reason"], run_id=row["run_id"], updated_at=str(row["updated_at"]),
        )  # fmt: skip
    return out


def behind(replica: dict[str, Any], store_generation: int | None) -> bool | None:
    """Whether a replica has not yet applied the store's generation (None when either is unknown)."""
    if replica.get("generation") is None or store_generation is None:
        return None
    return bool(replica["generation"] < store_generation)
