"""Base exception for the modelgate domain library."""

from __future__ import annotations

CONF_ACTOR_REFUSED = "conf.actor is not accepted: the actor is the authenticated user who triggers the run"
"""Why a DAG run's conf may not name its actor (every DAG takes it from ``dag_run.triggering_user_name``)."""


class ModelgateError(Exception):
    """Raised when a modelgate operation cannot be carried out; the message names the problem.

    Args:
        message: what went wrong, in words a user can act on.
        code: a short machine-readable error code.
    """

    code = "modelgate_error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message
