"""Errors raised by the registry package; each message names the problem."""

from __future__ import annotations

from include.errors import ModelgateError


class RegistryError(ModelgateError):
    """Raised when a registry operation cannot be carried out."""

    code = "registry_error"


class InvalidModelName(RegistryError):
    """Raised when a model name is not a valid registry name."""

    code = "invalid_model_name"


class InvalidConf(RegistryError):
    """Raised when a registration request (DAG conf) is malformed."""

    code = "invalid_conf"


class SourceRefused(InvalidConf):
    """Raised when an artifact or feature-spec URI lies outside the allowed roots and schemes."""

    code = "source_refused"


class ArtifactNotFound(RegistryError):
    """Raised when the model artifact cannot be found or fetched."""

    code = "artifact_not_found"


class InvalidModel(RegistryError):
    """Raised when an artifact is not a loadable ONNX model with a typed signature."""

    code = "invalid_model"


class ArtifactTooLarge(InvalidModel):
    """Raised when an artifact exceeds the configured size limit."""

    code = "artifact_too_large"


class IntegrityError(RegistryError):
    """Raised when an artifact's sha256 does not match the registry manifest."""

    code = "integrity_error"


class ResidencyRefused(RegistryError):
    """Raised when a version's ``modelgate.residency`` does not allow this worker's region (``MODELGATE_REGION``)."""

    code = "residency_refused"


class ModelNotFound(RegistryError):
    """Raised when a model URI names a model, version or alias the registry does not have."""

    code = "model_not_found"


class AuditError(ModelgateError):
    """Raised when the audit log cannot be written or read."""

    code = "audit_error"
