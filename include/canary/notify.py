"""Notification callbacks of the canary gate (``on_rollback`` / ``on_promote`` in the policy).

A callback is an allow-listed ``package.module:function`` taking one argument, the event record
(JSON data: ``event`` = ``rollback`` or ``promote``, ``model``, ``version``, ``reason``, ``stage``,
``run_id``, ``actor``, ``ts``...). Wire Slack or e-mail by writing such a function, e.g.::

    def slack(event):
        httpx.post(os.environ["SLACK_WEBHOOK"], json={"text": f"{event['model']} v{event['version']}: "
                                                            f"{event['event']} ({event['reason']})"})

A failing callback is logged and never undoes the rollback or promotion it reports. Allowed are the
built-ins below and the entries of ``MODELGATE_CANARY_CALLBACKS`` (comma-separated
``package.module:function``); nothing else is imported.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from include import callbacks
from include.canary.errors import InvalidPolicy

log = logging.getLogger(__name__)


BUILTIN_CALLBACKS = callbacks.BUILTIN_CALLBACKS
allowed_callbacks = callbacks.allowed_callbacks


def load_callable(path: str) -> Callable[[dict[str, Any]], Any]:
    """Import an allow-listed ``package.module:function``.

    Args:
        path: the callable's path.

    Returns:
        The callable.

    Raises:
        InvalidPolicy: the path is malformed or not allowed, the module cannot be imported or has no
            such callable.
    """
    try:
        return callbacks.load_callable(path)
    except callbacks.InvalidCallback as e:
        raise InvalidPolicy(e.message) from e


def notify(path: str | None, event: dict[str, Any]) -> str | None:
    """Call a notification callback, never raising.

    Args:
        path: the callback path (None: nothing to call).
        event: the record passed to it.

    Returns:
        None when it ran (or nothing was configured), else the error message.
    """
    if not path:
        return None
    try:
        load_callable(path)(event)
    except Exception as e:  # a broken notifier must not undo a rollback: log and report it
        log.error("canary notification %s failed: %s", path, e)
        return f"{type(e).__name__}: {e}"
    return None


def log_event(event: dict[str, Any]) -> None:
    """Built-in callback: log the event at WARNING (rollback) or INFO (promote).

    Args:
        event: the record.
    """
    level = logging.WARNING if event.get("event") == "rollback" else logging.INFO
    log.log(level, "canary %s: %s", event.get("event"), json.dumps(event, default=str))


def append_jsonl(event: dict[str, Any]) -> None:
    """Built-in callback: append the event to ``MODELGATE_CANARY_NOTIFY_FILE``.

    The default file is ``<MODELGATE_HOME>/canary-notifications.jsonl``.

    Args:
        event: the record.
    """
    from include.config import get_settings

    s = get_settings()
    path = s.canary_notify_file or s.home / "canary-notifications.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(event, default=str) + "\n")
