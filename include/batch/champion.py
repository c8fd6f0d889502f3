"""Which model the nightly batch scores: the champion VERSION of the control plane's desired routes.

The routes store (``modelgate_control.store.RouteStore``) is written only by the gates and audited in
the same transaction; MLflow's ``champion`` alias only mirrors it. So the batch reads the champion
variant's pinned URI (``models:/name/N``) from the store, and a ``champion`` alias moved by hand in
MLflow changes nothing here (the reconcile step reports it). The artifact's sha256 is verified at
load, as for every registry URI.
"""

from __future__ import annotations

import logging

from include.batch.errors import BatchModelError
from modelgate_contracts.routes import champion_of
from modelgate_contracts.uris import MalformedModelUri, parse_model_uri

log = logging.getLogger(__name__)


def champion_from_routes(model: str, store_url: str | None = None) -> str:
    """Return the pinned URI of ``model``'s champion variant in the desired routes.

    Args:
        model: the model name of the routes (the router's model name).
        store_url: SQLAlchemy URL of the routes store (default: the audit database,
            ``Settings.resolved_audit_db_url()``).

    Returns:
        ``models:/name/N`` (or a local path) of the champion variant.

    Raises:
        BatchModelError: the model has no desired routes, no champion variant, or its champion
            is named by an alias (desired state must pin a version).
    """
    from include.registry.audit import route_store

    got = route_store(store_url).get(model)
    if got is None or not got[1].get("variants"):
        raise BatchModelError(
            f"model {model!r} has no desired routes in the routes store: the nightly batch scores the "
            "champion the gates deployed (canary_promotion), never an MLflow alias alone"
        )
    generation, doc = got
    name = champion_of(doc)
    variant = next((v for v in doc["variants"] if v.get("name") == name), None)
    if variant is None:
        raise BatchModelError(f"desired routes of {model!r} have no champion variant named {name!r}")
    uri = str(variant["uri"])
    try:
        ref = parse_model_uri(uri)
    except MalformedModelUri as e:
        raise BatchModelError(f"desired routes of {model!r}: {e}") from e
    if ref is not None and ref.alias is not None:
        raise BatchModelError(
            f"desired routes of {model!r} name the champion by the alias {uri}: refusing a mutable alias, "
            "routes must pin a version (models:/name/N)"
        )
    log.info("event=champion_from_routes model=%s generation=%d uri=%s", model, generation, uri)
    return uri


def refuse_alias(uri: str) -> str:
    """Return ``uri`` unless it names a model by an alias (``models:/name@alias``).

    Raises:
        BatchModelError: ``uri`` is an alias URI or malformed.
    """
    try:
        ref = parse_model_uri(uri)
    except MalformedModelUri as e:
        raise BatchModelError(str(e)) from e
    if ref is not None and ref.alias is not None:
        raise BatchModelError(
            f"{uri}: the nightly batch does not score a mutable alias; name a version (models:/name/N) "
            "or leave model_uri empty to score the champion of the desired routes"
        )
    return uri
