"""Canary state in the registry: ``modelgate.canary.*`` version tags and the model's canary lock.

Version tags (all under ``modelgate.canary.``): ``verdict`` (in_progress / promoted / rolled_back /
rejected), ``reason``, ``run_id``, ``baseline_version`` (champion when the canary started),
``started_at``, ``stage`` (last stage routed), ``stage_<i>`` (JSON summary of stage i's judgement),
``previous_champion`` (after promotion), ``notified``. Registered-model tag ``modelgate.canary.lock``
holds ``{"version", "run_id", "since"}`` while a canary runs: a canary of another version is refused.
Writes are idempotent: a tag is set only when its value changes.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from include.canary.errors import CanaryLocked, CanaryStateError
from modelgate_contracts.tags import CANARY_PREFIX
from modelgate_contracts.uris import version_uri

if TYPE_CHECKING:
    from include.routing.client import RouterAdmin

log = logging.getLogger(__name__)

P = CANARY_PREFIX
TAG_VERDICT, TAG_REASON, TAG_RUN = P + "verdict", P + "reason", P + "run_id"
TAG_BASELINE, TAG_STARTED, TAG_STAGE = P + "baseline_version", P + "started_at", P + "stage"
TAG_PREVIOUS, TAG_NOTIFIED, TAG_LOCK = P + "previous_champion", P + "notified", P + "lock"
IN_PROGRESS, PROMOTED, ROLLED_BACK, REJECTED = "in_progress", "promoted", "rolled_back", "rejected"
TERMINAL = (PROMOTED, ROLLED_BACK, REJECTED)
CHAMPION, CANARY = "champion", "canary"
APPROVE = "Approve"
PREVIOUS_ALIAS = "previous_champion"
MAX_TAG_CHARS = 4500


@dataclass
class Ctx:
    """Who acts and through what.

    Attributes:
        router: the router admin API (``RouterHook`` in DAGs, ``RouterClient`` elsewhere).
        actor: recorded in tags and the audit log.
        run_id: the Airflow run id.
        tracking_uri: the MLflow server (the DAG's connection); None: the settings', for CLIs.
    """

    router: RouterAdmin
    actor: str
    run_id: str | None = None
    tracking_uri: str | None = None


def client(tracking_uri: str | None = None) -> Any:
    from include.registry.registry import get_client

    return get_client(tracking_uri)


def now() -> datetime:
    return datetime.now(UTC)


def version_tags(model: str, version: str, tracking_uri: str | None = None) -> dict[str, str]:
    """Return a version's ``modelgate.canary.*`` tags.

    Args:
        model: the model name.
        version: the version.
        tracking_uri: the MLflow server (default: the settings').

    Returns:
        Tag name to value.

    Raises:
        CanaryStateError: the version does not exist.
    """
    from mlflow.exceptions import MlflowException

    try:
        mv = client(tracking_uri).get_model_version(model, str(version))
    except MlflowException as e:
        raise CanaryStateError(f"{version_uri(model, version)} does not exist") from e
    return {k: v for k, v in (mv.tags or {}).items() if k.startswith(P)}


def set_tags(model: str, version: str, tags: dict[str, Any], ctx: Ctx) -> None:
    """Set only the tags whose value changes (one audit record for the change, none when nothing does)."""
    from include.registry.registry import set_version_tags

    current = version_tags(model, version, ctx.tracking_uri)
    changed = {
        k: (v if isinstance(v, str) else json.dumps(v, sort_keys=True))
        for k, v in tags.items()
        if current.get(k) != (v if isinstance(v, str) else json.dumps(v, sort_keys=True))
    }
    if changed:
        set_version_tags(model, version, changed, actor=ctx.actor, run_id=ctx.run_id,
                         tracking_uri=ctx.tracking_uri)


def stage_summary(tags: dict[str, str], i: int) -> dict[str, Any] | None:
    raw = tags.get(f"{P}stage_{i}")
    return json.loads(raw) if raw else None


def read_lock(model: str, tracking_uri: str | None = None) -> dict[str, Any] | None:
    """Return the canary lock of a model, or None.

    Args:
        model: the model name.
        tracking_uri: the MLflow server (default: the settings').

    Returns:
        ``{"version", "run_id", "since"}`` or None.
    """
    raw = (client(tracking_uri).get_registered_model(model).tags or {}).get(TAG_LOCK)
    return json.loads(raw) if raw else None


def acquire_lock(model: str, version: str, ctx: Ctx) -> dict[str, Any]:
    """Take the model's canary lock for ``version`` (a re-run of the same version takes it over).

    Args:
        model: the model name.
        version: the candidate version.
        ctx: actor and run.

    Returns:
        The lock.

    Raises:
        CanaryLocked: a canary of another version holds it.
    """
    from include.registry.audit import append_audit

    held = read_lock(model, ctx.tracking_uri)
    if held and held["version"] != str(version):
        raise CanaryLocked(
            f"a canary of {model} version {held['version']} is in progress (run {held['run_id']}, since "
            f"{held['since']}); concurrent canaries of one model are refused. Wait for it, or abort it with "
            f"`python -m include.canary.rollback --model {model} --abort`"
        )
    if held and held["run_id"] == ctx.run_id:
        return held
    lock = {"version": str(version), "run_id": ctx.run_id, "since": now().isoformat()}
    client(ctx.tracking_uri).set_registered_model_tag(model, TAG_LOCK, json.dumps(lock))
    back = read_lock(model, ctx.tracking_uri)
    if back != lock:  # another run wrote after us: it wins, we refuse
        raise CanaryLocked(f"lost the canary lock of {model} to {back}")
    append_audit(ctx.actor, "canary.lock", f"models:/{model}", held, lock, ctx.run_id)
    return lock


def release_lock(model: str, version: str, ctx: Ctx) -> None:
    """Drop the lock when this version holds it.

    Args:
        model: the model name.
        version: the version whose canary ended.
        ctx: actor and run.
    """
    from include.registry.audit import append_audit

    held = read_lock(model, ctx.tracking_uri)
    if held and held["version"] == str(version):
        client(ctx.tracking_uri).delete_registered_model_tag(model, TAG_LOCK)
        append_audit(ctx.actor, "canary.unlock", f"models:/{model}", held, None, ctx.run_id)
