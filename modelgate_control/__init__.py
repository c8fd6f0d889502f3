"""The control plane's store: desired routes with one global generation, and the audit log core.

Shared by the router (``serving_images/router``) and the domain library (``include``); it imports
only the standard library and SQLAlchemy. Modules:

- :mod:`modelgate_control.schema`: the tables (desired routes, generation counter, audit log) and engines.
- :mod:`modelgate_control.audit`: the HMAC-chained audit record (MAC, append within a connection, key
  and head anchor files).
- :mod:`modelgate_control.store`: :class:`~modelgate_control.store.RouteStore`, the desired routes.
"""

from __future__ import annotations


class ControlError(Exception):
    """Raised when the control-plane store cannot do what was asked; the message names the problem."""


class AuditError(ControlError):
    """Raised when an audit record, the audit key or the head anchor cannot be written or read."""


class StoreUnavailable(ControlError):
    """Raised when the store's database cannot be reached (callers keep serving what they have)."""
