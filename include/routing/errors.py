"""Errors of the router admin client, each carrying the HTTP status the router answered (if any)."""

from __future__ import annotations

from include.errors import ModelgateError


class RouterError(ModelgateError):
    """Raised when the router's admin API cannot carry out a request.

    Args:
        message: what went wrong.
        status: the HTTP status code the router answered, or None when it did not answer.
    """

    code = "router_admin_error"

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RouterUnreachable(RouterError):
    """Raised when the router does not answer (connection refused, timeout, TLS failure)."""

    code = "router_unreachable"


class RouterRefused(RouterError):
    """Raised when the router answers with a 4xx or 5xx status; ``status`` says which."""

    code = "router_refused"


class RouterUnauthorized(RouterRefused):
    """Raised when the router rejects the admin token (401 or 403)."""

    code = "router_unauthorized"


class RouterNotFound(RouterRefused):
    """Raised when the router answers 404 (for example: it does not serve the model)."""

    code = "router_not_found"


def error_for_status(status: int, message: str) -> RouterRefused:
    """Return the error class matching an HTTP status.

    Args:
        status: the router's HTTP status code (>= 400).
        message: what the router said.

    Returns:
        The error to raise.
    """
    if status == 404:
        return RouterNotFound(message, status)
    if status in (401, 403):
        return RouterUnauthorized(message, status)
    return RouterRefused(message, status)


class NotConverged(RouterError):
    """Raised when some router replicas do not serve a routes generation within the wait's timeout.

    Attributes:
        lagging: ``{replica URL: what it reported}`` of the replicas that did not converge.
    """

    code = "router_not_converged"

    def __init__(self, message: str, lagging: dict[str, str]) -> None:
        super().__init__(message)
        self.lagging = lagging


class InvalidReplicas(RouterError):
    """Raised when a replica list (connection extra, Kubernetes Endpoints) is malformed or empty."""

    code = "router_invalid_replicas"
