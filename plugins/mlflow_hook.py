"""Airflow side of the MLflow registry: connection ``modelgate_mlflow`` → tracking URI for include/."""

from __future__ import annotations

import os
from typing import Any

from airflow.sdk import BaseHook

CONN_ID = "modelgate_mlflow"


class ModelgateMlflowHook(BaseHook):
    """Reads the MLflow tracking server from an Airflow connection (type ``http``).

    The connection's host/port (and schema ``http``/``https``) form the tracking URI; login and
    password, when set, become ``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD`` for the
    basic-auth app. Without the connection, ``MODELGATE_TRACKING_URI`` (or its default) is used.
    """

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = CONN_ID
    conn_type = "http"
    hook_name = "modelgate MLflow"

    def __init__(self, mlflow_conn_id: str = CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mlflow_conn_id = mlflow_conn_id

    def get_conn(self) -> str:
        """Point this process's MLflow client at the connection and return the tracking URI."""
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            conn = self.get_connection(self.mlflow_conn_id)
        except AirflowNotFoundException:
            return os.environ.get("MODELGATE_TRACKING_URI", "http://127.0.0.1:5000")
        scheme = conn.schema or "http"
        uri = f"{scheme}://{conn.host}" + (f":{conn.port}" if conn.port else "")
        os.environ["MODELGATE_TRACKING_URI"] = uri
        os.environ["MLFLOW_TRACKING_URI"] = uri
        if conn.login:
            os.environ["MLFLOW_TRACKING_USERNAME"] = conn.login
        if conn.password:
            os.environ["MLFLOW_TRACKING_PASSWORD"] = conn.password
        return uri
