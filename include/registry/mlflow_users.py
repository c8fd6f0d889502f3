"""MLflow's basic-auth app as modelgate runs it: its configuration file and one user per role.

The server (``mlflow server --app-name basic-auth``) reads :func:`write_auth_config`'s file through
``MLFLOW_AUTH_CONFIG_PATH`` and bootstraps ``admin`` from ``MLFLOW_AUTH_ADMIN_PASSWORD`` on its first
start. :func:`ensure_users` then creates ``airflow``, ``router`` and ``batch`` idempotently through
MLflow's auth REST API (``AuthServiceClient``), as ``admin``, and gives each its role. Rights
(docs/security.md):

- default permission ``NO_PERMISSIONS``: a user reads only what a grant names;
- role ``modelgate-pipeline`` (``airflow``): ``READ`` on every experiment and registered model; it
  creates the registered models and experiments it writes (creators get ``MANAGE``) and gets
  ``MANAGE`` on the Default experiment (id 0, created by the server, not by a user);
- role ``modelgate-model-reader`` (``router``, ``batch``): ``READ`` on registered models (versions,
  tags, aliases and the version's files through ``/model-versions/get-artifact``) and ``DENY`` on
  experiments, so runs, metrics, run artifacts and experiment creation answer 403; alias moves, tags
  and versions answer 403 as before;
- ``admin`` (people) is MLflow's administrator.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from include.registry.credentials import (
    ROLES,
    MlflowIdentity,
    as_identity,
    ensure_password,
    password_file,
    read_identity,
)

if TYPE_CHECKING:
    from mlflow.server.auth.client import AuthServiceClient

log = logging.getLogger(__name__)

SERVICE_USERS = ("airflow", "router", "batch")
"""The users :func:`ensure_users` creates; ``admin`` is bootstrapped by the server itself."""

FLASK_KEY_FILE = "mlflow-flask-secret-key"
"""Secret file of the server's Flask secret key (CSRF of its UI)."""

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
        "default_permission = NO_PERMISSIONS\n"
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
    flask_key = secrets_dir / FLASK_KEY_FILE
    if not flask_key.exists():
        import secrets

        write_secret_file(flask_key, secrets.token_urlsafe(32).encode())
    return {
        **SERVER_ENV,
        "MLFLOW_AUTH_CONFIG_PATH": str(config_path),
        "MLFLOW_AUTH_ADMIN_PASSWORD": admin.password,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": flask_key.read_text().strip(),
    }


WORKSPACE = "default"
"""MLflow's workspace of every resource and role while workspaces are off (its default)."""

ROLE_GRANTS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "modelgate-pipeline": (("experiment", "*", "READ"), ("registered_model", "*", "READ")),
    "modelgate-model-reader": (("registered_model", "*", "READ"), ("experiment", "*", "DENY")),
}
"""Each role's grants as (resource type, pattern, permission); nothing else is granted by default."""

USER_ROLE = {"airflow": "modelgate-pipeline", "router": "modelgate-model-reader", "batch": "modelgate-model-reader"}
"""The role of each service user."""


def _ensure_role(client: AuthServiceClient, name: str) -> int:
    """Create role ``name`` when missing and make its grants exactly :data:`ROLE_GRANTS`; return its id."""
    role = next((r for r in client.list_roles(WORKSPACE) if r.name == name), None)
    if role is None:
        role = client.create_role(WORKSPACE, name, "modelgate: docs/security.md")
        log.info("MLflow role %s created", name)
    wanted = {(rtype, pattern): perm for rtype, pattern, perm in ROLE_GRANTS[name]}
    present = set()
    for grant in client.list_role_permissions(role.id):
        key = (grant.resource_type, grant.resource_pattern)
        present.add(key)
        if key not in wanted:
            client.remove_role_permission(grant.id)
        elif grant.permission != wanted[key]:
            client.update_role_permission(grant.id, wanted[key])
    for (rtype, pattern), perm in wanted.items():
        if (rtype, pattern) not in present:
            client.add_role_permission(role.id, rtype, pattern, perm)
    return int(role.id)


def ensure_users(tracking_uri: str, secrets_dir: Path, *, generate: bool = True) -> dict[str, MlflowIdentity]:
    """Create the service users (or reset their passwords to the secret files) and give them their roles.

    Idempotent: run at every ``make up`` and by the test fixture. A role's grants are set to
    :data:`ROLE_GRANTS` exactly (a grant added by hand is removed).

    Args:
        tracking_uri: the authenticated MLflow server.
        secrets_dir: where ``mlflow-<user>-password`` files are.
        generate: create missing password files; False (compose's mounted secrets): a missing file
            is an error, raised before anything changes on the server.

    Returns:
        Every role's identity, ``admin`` included.
    """
    from mlflow.exceptions import RestException
    from mlflow.server.auth.client import AuthServiceClient

    read = ensure_password if generate else read_identity
    identities = {user: read(secrets_dir, user) for user in ("admin", *SERVICE_USERS)}
    with as_identity(identities["admin"]):
        client = AuthServiceClient(tracking_uri)
        role_ids = {name: _ensure_role(client, name) for name in ROLE_GRANTS}
        for user in SERVICE_USERS:
            who = identities[user]
            try:
                client.get_user(user)
            except RestException:
                client.create_user(user, who.password)
                log.info("MLflow user %s created", user)
            else:
                client.update_user_password(user, who.password)
            held = {r.name for r in client.list_user_roles(user)}
            for name in set(ROLE_GRANTS) - {USER_ROLE[user]}:
                if name in held:
                    client.unassign_role(user, role_ids[name])
            if USER_ROLE[user] not in held:
                client.assign_role(user, role_ids[USER_ROLE[user]])
        try:
            client.grant_user_permission("airflow", "experiment", "0", "MANAGE")
        except RestException as e:
            if e.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
    return identities


def generate_secrets(directory: Path) -> list[Path]:
    """Create the missing MLflow secret files in ``directory`` (0600): every role's password and the Flask key.

    For ``docker-compose.yaml``, whose ``secrets:`` read these files; existing files are kept.

    Returns:
        The files, existing or new.
    """
    from include.registry.audit_anchor import write_secret_file

    files = [password_file(directory, user) for user in ROLES]
    for user in ROLES:
        ensure_password(directory, user)
    flask_key = directory / FLASK_KEY_FILE
    if not flask_key.exists():
        import secrets

        write_secret_file(flask_key, secrets.token_urlsafe(32).encode())
    return [*files, flask_key]


def main(argv: list[str] | None = None) -> int:
    """``python -m include.registry.mlflow_users {secrets DIR | ensure-users}``: compose's MLflow set-up.

    ``secrets DIR`` writes the missing secret files compose mounts (paths printed, never contents);
    ``ensure-users`` creates the users and roles on ``MODELGATE_TRACKING_URI`` with the passwords of
    ``MODELGATE_MLFLOW_IDENTITIES_DIR`` (compose's one-shot ``airflow-mlflow-init``).
    """
    import argparse
    import sys

    from mlflow.exceptions import MlflowException

    from include.config import get_settings
    from include.registry.credentials import CredentialsError, identities_dir

    parser = argparse.ArgumentParser(prog="python -m include.registry.mlflow_users")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("secrets", help="create missing secret files").add_argument("directory", type=Path)
    sub.add_parser("ensure-users", help="create the MLflow users and roles (idempotent)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s", stream=sys.stderr)
    try:
        if args.command == "secrets":
            for path in generate_secrets(args.directory):
                sys.stdout.write(f"{path}\n")
            return 0
        uri = get_settings().tracking_uri
        ensure_users(uri, identities_dir(), generate=False)
    except (CredentialsError, OSError, MlflowException) as e:
        sys.stderr.write(f"mlflow users: error: {e}\n")
        return 2
    sys.stdout.write(f"MLflow users {', '.join(SERVICE_USERS)} and their roles are set on {uri}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
