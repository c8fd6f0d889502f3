"""Reconcile the ``champion`` alias with the routes store: the store is the truth, the alias mirrors it.

What is served comes from the desired routes in the control-plane store; MLflow's ``champion`` alias
is a mirror for people and tools (the nightly batch follows it). A gate that dies between writing
routes and moving the alias, or a person who moves the alias by hand, leaves the two apart.
:func:`reconcile` puts the alias back on the version the store's champion variant serves, audited,
and reports what it cannot decide (the task that runs it then fails with that message: the alert):

- ``agree``: the alias already names the served champion;
- ``repaired``: the alias moved to the served champion (``set_alias`` and ``champion.reconcile``
  audit records say from what, to what, and the store generation it followed);
- ``unmanaged``: the champion variant serves a local file, not a registry version: nothing to mirror;
- ``undecidable``: the champion variant is missing, serves through an alias (the alias would decide
  what is served, which the store forbids), gets no traffic while no canary holds the model, or
  names a version the registry does not have.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from include.canary.errors import CanaryError
from modelgate_contracts.routes import champion_of
from modelgate_contracts.uris import MalformedModelUri, parse_model_uri, version_uri

if TYPE_CHECKING:
    from include.routing.client import RouterAdmin

log = logging.getLogger(__name__)

AGREE, REPAIRED, UNMANAGED, UNDECIDABLE = "agree", "repaired", "unmanaged", "undecidable"
ALIAS = "champion"


class ReconcileUndecidable(CanaryError):
    """Raised when the champion alias and the routes store disagree in a way no rule can settle.

    Attributes:
        results: every model's result, the undecidable ones included.
    """

    code = "reconcile_undecidable"

    def __init__(self, message: str, results: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.results = results


def store_routes(router: RouterAdmin | None = None) -> tuple[int | None, dict[str, dict[str, Any]]]:
    """Return the routes store's generation and every model's desired routes.

    Reads the store itself (``include.registry.audit.route_store``: the audit database). While the
    store holds no model (a standalone router keeping its store elsewhere), ``router``'s routes stand in.

    Args:
        router: the router admin API, the stand-in source.

    Returns:
        ``(generation or None, {model: routes})``.
    """
    from include.registry.audit import route_store

    generation, docs = route_store().snapshot()
    if docs or router is None:
        return generation, docs
    from include.routing.errors import RouterError

    log.warning("the routes store holds no model: reading the routes the router serves instead")
    try:
        return router.generation(), router.all_routes()
    except RouterError as e:
        log.warning("no routes to reconcile: the store is empty and the router did not answer (%s)", e)
        return generation, {}


def served_champion(model: str, routes: dict[str, Any], canary_held: bool) -> tuple[str, str | None]:
    """Return ``(status, version)`` of the champion variant the routes serve.

    Args:
        model: the model name.
        routes: the model's routes document.
        canary_held: whether a canary holds the model (its champion may get 0 % at the last stage).

    Returns:
        ``("ok", version)``, ``("unmanaged", None)`` for a local file, or ``("undecidable", why)``.
    """
    variants = routes.get("variants") or []
    name = champion_of(routes)
    chosen = [v for v in variants if v.get("name") == name]
    if not chosen:
        return UNDECIDABLE, f"routes of {model} name champion variant {name!r} but have {[v.get('name') for v in variants]}"
    variant = chosen[0]
    try:
        uri = parse_model_uri(str(variant.get("uri", "")))
    except MalformedModelUri as e:
        return UNDECIDABLE, str(e)
    if uri is None:
        return UNMANAGED, None
    if uri.name != model or uri.version is None:
        return UNDECIDABLE, (
            f"champion variant {name!r} of {model} serves {variant['uri']}, not a pinned version of {model}: "
            "the store must name the version it serves"
        )
    if int(variant.get("weight_bp", 0)) == 0 and not canary_held:
        return UNDECIDABLE, f"champion variant {name!r} of {model} gets no traffic and no canary holds the model"
    return "ok", uri.version


def reconcile_model(
    model: str,
    routes: dict[str, Any],
    *,
    actor: str,
    run_id: str | None,
    generation: int | None = None,
    tracking_uri: str | None = None,
) -> dict[str, Any]:
    """Make ``model``'s champion alias name the version its routes serve.

    Args:
        model: the model name.
        routes: its routes in the store.
        actor: recorded in the audit log.
        run_id: the Airflow run id.
        generation: the store generation read (recorded with a repair).
        tracking_uri: the MLflow server (default: the settings').

    Returns:
        ``{"model", "status", "served", "alias", "reason"}``; ``alias`` is the alias before.
    """
    from mlflow.exceptions import MlflowException

    from include.canary.state import read_lock
    from include.registry.audit import append_audit
    from include.registry.errors import ModelNotFound
    from include.registry.registry import get_alias_version

    try:
        held = read_lock(model, tracking_uri) is not None
        alias = get_alias_version(model, ALIAS, tracking_uri)
    except MlflowException as e:
        return {"model": model, "status": UNMANAGED, "served": None, "alias": None,
                "reason": f"{model} is not in the registry: {type(e).__name__}"}  # fmt: skip
    status, value = served_champion(model, routes, held)
    out: dict[str, Any] = {"model": model, "status": status, "served": None, "alias": alias, "reason": None}
    if status != "ok":
        out["reason"] = value or f"{model}'s champion variant serves a local file"
        return out
    out["served"] = value
    if alias == value:
        out["status"] = AGREE
        return out
    from include.registry.registry import set_alias

    reason = f"reconcile: the routes store (generation {generation}) serves version {value}, alias was {alias}"
    try:
        set_alias(model, ALIAS, str(value), actor=actor, run_id=run_id, reason=reason,
                  tracking_uri=tracking_uri)
    except ModelNotFound as e:
        return {**out, "status": UNDECIDABLE, "reason": f"the store serves {version_uri(model, str(value))}: {e}"}
    append_audit(actor, "champion.reconcile", f"models:/{model}@{ALIAS}", {"version": alias},
                 {"version": value, "generation": generation, "reason": reason}, run_id)  # fmt: skip
    log.warning("%s: champion alias %s -> %s (%s)", model, alias, value, reason)
    return {**out, "status": REPAIRED, "reason": reason}


def reconcile(
    *,
    actor: str,
    run_id: str | None,
    router: RouterAdmin | None = None,
    models: list[str] | None = None,
    tracking_uri: str | None = None,
) -> list[dict[str, Any]]:
    """Reconcile every model of the routes store (or only ``models``); raise when one is undecidable.

    Every decidable model is repaired before the error is raised.

    Args:
        actor: recorded in the audit log.
        run_id: the Airflow run id.
        router: stand-in routes source while the store is empty (:func:`store_routes`).
        models: only these models (default: every model in the store).
        tracking_uri: the MLflow server (default: the settings').

    Returns:
        One result per model (:func:`reconcile_model`).

    Raises:
        ReconcileUndecidable: some model's alias and routes disagree in a way no rule settles.
    """
    generation, docs = store_routes(router)
    names = sorted(docs) if models is None else [m for m in models if m in docs]
    results = [reconcile_model(m, docs[m], actor=actor, run_id=run_id, generation=generation,
                               tracking_uri=tracking_uri) for m in names]  # fmt: skip
    bad = [r for r in results if r["status"] == UNDECIDABLE]
    if bad:
        raise ReconcileUndecidable(
            "champion alias and routes store disagree and cannot be reconciled automatically: "
            + "; ".join(f"{r['model']}: {r['reason']}" for r in bad),
            results,
        )
    return results
