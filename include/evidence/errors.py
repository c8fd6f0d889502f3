"""Errors of the evidence view; each carries the HTTP status the plugin answers with."""

from __future__ import annotations

from include.errors import ModelgateError


class EvidenceError(ModelgateError):
    """Raised when evidence cannot be gathered; ``status`` is the HTTP status to answer with."""

    code = "evidence_error"
    status = 500


class InvalidModelName(EvidenceError):
    """Raised when a model name is not a valid registered-model name."""

    code = "invalid_model_name"
    status = 400


class ModelNotFound(EvidenceError):
    """Raised when the registry has no model of that name."""

    code = "model_not_found"
    status = 404


class RegistryUnavailable(EvidenceError):
    """Raised when MLflow does not answer."""

    code = "registry_unavailable"
    status = 502
