"""Errors of the canary gate."""

from __future__ import annotations

from include.errors import ModelgateError


class CanaryError(ModelgateError):
    """Raised when a canary operation cannot be carried out; the message names the problem."""

    code = "canary_error"


class InvalidPolicy(CanaryError):
    """Raised when a canary policy file or judge configuration is malformed."""

    code = "invalid_canary_policy"


class CanaryLocked(CanaryError):
    """Raised when another canary of the same model is in progress."""

    code = "canary_locked"


class CanaryStateError(CanaryError):
    """Raised when the registry or the routes are not in a state the requested step can start from."""

    code = "canary_state_error"
