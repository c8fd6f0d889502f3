"""The outcome of a canary as ``make demo`` reports it (modelgate_dev/demo/run.py drives the stage).

:func:`canary_outcome` reads back from the registry and the router what a ``canary_promotion`` run
did: verdict, reason, stage summaries, aliases, routes and guard cuts.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from include.canary import controller as cc
from include.routing.client import RouterClient

log = logging.getLogger(__name__)


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
