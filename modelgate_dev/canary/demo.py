"""The outcome of a canary as ``make demo`` reports it (modelgate_dev/demo/run.py drives the stage).

:func:`canary_outcome` reads back from the registry and the router what a ``canary_promotion`` run
did: verdict, reason, stage summaries, aliases, routes and guard cuts.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from include.canary import controller as cc
from include.routing.client import RouterClient

log = logging.getLogger(__name__)


_WEIGHT = re.compile(r'^router_variant_weight_bp\{model="(?P<model>[^"]*)",variant="(?P<variant>[^"]*)"\} (?P<bp>\d+)$')


def replica_views(urls: list[str], model: str) -> list[dict[str, Any]]:
    """Read each router replica's ``/metrics``: the routes generation it serves and ``model``'s weights.

    Args:
        urls: the replicas' base URLs.
        model: the model name.

    Returns:
        ``[{"url", "generation", "stale", "weights": {variant: bp}, "error"}]`` in order.
    """
    import httpx

    views = []
    for url in urls:
        view: dict[str, Any] = {"url": url, "generation": None, "stale": None, "weights": {}, "error": None}
        try:
            text = httpx.get(f"{url}/metrics", timeout=5).text
        except httpx.HTTPError as e:
            view["error"] = f"{type(e).__name__}: {e}"
            views.append(view)
            continue
        for line in text.splitlines():
            if line.startswith("router_routes_generation "):
                view["generation"] = int(float(line.split()[1]))
            elif line.startswith("router_routes_stale "):
                view["stale"] = float(line.split()[1]) == 1.0
            elif (m := _WEIGHT.match(line)) and m["model"] == model:
                view["weights"][m["variant"]] = int(m["bp"])
        views.append(view)
    return views


def replicas_agree(views: list[dict[str, Any]]) -> str | None:
    """Return why the replicas disagree (generations differ, a variant besides the champion gets
    traffic, the champion is not at 10000 bp, a replica is stale or silent), or None when they agree."""
    problems = [f"{v['url']}: {v['error']}" for v in views if v["error"]]
    gens = {v["generation"] for v in views}
    if len(gens) != 1 or None in gens:
        problems.append(f"generations differ: {[(v['url'], v['generation']) for v in views]}")
    for v in views:
        others = {k: bp for k, bp in v["weights"].items() if k != "champion" and bp != 0}
        if v["weights"].get("champion") != 10000 or others or v["stale"]:
            problems.append(f"{v['url']}: weights {v['weights']}, stale {v['stale']}")
    return "; ".join(problems) or None


def canary_outcome(model: str, version: str, router: RouterClient) -> dict[str, Any]:
    """Return what a canary did: verdict, reason, stage summaries, aliases, routes and guard cuts.

    Args:
        model: the model name.
        version: the candidate version.
        router: the router admin client.

    Returns:
        JSON data for ``summary.json``.
    """
    from include.registry.registry import get_alias_version

    tags = cc.version_tags(model, version)
    stages = []
    for i in range(1, 10):
        raw = tags.get(f"{cc.P}stage_{i}")
        if raw is None:
            break
        stages.append(json.loads(raw))
    routes = router.get_routes(model) or {}
    return {
        "model": model,
        "version": version,
        "verdict": tags.get(cc.TAG_VERDICT),
        "reason": tags.get(cc.TAG_REASON),
        "stages": stages,
        "champion": get_alias_version(model, "champion"),
        "previous_champion": get_alias_version(model, cc.PREVIOUS_ALIAS),
        "routes": [(v["name"], v["uri"], v["weight_bp"]) for v in routes.get("variants", [])],
        "guard_events": [
            e
            for e in router.guard_events()
            if e.get("model") == model and str(e.get("version")) == str(version)
        ],
        "lock": cc.read_lock(model),
    }
