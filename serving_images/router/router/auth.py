"""Bearer keys with roles; tokens are compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from router.errors import Forbidden, Unauthorized
from router.settings import RouterSettings

ADMIN_ROLES = frozenset({"admin", "read", "pin"})


@dataclass(frozen=True)
class Key:
    """A key as held in memory: name, sha256 of the token, roles."""

    name: str
    digest: bytes
    roles: frozenset[str]


class KeyRing:
    """All keys the router accepts.

    Args:
        settings: the router settings (``admin_token`` and ``api_keys``).
    """

    def __init__(self, settings: RouterSettings) -> None:
        keys = []
        if settings.admin_token is not None and settings.admin_token.get_secret_value():
            keys.append(Key("admin", _digest(settings.admin_token.get_secret_value()), ADMIN_ROLES))
        for k in settings.api_keys:
            roles = set(k.roles)
            if "admin" in roles:
                roles |= ADMIN_ROLES
            keys.append(Key(k.name, _digest(k.token.get_secret_value()), frozenset(roles)))
        self.keys = tuple(keys)

    def identify(self, authorization: bytes | None) -> Key | None:
        """Return the key of an ``Authorization: Bearer`` header, or None.

        Every key is compared (constant time each), so timing does not reveal which matched.

        Args:
            authorization: the raw header value.

        Returns:
            The matching key, or None when absent or unknown.
        """
        if not authorization:
            return None
        scheme, _, token = authorization.partition(b" ")
        if scheme.lower() != b"bearer" or not token.strip():
            return None
        d = hashlib.sha256(token.strip()).digest()
        found = None
        for k in self.keys:
            if hmac.compare_digest(d, k.digest):
                found = k
        return found

    def require(self, authorization: bytes | None, role: str) -> Key:
        """Return the caller's key if it has ``role``.

        Args:
            authorization: the raw header value.
            role: the role needed.

        Returns:
            The key.

        Raises:
            Unauthorized: no key or an unknown one.
            Forbidden: the key lacks the role.
        """
        key = self.identify(authorization)
        if key is None:
            raise Unauthorized("admin API needs 'Authorization: Bearer <token>' with a valid token")
        if role not in key.roles:
            raise Forbidden(f"key {key.name!r} lacks the {role!r} role")
        return key


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
