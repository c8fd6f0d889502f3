"""Errors of the regression package; each message names the problem."""

from __future__ import annotations

from include.errors import ModelgateError


class RegressionError(ModelgateError):
    """Raised when a regression test cannot be carried out."""

    code = "regression_error"


class PolicyError(RegressionError):
    """Raised when a regression policy file is missing, not YAML, or breaks the policy schema."""

    code = "invalid_regression_policy"


class SuiteError(RegressionError):
    """Raised when a great-expectations suite template in ``validation/`` is unreadable or malformed."""

    code = "invalid_expectation_suite"


class UnsupportedModelError(RegressionError):
    """Raised when a model's inputs or outputs are not those of a classifier this gate can test."""

    code = "unsupported_model"


class TargetError(RegressionError):
    """Raised when the model name or version to test is missing or does not exist in the registry."""

    code = "invalid_regression_target"
