"""Base exception for the modelgate domain library."""

from __future__ import annotations


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
