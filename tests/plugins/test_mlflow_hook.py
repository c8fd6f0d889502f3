"""The MLflow hook gives a task the connection's identity without putting a password in os.environ."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from include.registry.credentials import current_identity, use_identity


def test_hook_uses_the_connection_identity_and_writes_no_credential_into_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from plugins.mlflow_hook import ModelgateMlflowHook

    secret = tmp_path / "mlflow-airflow-password"
    secret.write_text("s3cret-password-of-airflow\n")
    conn = {"conn_type": "http", "host": "127.0.0.1", "port": 5999, "login": "airflow",
            "extra": {"password_file": str(secret)}}  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_MODELGATE_MLFLOW", json.dumps(conn))
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://unused")  # get_conn sets it; restored after the test
    monkeypatch.setenv("MODELGATE_TRACKING_URI", "http://unused")
    before = current_identity()  # the session's identity when an MLflow server fixture set one
    use_identity(None)
    try:
        uri = ModelgateMlflowHook().get_conn()
        assert uri == "http://127.0.0.1:5999"
        who = current_identity()
        assert who is not None and who.username == "airflow" and who.password == "s3cret-password-of-airflow"
        assert "s3cret" not in repr(who)
        assert not any("s3cret" in v for v in os.environ.values())
        assert "MLFLOW_TRACKING_PASSWORD" not in os.environ
        # every MLflow request of the process carries it
        from mlflow.tracking.request_header.registry import resolve_request_headers

        assert resolve_request_headers()["Authorization"] == who.authorization()
        use_identity(None)
        assert "Authorization" not in resolve_request_headers()
    finally:
        use_identity(before)


def test_a_connection_without_credentials_uses_the_airflow_password_file_of_the_secrets_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from include.registry.credentials import ensure_password
    from plugins.mlflow_hook import ModelgateMlflowHook

    monkeypatch.setenv("MODELGATE_SECRETS_DIR", str(tmp_path / "secrets"))
    expected = ensure_password(tmp_path / "secrets", "airflow")
    monkeypatch.setenv("AIRFLOW_CONN_MODELGATE_MLFLOW", "http://127.0.0.1:5998")  # as the production contract
    uri, who = ModelgateMlflowHook().connection()
    assert uri == "http://127.0.0.1:5998" and who == expected
