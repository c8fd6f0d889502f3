"""Airflow side of the MLflow registry: connection ``modelgate_mlflow`` → tracking URI + the ``airflow`` identity."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from include.registry.credentials import MlflowIdentity

CONN_ID = "modelgate_mlflow"


class ModelgateMlflowHook(BaseHook):
    """Reads the MLflow tracking server and the identity to use from an Airflow connection (type ``http``).

    The connection's host/port (and schema ``http``/``https``) form the tracking URI; its login and
    password (or, to keep the password out of the connection, ``extra.password_file``: a file
    holding it) are the MLflow basic-auth user, normally ``airflow``. Without the connection,
    the settings' ``MODELGATE_TRACKING_URI`` (or its default) is the server; without credentials in the
    connection, the ``airflow`` password file of the secrets folder is the identity.

    Nothing goes into ``os.environ``: :meth:`get_conn` returns the tracking URI, which the task
    passes to its step explicitly (every step builds its ``MlflowClient(tracking_uri=...)`` from it),
    and the credentials travel in the ``Authorization`` header of this process's MLflow requests
    (``include.registry.credentials``).
    """

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = CONN_ID
    conn_type = "http"
    hook_name = "modelgate MLflow"

    def __init__(self, mlflow_conn_id: str = CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mlflow_conn_id = mlflow_conn_id

    def connection(self) -> tuple[str, MlflowIdentity | None]:
        """Return the tracking URI and the identity of the connection (None: anonymous)."""
        from airflow.sdk.exceptions import AirflowNotFoundException

        from include.config import get_settings
        from include.registry.credentials import role_identity

        try:
            conn = self.get_connection(self.mlflow_conn_id)
        except AirflowNotFoundException:
            return get_settings().tracking_uri, role_identity("airflow")
        scheme = conn.schema or "http"
        uri = f"{scheme}://{conn.host}" + (f":{conn.port}" if conn.port else "")
        return uri, identity_of(conn)

    def get_conn(self) -> str:
        """Return the connection's tracking URI; this task's MLflow requests carry its identity from now on.

        The URI is returned, never written to ``os.environ`` nor set process-wide
        (``mlflow.set_tracking_uri``): the task hands it to the step it calls.
        """
        from include.registry.credentials import use_identity

        uri, identity = self.connection()
        use_identity(identity)
        return uri


def identity_of(conn: Any) -> MlflowIdentity | None:
    """Return the MLflow identity a ``modelgate_mlflow`` connection carries.

    Its login with its password or ``extra.password_file``; a connection without credentials stands
    for the secrets folder's ``airflow`` identity (None when that file is missing: anonymous).
    """
    from include.registry.credentials import MlflowIdentity, role_identity

    password = conn.password
    password_file = conn.extra_dejson.get("password_file") if conn.extra else None
    if not password and password_file:
        password = Path(password_file).read_text().strip()
    if conn.login and password:
        return MlflowIdentity(conn.login, password)
    return role_identity("airflow")
