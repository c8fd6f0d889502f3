"""Who is asking: the plugin app is mounted without Airflow's auth, so it checks the Airflow JWT itself.

The token comes from the ``Authorization: Bearer`` header (API clients) or from the Airflow UI's
session cookie (pages opened from the UI); it is validated by the api-server's own auth manager
(signature, expiry, revocation). No token or a bad one: 401. A form posted with the cookie must come
from this server's own pages (``Origin``/``Referer``), so another site cannot answer an approval in
the user's name.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fastapi import HTTPException, Request, status

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: the Airflow user, their token (forwarded to Airflow's API) and how it came."""

    user: Any
    token: str
    via_cookie: bool

    @property
    def id(self) -> str:
        """The user's id as Airflow's HITL requests name assignees."""
        return str(self.user.get_id())

    @property
    def name(self) -> str:
        """The user's display name."""
        return str(self.user.get_name())


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


async def caller(request: Request) -> Caller:
    """FastAPI dependency: the validated caller, or 401.

    Raises:
        HTTPException: 401 when there is no token, or it is invalid, expired or revoked.
    """
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
    from airflow.api_fastapi.core_api.security import resolve_user_from_token

    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        token, via_cookie = header[7:].strip(), False
    else:
        token, via_cookie = request.cookies.get(COOKIE_NAME_JWT_TOKEN, ""), True
    if not token:
        raise _unauthorized("not authenticated: send an Airflow token (Authorization: Bearer) or sign in to Airflow")
    try:
        user = await resolve_user_from_token(token)
    except HTTPException as e:
        raise _unauthorized(f"Airflow token refused: {e.detail}") from e
    return Caller(user, token, via_cookie)


def same_origin(request: Request) -> bool:
    """Whether a cookie-authenticated form post comes from a page of this server."""
    source = request.headers.get("origin") or request.headers.get("referer") or ""
    return bool(source) and urlsplit(source).netloc == request.headers.get("host", "")
