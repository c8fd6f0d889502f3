"""The registration request (the ``model_registration`` DAG's conf), validated with clear messages."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from include.errors import CONF_ACTOR_REFUSED
from include.registry import manifest as mf
from include.registry.errors import InvalidConf
from include.xcom import XcomRecord

ALLOWED_KEYS = ("model_name", "artifact_uri", "lineage", "semver", "residency", "feature_spec_uri")


@dataclass(frozen=True)
class RegistrationRequest(XcomRecord):
    """What to register: model name, where the ONNX file is, and the optional manifest fields."""

    model_name: str
    artifact_uri: str
    lineage: dict[str, Any]
    semver: str | None = None
    residency: str | None = None
    feature_spec_uri: str | None = None

    @classmethod
    def from_conf(cls, conf: Any) -> RegistrationRequest:
        """Validate a DAG-run conf and return the request.

        Raises:
            InvalidConf: a field is missing, unknown or of the wrong type.
            InvalidModelName: the model name is invalid.
        """
        if not isinstance(conf, dict):
            raise InvalidConf(f"conf must be a JSON object, got {type(conf).__name__}")
        if "actor" in conf:
            raise InvalidConf(CONF_ACTOR_REFUSED)
        unknown = sorted(k for k in conf if k not in ALLOWED_KEYS)
        if unknown:
            raise InvalidConf(f"unknown conf field(s) {unknown}; allowed: {list(ALLOWED_KEYS)}")
        if "model_name" not in conf or conf["model_name"] in (None, ""):
            raise InvalidConf("conf.model_name is required")
        name = mf.validate_model_name(conf["model_name"])
        uri = conf.get("artifact_uri")
        if not isinstance(uri, str) or not uri.strip():
            raise InvalidConf("conf.artifact_uri is required: an .onnx file in the inbox or an allowed root")
        lineage = mf.Lineage.from_dict(conf.get("lineage"))
        semver = conf.get("semver")
        if semver is not None:
            if not isinstance(semver, str):
                raise InvalidConf("conf.semver must be a string like '1.2.0'")
            mf.parse_semver(semver)
        residency = mf.validate_residency(conf.get("residency"))
        spec = conf.get("feature_spec_uri")
        if spec is not None and not isinstance(spec, str):
            raise InvalidConf("conf.feature_spec_uri must be a string")
        return cls(name, uri.strip(), asdict(lineage), semver, residency, spec)
