"""MLflow's basic-auth app as modelgate runs it: its configuration file and one user per role.

The server (``mlflow server --app-name basic-auth``) reads :func:`write_auth_config`'s file through
``MLFLOW_AUTH_CONFIG_PATH`` and bootstraps ``admin`` from ``MLFLOW_AUTH_ADMIN_PASSWORD`` on its first
start. :func:`ensure_users` then creates ``airflow``, ``router`` and ``batch`` idempotently through
MLflow's auth REST API (``AuthServiceClient``), as ``admin``. Rights (docs/security.md):

- default permission ``READ``: every user reads; nobody but the owner writes what it did not create;
- ``airflow`` creates the registered models and experiments it writes (creators get ``MANAGE``)
  and gets ``MANAGE`` on the Default experiment (id 0, created by the server, not by a user);
- ``router`` and ``batch`` get nothing more: alias moves, tags and versions answer 403;
- ``admin`` (people) is MLflow's administrator.
"""

from __future__ import annotations

import logging
from pathlib import Path

from include.registry.credentials import MlflowIdentity, as_identity, ensure_password

log = logging.getLogger(__name__)

SERVICE_USERS = ("airflow", "router", "batch")
"""The users :func:`ensure_users` creates; ``admin`` is bootstrapped by the server itself."""

SERVER_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
"""Environment every MLflow process of modelgate gets: no usage telemetry leaves the machine."""


def write_auth_config(path: Path, auth_db: Path) -> Path:
    """Write the basic-auth app's configuration (users database ``auth_db``); return ``path``.

    The admin password is not in the file: the server reads it from ``MLFLOW_AUTH_ADMIN_PASSWORD``.
    Credential checks are cached for 60 s per worker (PBKDF2 per request costs about a second here).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{auth_db}\n"
        "admin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "grant_default_workspace_access = false\n"
        "auth_cache_ttl_seconds = 60\n"
    )
    return path


def server_env(secrets_dir: Path, config_path: Path) -> dict[str, str]:
    """Return the environment of an authenticated ``mlflow server`` whose secrets live in ``secrets_dir``.

    Generates the admin password and the Flask secret key (CSRF) on first use.
    """
    from include.registry.audit_anchor import write_secret_file

    admin = ensure_password(secrets_dir, "admin")
    flask_key = secrets_dir / "mlflow-flask-secret-key"
    if not flask_key.exists():
        import secrets

        write_secret_file(flask_key, secrets.token_urlsafe(32).encode())
    return {
        **SERVER_ENV,
        "MLFLOW_AUTH_CONFIG_PATH": str(config_path),
        "MLFLOW_AUTH_ADMIN_PASSWORD": admin.password,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": flask_key.read_text().strip(),
    }


def ensure_users(tracking_uri: str, secrets_dir: Path) -> dict[str, MlflowIdentity]:
    """Create the service users (or reset their passwords to the secret files) and grant their rights.

    Idempotent: run at every ``make up`` and by the test fixture.

    Args:
        tracking_uri: the authenticated MLflow server.
        secrets_dir: where ``mlflow-<user>-password`` files are (generated when missing).

    Returns:
        Every role's identity, ``admin`` included.
    """
    from mlflow.exceptions import RestException
    from mlflow.server.auth.client import AuthServiceClient

    admin = ensure_password(secrets_dir, "admin")
    identities = {"admin": admin}
    with as_identity(admin):
        client = AuthServiceClient(tracking_uri)
        for user in SERVICE_USERS:
            who = ensure_password(secrets_dir, user)
            identities[user] = who
            try:
                client.get_user(user)
            except RestException:
                client.create_user(user, who.password)
                log.info("MLflow user %s created", user)
            else:
                client.update_user_password(user, who.password)
        try:
            client.grant_user_permission("airflow", "experiment", "0", "MANAGE")
        except RestException as e:
            if e.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
    return identities
