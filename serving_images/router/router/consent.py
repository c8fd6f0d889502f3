"""Consent of a scoring request: the ``X-Consent`` header, OIP v2 ``parameters.consent``, or the default.

A request consents when what it sends says so; without either signal the deployment's default
applies (``ROUTER_CONSENT_DEFAULT``, false unless configured). The data plane records a request that
does not consent without its unit id and without sampled inputs (``docs/privacy.md``).
"""

from __future__ import annotations

from typing import Any

from router.errors import BadRequest

_TRUE_BYTES = (b"1", b"true", b"yes")
_FALSE_BYTES = (b"0", b"false", b"no")


def header_consent(raw: bytes | None) -> bool | None:
    """Parse the ``X-Consent`` header.

    Args:
        raw: the header value, or None when absent.

    Returns:
        True or False, None when the header is absent.

    Raises:
        BadRequest: the value is not one of ``true/false/1/0/yes/no``.
    """
    if raw is None:
        return None
    v = raw.strip().lower()
    if v in _TRUE_BYTES:
        return True
    if v in _FALSE_BYTES:
        return False
    raise BadRequest(
        f"X-Consent must be one of true, false, 1, 0, yes, no; got {raw[:40].decode('latin-1')!r}",
        code="bad_consent",
    )


def parameter_consent(req: Any) -> bool | None:
    """Read OIP v2 ``parameters.consent`` from a decoded request body.

    Args:
        req: the decoded JSON body.

    Returns:
        The boolean, or None when the body carries no ``parameters.consent``.

    Raises:
        BadRequest: ``parameters`` is not an object or ``consent`` is not a boolean.
    """
    params = req.get("parameters") if isinstance(req, dict) else None
    if params is None:  # absent or JSON null: some clients send "parameters": null
        return None
    if not isinstance(params, dict):
        raise BadRequest("OIP v2 'parameters' must be an object", code="bad_consent")
    if "consent" not in params:
        return None
    value = params["consent"]
    if not isinstance(value, bool):
        raise BadRequest(
            f"parameters.consent must be a boolean (true/false), got {type(value).__name__}",
            code="bad_consent",
        )
    return value


def resolve_consent(header: bytes | None, req: Any, default: bool) -> bool:
    """Decide whether a request consents.

    Args:
        header: the ``X-Consent`` header value, or None.
        req: the decoded body (OIP v2 ``parameters.consent`` is read when it is an object).
        default: the deployment's default when the request says nothing.

    Returns:
        The consent flag recorded with the request's event.

    Raises:
        BadRequest: a value is malformed, or header and parameter are both sent and disagree.
    """
    h = header_consent(header)
    p = parameter_consent(req)
    if h is not None and p is not None and h != p:
        raise BadRequest(
            f"X-Consent header ({str(h).lower()}) and parameters.consent ({str(p).lower()}) disagree",
            code="bad_consent",
        )
    if h is not None:
        return h
    if p is not None:
        return p
    return default


def grpc_consent(header: str | bytes | None, params: Any, default: bool) -> bool:
    """Decide whether a gRPC ``ModelInfer`` request consents (metadata ``x-consent``, ``parameters``).

    Args:
        header: the ``x-consent`` metadata value, or None.
        params: the request's ``parameters`` map (``InferParameter`` values); ``consent`` must hold
            ``bool_param``.
        default: the deployment's default when the request says nothing.

    Returns:
        The consent flag.

    Raises:
        BadRequest: a value is malformed, or metadata and parameter disagree.
    """
    raw = header.encode("latin-1") if isinstance(header, str) else header
    req: dict[str, Any] = {}
    if params is not None and "consent" in params:
        p = params["consent"]
        kind = p.WhichOneof("parameter_choice")
        req = {
            "parameters": {"consent": p.bool_param if kind == "bool_param" else getattr(p, kind or "", None)}
        }
    return resolve_consent(raw, req, default)
