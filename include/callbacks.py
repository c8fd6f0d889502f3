"""Callbacks named in configuration as ``package.module:function`` (canary notifications, drift alerts).

Only allow-listed callbacks are imported: the built-ins of :mod:`include.canary.notify` and the
entries of ``MODELGATE_CANARY_CALLBACKS`` (comma-separated ``package.module:function``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from include.errors import ModelgateError

BUILTIN_CALLBACKS = ("include.canary.notify:log_event", "include.canary.notify:append_jsonl")
"""Callbacks allowed without configuration."""


class InvalidCallback(ModelgateError):
    """Raised when a callback path is malformed or not allowed, or names nothing importable and callable."""

    code = "invalid_callback"


def allowed_callbacks() -> tuple[str, ...]:
    """Return the built-in callbacks plus those listed in ``MODELGATE_CANARY_CALLBACKS``."""
    from include.config import get_settings

    extra = (c.strip() for c in get_settings().canary_callbacks.split(","))
    return BUILTIN_CALLBACKS + tuple(c for c in extra if c)


def load_callable(path: str) -> Callable[[dict[str, Any]], Any]:
    """Import an allow-listed ``package.module:function``.

    Args:
        path: the callable's path.

    Returns:
        The callable.

    Raises:
        InvalidCallback: the path is malformed or not allowed, the module cannot be imported or has
            no such callable.
    """
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise InvalidCallback(f"callback {path!r} must be 'package.module:function'")
    if path not in allowed_callbacks():
        raise InvalidCallback(
            f"callback {path!r} is not allowed; allowed: {list(allowed_callbacks())} "
            "(add it to MODELGATE_CANARY_CALLBACKS)"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise InvalidCallback(f"callback {path!r}: cannot import {module_name}: {e}") from e
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise InvalidCallback(f"callback {path!r}: {module_name} has no callable {attr!r}")
    return fn
