"""Errors of the traffic generator."""

from __future__ import annotations

from include.errors import ModelgateError


class TrafficError(ModelgateError):
    """Raised when the traffic generator is misconfigured or cannot reach the router."""

    code = "traffic_error"
