"""Errors of the data-protection controls (erasure, retention, residency)."""

from __future__ import annotations

from include.errors import ModelgateError


class ComplianceError(ModelgateError):
    """Raised when an erasure, retention or residency step cannot be carried out; the message names it."""

    code = "compliance_error"


class InvalidErasureRequest(ComplianceError):
    """Raised when an erasure request lacks the unit id, reason or requester, or they are malformed."""

    code = "invalid_erasure_request"


class ResidencyViolation(ComplianceError):
    """Raised when a model version's residency does not allow the region a component runs in, or data
    of one region would be read from another."""

    code = "residency_violation"
