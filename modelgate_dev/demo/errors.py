"""Errors of the demo-model package."""

from __future__ import annotations

from include.errors import ModelgateError


class DemoError(ModelgateError):
    """Raised when the demo models or their data cannot be produced (bad arguments, output folder unusable)."""

    code = "demo_error"
