"""Errors raised by the A/B statistics engine; each message names the problem."""

from __future__ import annotations

from include.errors import ModelgateError


class AbTestError(ModelgateError):
    """Raised when an A/B statistics operation cannot be carried out."""

    code = "abtest_error"


class InvalidStatistics(AbTestError):
    """Raised when sufficient statistics are impossible (negative n, a variance below zero, ...)."""

    code = "invalid_statistics"


class InvalidArgument(AbTestError):
    """Raised when a parameter of a test is out of range (alpha, power, weights, method, ...)."""

    code = "invalid_argument"
