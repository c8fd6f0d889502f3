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

log = logging.getLogger(__name__)


def _generation(r: httpx.Response, body: dict[str, Any]) -> int | None:
    raw = body.get("generation", r.headers.get("x-routes-generation"))
    try:
        return None if raw is None else int(raw)
    except (TypeError, ValueError):
        return None


def replica_state(url: str, token: str, model: str, timeout: float = 3.0) -> dict[str, Any]:
    """Return one replica's state for ``model``.

    Args:
        url: the replica's base URL.
        token: bearer token of the router admin API (read rights suffice).
        model: the model name.
        timeout: seconds per request.

    Returns:
        ``{"url", "ready", "generation", "stale", "routes", "error"}`` (``routes`` None when the
        replica does not serve the model).
    """
    out: dict[str, Any] = {"url": url, "ready": False, "generation": None, "stale": None, "routes": None, "error": None}
    base = url.rstrip("/")
    try:
        with httpx.Client(timeout=timeout) as c:
            r = c.get(f"{base}/v2/health/ready")
            try:
                body = r.json() if r.content else {}
            except ValueError:
                body = {}
            body = body if isinstance(body, dict) else {}
            out.update(ready=r.status_code == 200, generation=_generation(r, body), stale=body.get("stale"))
            rr = c.get(f"{base}/admin/models/{model}/routes", headers={"Authorization": f"Bearer {token}"})
            if rr.status_code == 200:
                out["routes"] = rr.json().get("routes")
            elif rr.status_code != 404:
                out["error"] = f"routes: HTTP {rr.status_code} {rr.text[:200]}"
    except httpx.HTTPError as e:
        out["error"] = f"{type(e).__name__}: {e}"
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
    from include.config import get_settings
    from modelgate_control import ControlError
    from modelgate_control.store import RouteStore

    out: dict[str, Any] = {"generation": None, "model_generation": None, "routes": None, "weights": {}, "error": None}
    store = RouteStore(url or get_settings().resolved_audit_db_url())
    try:
        out["generation"] = store.generation()
        row = store.history(model)
    except ControlError as e:
        out["error"] = str(e)
        return out
    finally:
        store.dispose()
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
