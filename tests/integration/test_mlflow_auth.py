"""MLflow runs its basic-auth app: who may move an alias, on a real server (issue 13 acceptance)."""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from support import mlflow_identity

from include.registry.credentials import as_identity, current_identity, password_file
from include.registry.mlflow_users import ensure_users

MODEL = "auth-test-model"


def _alias_request(uri: str, user: str | None, version: str) -> int:
    """Move ``champion`` with a raw REST call (independent of modelgate's client code); return the status."""
    req = urllib.request.Request(
        f"{uri}/api/2.0/mlflow/registered-models/alias",
        data=json.dumps({"name": MODEL, "alias": "champion", "version": version}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    if user is not None:
        who = mlflow_identity(user)
        token = base64.b64encode(f"{who.username}:{who.password}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


@pytest.fixture(scope="module")
def versions(mlflow_server: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """Two versions of ``MODEL`` written as ``airflow``; ``champion`` on the first."""
    client = MlflowClient(mlflow_server)
    src = tmp_path_factory.mktemp("auth") / "model.txt"
    src.write_text("not a model; aliases do not care")
    with as_identity(mlflow_identity("airflow")):
        client.create_registered_model(MODEL)
        out = []
        for _ in range(2):
            run = client.create_run("0")
            client.log_artifact(run.info.run_id, str(src), "model")
            out.append(client.create_model_version(MODEL, f"runs:/{run.info.run_id}/model", run.info.run_id).version)
        client.set_registered_model_alias(MODEL, "champion", out[0])
    return str(out[0]), str(out[1])


def test_anonymous_alias_move_is_refused_with_401(mlflow_server: str, versions: tuple[str, str]) -> None:
    assert _alias_request(mlflow_server, None, versions[1]) == 401
    with as_identity(None):
        assert current_identity() is None
        with pytest.raises(MlflowException) as e:
            MlflowClient(mlflow_server).set_registered_model_alias(MODEL, "champion", versions[1])
    assert e.value.get_http_status_code() == 401
    assert MlflowClient(mlflow_server).get_model_version_by_alias(MODEL, "champion").version == versions[0]


@pytest.mark.parametrize("user", ["router", "batch"])
def test_read_only_identities_get_403_on_alias_and_tag_but_can_read(
    mlflow_server: str, versions: tuple[str, str], user: str
) -> None:
    assert _alias_request(mlflow_server, user, versions[1]) == 403
    client = MlflowClient(mlflow_server)
    with as_identity(mlflow_identity(user)):
        with pytest.raises(MlflowException) as e:
            client.set_model_version_tag(MODEL, versions[1], "modelgate.sha256", "0" * 64)
        assert e.value.get_http_status_code() == 403
        assert client.get_model_version_by_alias(MODEL, "champion").version == versions[0]


def test_airflow_identity_moves_the_alias(mlflow_server: str, versions: tuple[str, str]) -> None:
    assert _alias_request(mlflow_server, "airflow", versions[1]) == 200
    assert MlflowClient(mlflow_server).get_model_version_by_alias(MODEL, "champion").version == versions[1]
    assert _alias_request(mlflow_server, "airflow", versions[0]) == 200


def test_users_are_made_idempotently_with_private_password_files(mlflow_server: str) -> None:
    from include.registry.audit_anchor import secrets_dir

    before = {u: mlflow_identity(u) for u in ("admin", "airflow", "router", "batch")}
    again = ensure_users(mlflow_server, secrets_dir())  # second run: no error, same passwords
    assert again == before
    for user in before:
        path: Path = password_file(secrets_dir(), user)
        assert path.stat().st_mode & 0o777 == 0o600
    assert "password" not in repr(before["airflow"])
    assert all(before["airflow"].password not in v for v in os.environ.values())
    assert _alias_request(mlflow_server, "airflow", "1") == 200  # the reset passwords still work
