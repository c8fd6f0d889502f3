"""Which version the regression gate tests, against which champion, under which policy."""

from __future__ import annotations

import logging
from typing import Any

from include.errors import CONF_ACTOR_REFUSED
from include.regression.errors import TargetError
from include.regression.policy import load_policy
from modelgate_contracts.uris import version_uri

log = logging.getLogger(__name__)


def resolve_target(
    conf: dict[str, Any] | None, asset_extras: list[dict[str, Any]] | None, tracking_uri: str
) -> dict[str, Any]:
    """Work out which version to test and against which champion, and load the model's policy.

    ``conf`` ``{"model_name", "version"}`` wins; otherwise the newest triggering asset event's extra
    (``model_registered``: ``model_name``, ``version``) is used.

    Args:
        conf: the DAG run's conf.
        asset_extras: extras of the triggering asset events, oldest first.
        tracking_uri: the MLflow server.

    Returns:
        ``model_name``, ``version``, ``champion_version`` (None when there is none or it is this
        version), ``first_version``, ``challenger``/``champion`` manifests (semver, signature,
        feature_spec) and ``policy`` (as data).

    Raises:
        TargetError: conf names an ``actor`` (the actor is the triggering user), no model/version
            given, or the version does not exist or has no manifest.
        PolicyError: the model's policy is invalid.
    """
    from include.registry import manifest as mf
    from include.registry import registry as reg

    if conf and "actor" in conf:
        raise TargetError(CONF_ACTOR_REFUSED)
    source = conf if conf and conf.get("model_name") else None
    if source is None and asset_extras:
        source = asset_extras[-1]
        if len(asset_extras) > 1:
            log.warning("%d asset events in this run; testing the newest: %s", len(asset_extras), source)
    if not source or not source.get("model_name") or source.get("version") in (None, ""):
        raise TargetError(
            'nothing to test: trigger with conf {"model_name": ..., "version": ...} or through the '
            "modelgate_model_registered asset"
        )
    name = mf.validate_model_name(source["model_name"])
    version = str(source["version"])
    policy = load_policy(name)
    challenger = _manifest(name, version, tracking_uri)
    champion_version = reg.get_alias_version(name, mf.ALIAS_CHAMPION, tracking_uri)
    first = champion_version is None or champion_version == version
    return {
        "model_name": name,
        "version": version,
        "champion_version": None if first else champion_version,
        "first_version": first,
        "challenger": challenger,
        "champion": None if first else _manifest(name, str(champion_version), tracking_uri),
        "policy": policy.to_dict(),
    }


def _manifest(name: str, version: str, tracking_uri: str) -> dict[str, Any]:
    from mlflow.exceptions import MlflowException

    from include.registry import manifest as mf
    from include.registry import registry as reg

    try:
        mv = reg.get_client(tracking_uri).get_model_version(name, version)
    except MlflowException as e:
        raise TargetError(f"{version_uri(name, version)} does not exist in the registry") from e
    if mv.tags.get(mf.TAG_STATUS) != mf.STATUS_READY or mf.TAG_SIGNATURE not in mv.tags:
        raise TargetError(
            f"{version_uri(name, version)} has no complete modelgate manifest (register it through model_registration)"
        )
    return {
        "version": version,
        "semver": mv.tags.get(mf.TAG_SEMVER, ""),
        "signature": mv.tags[mf.TAG_SIGNATURE],
        "feature_spec": mv.tags.get(mf.TAG_FEATURE_SPEC),
    }
