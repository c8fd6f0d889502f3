"""Errors of the drift monitor (one base class; the CLI prints the message and exits non-zero)."""

from __future__ import annotations

from include.errors import ModelgateError


class DriftError(ModelgateError):
    """Raised when a drift comparison cannot be carried out; ``message`` names the problem in one line."""

    code = "drift_error"


class DriftInputError(DriftError):
    """Raised when an input file is missing, unreadable, empty, without common columns or not numeric."""

    code = "invalid_drift_input"
