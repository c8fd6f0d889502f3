"""MLflow identities: who a process talks to the registry as, without putting passwords in the environment.

MLflow's basic-auth app knows one user per role (docs/security.md): ``airflow`` writes versions, tags
and aliases; ``router`` and ``batch`` only read registered models; ``admin`` is for people. Each
password lives in ``<secrets>/mlflow-<user>-password`` (0600).

MLflow reads credentials from ``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD`` on every
request; a password there is inherited by every child process and shows up in environment dumps.
Instead this module registers a request-header provider with MLflow that adds the ``Authorization``
header of the identity in use: :func:`as_identity` (scoped, restores the previous one) or
:func:`use_identity` (for the rest of a task process). Every MLflow request of the process,
registry calls and artifact transfers alike (worker threads too), carries it.
"""

from __future__ import annotations

import base64
import logging
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from include.registry.audit_anchor import write_secret_file

log = logging.getLogger(__name__)

ROLES = ("airflow", "router", "batch", "admin")
"""The MLflow users modelgate creates, one per role."""

MIN_PASSWORD_CHARS = 12
"""MLflow's basic-auth app refuses shorter admin passwords."""


class CredentialsError(RuntimeError):
    """Raised when an MLflow identity cannot be read (missing or empty secret file, unknown role)."""


@dataclass(frozen=True)
class MlflowIdentity:
    """A user of MLflow's basic-auth app; the password never appears in ``repr`` or logs."""

    username: str
    password: str = field(repr=False)

    def authorization(self) -> str:
        """Return the value of the ``Authorization`` header for this identity."""
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.standard_b64encode(raw).decode("ascii")


def password_file(secrets_dir: Path, user: str) -> Path:
    """Return where the password of ``user`` is kept."""
    return secrets_dir / f"mlflow-{user}-password"


def ensure_password(secrets_dir: Path, user: str) -> MlflowIdentity:
    """Return ``user``'s identity, generating its password on first use (file 0600 from its first byte).

    Args:
        secrets_dir: the secrets folder (created 0700 when missing).
        user: one of :data:`ROLES`.

    Raises:
        CredentialsError: unknown role, or the file exists but is empty.
    """
    if user not in ROLES:
        raise CredentialsError(f"unknown MLflow role {user!r}; expected one of {', '.join(ROLES)}")
    secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = password_file(secrets_dir, user)
    if not path.exists():
        write_secret_file(path, secrets.token_urlsafe(24).encode())
    return read_identity(secrets_dir, user)


def read_identity(secrets_dir: Path, user: str) -> MlflowIdentity:
    """Return ``user``'s identity from its password file.

    Raises:
        CredentialsError: the file is missing, empty or shorter than :data:`MIN_PASSWORD_CHARS`.
    """
    path = password_file(secrets_dir, user)
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        raise CredentialsError(f"no MLflow password for {user!r}: {path} is missing (run make up)") from None
    if len(value) < MIN_PASSWORD_CHARS:
        raise CredentialsError(
            f"MLflow password file {path} is empty or shorter than {MIN_PASSWORD_CHARS} characters: "
            "delete it so that a new one is generated"
        )
    return MlflowIdentity(user, value)


_lock = threading.Lock()
_current: list[MlflowIdentity] = []


def current_identity() -> MlflowIdentity | None:
    """Return the identity this process's MLflow requests carry now (None: anonymous)."""
    with _lock:
        who = _current[-1] if _current else None
    return who if who is not None and who.username else None


class _IdentityHeaderProvider:
    """MLflow request-header provider: the ``Authorization`` header of :func:`current_identity`."""

    def in_context(self) -> bool:
        return current_identity() is not None

    def request_headers(self) -> dict[str, str]:
        who = current_identity()
        return {"Authorization": who.authorization()} if who is not None else {}


_registered = False


def _register_provider() -> None:
    global _registered
    with _lock:
        if _registered:
            return
        from mlflow.tracking.request_header.registry import _request_header_provider_registry

        _request_header_provider_registry.register(_IdentityHeaderProvider)
        _registered = True


def use_identity(identity: MlflowIdentity | None) -> None:
    """Make ``identity`` the one every later MLflow request of this process carries (None: anonymous).

    For a process with one job (an Airflow task, the batch job); scoped use: :func:`as_identity`.
    """
    _register_provider()
    with _lock:
        _current.clear()
        if identity is not None:
            _current.append(identity)
    log.info("MLflow requests of this process authenticate as %s", identity.username if identity else "nobody")


@contextmanager
def as_identity(identity: MlflowIdentity | None) -> Iterator[MlflowIdentity | None]:
    """Send this block's MLflow requests as ``identity`` (None: anonymous), then restore the previous one.

    The identity is process-wide while the block runs (MLflow's artifact transfers use worker
    threads); do not interleave blocks of different identities in concurrent threads.
    """
    _register_provider()
    anonymous = MlflowIdentity("", "")
    with _lock:
        _current.append(identity if identity is not None else anonymous)
    try:
        yield identity
    finally:
        with _lock:
            _current.pop()


def identities_dir() -> Path:
    """Return the folder of the ``mlflow-<user>-password`` files.

    ``MODELGATE_MLFLOW_IDENTITIES_DIR`` when set (compose mounts its secrets read-only at
    ``/run/secrets``), else the secrets folder (``MODELGATE_SECRETS_DIR`` or ``<home>/secrets``).
    """
    from include.config import get_settings

    configured = get_settings().mlflow_identities_dir
    if configured is not None:
        return configured
    from include.registry.audit_anchor import secrets_dir

    return secrets_dir()


def role_identity(user: str, secrets_dir: Path | None = None) -> MlflowIdentity | None:
    """Return ``user``'s identity when its password file exists, else None (anonymous).

    Args:
        user: one of :data:`ROLES`.
        secrets_dir: default :func:`identities_dir`.

    Without the file the process stays anonymous and an authenticated server answers 401, which
    names the problem.
    """
    if secrets_dir is None:
        secrets_dir = identities_dir()
    if not password_file(secrets_dir, user).exists():
        return None
    return read_identity(secrets_dir, user)
