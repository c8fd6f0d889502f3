"""Errors of the router; each carries the HTTP status it maps to and a short code."""

from __future__ import annotations


class RouterError(Exception):
    """Raised when the router cannot carry out a request or an operation.

    Args:
        message: what went wrong, in words a caller can act on.
        status: the HTTP status this error maps to.
        code: a short machine-readable error code.
    """

    status = 500
    code = "router_error"

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class BadRequest(RouterError):
    """Raised when a request body or header is malformed or does not fit the model."""

    status = 400
    code = "bad_request"


class NotFound(RouterError):
    """Raised when a model, version, variant or path does not exist."""

    status = 404
    code = "not_found"


class PayloadTooLarge(RouterError):
    """Raised when a request body is larger than the configured limit."""

    status = 413
    code = "payload_too_large"


class Unauthorized(RouterError):
    """Raised when an admin request carries no token or an unknown one."""

    status = 401
    code = "unauthorized"


class Forbidden(RouterError):
    """Raised when a known key lacks the role the request needs."""

    status = 403
    code = "forbidden"


class NotReady(RouterError):
    """Raised when the router is starting up or draining and takes no new work."""

    status = 503
    code = "not_ready"


class RoutesInvalid(RouterError):
    """Raised when a routes document does not validate."""

    status = 400
    code = "routes_invalid"


class ModelLoadError(RouterError):
    """Raised when a model cannot be resolved, downloaded, loaded or warmed up."""

    status = 400
    code = "model_load_failed"


class IntegrityError(ModelLoadError):
    """Raised when a registry artifact's sha256 does not match its ``modelgate.sha256`` tag."""

    code = "sha256_mismatch"


class ResidencyRefused(ModelLoadError):
    """Raised when a version's ``modelgate.residency`` does not allow the router's region (``ROUTER_REGION``)."""

    status = 403
    code = "residency_refused"


class InferenceError(RouterError):
    """Raised when a loaded model fails while scoring valid input."""

    status = 500
    code = "inference_failed"


class StoreUnreachable(RouterError):
    """Raised when a route change cannot reach the control-plane store (nothing changed)."""

    status = 503
    code = "store_unavailable"
