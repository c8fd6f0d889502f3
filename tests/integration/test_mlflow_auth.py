"""MLflow runs its basic-auth app: who may move an alias, on a real server (issue 13 acceptance)."""

from __future__ import annotations

import base64
import hashlib
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


# ---------------------------------------------------------------------- least privilege (router, batch)

LP_MODEL = "least-privilege-model"


def _rest(uri: str, user: str, method: str, path: str, body: dict[str, object] | None = None) -> int:
    """Send one raw REST call as ``user`` (independent of modelgate's client code); return the status."""
    who = mlflow_identity(user)
    req = urllib.request.Request(
        f"{uri}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"},
        method=method,
    )
    req.add_header("Authorization", "Basic " + base64.b64encode(f"{who.username}:{who.password}".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            r.read()
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


@pytest.fixture(scope="module")
def served(mlflow_server: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A version registered by modelgate's registration code as ``airflow``: name, version, run, experiment, sha256."""
    from support import make_logreg_onnx

    from include.registry.registry import register_model

    src = make_logreg_onnx(tmp_path_factory.mktemp("lp") / "served.onnx", seed=11)
    with as_identity(mlflow_identity("airflow")):
        rv = register_model(LP_MODEL, src, actor="test", tracking_uri=mlflow_server)
        mv = MlflowClient(mlflow_server).get_model_version(LP_MODEL, rv.version)
        run = MlflowClient(mlflow_server).get_run(str(mv.run_id))
    return {
        "version": rv.version,
        "run_id": str(mv.run_id),
        "experiment_id": run.info.experiment_id,
        "sha256": hashlib.sha256(src.read_bytes()).hexdigest(),  # of the source bytes, not the code's hash
    }


@pytest.mark.parametrize("user", ["router", "batch"])
def test_reader_identities_load_the_version_they_serve(
    mlflow_server: str, served: dict[str, str], user: str, tmp_path: Path
) -> None:
    from include.registry.resolve import resolve_model_uri

    uri = f"models:/{LP_MODEL}/{served['version']}"
    with as_identity(mlflow_identity(user)):
        got = resolve_model_uri(uri, cache_dir=tmp_path / "cache", tracking_uri=mlflow_server)
    assert got.sha256 == served["sha256"]
    assert hashlib.sha256(got.path.read_bytes()).hexdigest() == served["sha256"]
    q = f"name={LP_MODEL}&version={served['version']}"
    assert _rest(mlflow_server, user, "GET", f"/api/2.0/mlflow/model-versions/get?{q}") == 200
    assert _rest(mlflow_server, user, "GET", f"/model-versions/get-artifact?{q}&path=model.onnx") == 200


def test_the_router_process_loads_the_version_with_its_own_identity(
    mlflow_server: str, served: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from router.sources import RegistryResolver

    who = mlflow_identity("router")  # the router reads MLflow's standard variables (Procfile, compose)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", who.username)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", who.password)
    with as_identity(None):
        got = RegistryResolver(tmp_path / "cache", mlflow_server).resolve(f"models:/{LP_MODEL}/{served['version']}")
    assert got.sha256 == served["sha256"] and got.version == served["version"]


@pytest.mark.parametrize("user", ["router", "batch"])
def test_reader_identities_get_403_on_experiments_runs_and_run_artifacts(
    mlflow_server: str, served: dict[str, str], user: str
) -> None:
    run, exp = served["run_id"], served["experiment_id"]
    refused: dict[str, tuple[str, str, dict[str, object] | None]] = {
        "run": ("GET", f"/api/2.0/mlflow/runs/get?run_id={run}", None),
        "experiment": ("GET", f"/api/2.0/mlflow/experiments/get?experiment_id={exp}", None),
        "run artifact (proxy)": ("GET", f"/api/2.0/mlflow-artifacts/artifacts/{exp}/{run}/artifacts/model/model.onnx", None),
        "run artifact list": ("GET", f"/api/2.0/mlflow/artifacts/list?run_id={run}", None),
        "metric history": ("GET", f"/api/2.0/mlflow/metrics/get-history?run_id={run}&metric_key=x", None),
        "new experiment": ("POST", "/api/2.0/mlflow/experiments/create", {"name": f"by-{user}"}),
        "new run": ("POST", "/api/2.0/mlflow/runs/create", {"experiment_id": exp}),
    }
    answers = {what: _rest(mlflow_server, user, *call) for what, call in refused.items()}
    assert answers == dict.fromkeys(refused, 403)
    # the same calls as airflow succeed: the 403s are the identity's rights, not broken requests
    for what in ("run", "experiment", "run artifact (proxy)", "run artifact list"):
        assert _rest(mlflow_server, "airflow", *refused[what]) == 200, what


def test_roles_are_set_exactly_and_idempotently(mlflow_server: str) -> None:
    from mlflow.server.auth.client import AuthServiceClient

    from include.registry.audit_anchor import secrets_dir
    from include.registry.mlflow_users import ROLE_GRANTS, USER_ROLE, WORKSPACE

    with as_identity(mlflow_identity("admin")):
        client = AuthServiceClient(mlflow_server)
        reader = next(r for r in client.list_roles(WORKSPACE) if r.name == "modelgate-model-reader")
        client.add_role_permission(reader.id, "experiment", "0", "READ")  # widened by hand
        ensure_users(mlflow_server, secrets_dir())
        ensure_users(mlflow_server, secrets_dir())
        grants = {
            r.name: sorted((p.resource_type, p.resource_pattern, p.permission) for p in client.list_role_permissions(r.id))
            for r in client.list_roles(WORKSPACE)
            if r.name in ROLE_GRANTS  # not MLflow's per-user roles (airflow's MANAGE on experiment 0)
        }
        held = {u: [r.name for r in client.list_user_roles(u) if r.name in ROLE_GRANTS] for u in USER_ROLE}
    assert grants == {name: sorted(g) for name, g in ROLE_GRANTS.items()}
    assert held == {"airflow": ["modelgate-pipeline"], "router": ["modelgate-model-reader"], "batch": ["modelgate-model-reader"]}


def test_ensure_users_cli_takes_passwords_from_the_identities_folder(
    mlflow_server: str,
    versions: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from include.registry.audit_anchor import secrets_dir
    from include.registry.mlflow_users import main

    monkeypatch.setenv("MODELGATE_TRACKING_URI", mlflow_server)
    mounted = tmp_path / "run-secrets"  # compose's read-only secrets: a missing file is an error, not generated
    mounted.mkdir()
    monkeypatch.setenv("MODELGATE_MLFLOW_IDENTITIES_DIR", str(mounted))
    assert main(["ensure-users"]) == 2
    assert f"{mounted}/mlflow-admin-password is missing" in capsys.readouterr().err
    assert list(mounted.iterdir()) == []
    monkeypatch.setenv("MODELGATE_MLFLOW_IDENTITIES_DIR", str(secrets_dir()))
    assert main(["ensure-users"]) == 0
    assert _alias_request(mlflow_server, "airflow", versions[0]) == 200  # the passwords are still the files'
    assert _alias_request(mlflow_server, "router", versions[0]) == 403
