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
