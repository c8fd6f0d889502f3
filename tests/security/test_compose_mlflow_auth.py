"""docker-compose.yaml runs MLflow's basic-auth app, and every client gets its own identity from a secret file.

The compose file is checked as written (no container engine runs here; tests/test_compose.py validates
it with ``docker-compose config``); the entrypoint script, the secret generator and the baked auth
configuration are run for real.
"""

from __future__ import annotations

import configparser
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from include.registry.credentials import identities_dir, password_file, role_identity
from include.registry.mlflow_users import FLASK_KEY_FILE, main, write_auth_config

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "serving_images" / "mlflow" / "mlflow-secrets.sh"
AIRFLOW_LONG_RUNNING = (
    "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
    "airflow-worker", "airflow-worker-gpu",
)


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    loaded = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def _secrets_of(service: dict[str, Any]) -> set[str]:
    return {s if isinstance(s, str) else s["source"] for s in service.get("secrets") or []}


def test_mlflow_runs_the_basic_auth_app_with_its_secrets_from_files(doc: dict[str, Any]) -> None:
    mlflow = doc["services"]["mlflow"]
    command = mlflow["command"]
    assert command[:2] == ["mlflow", "server"]
    assert command[command.index("--app-name") + 1] == "basic-auth"
    assert mlflow["entrypoint"] == ["/usr/local/bin/mlflow-secrets", "server"]
    assert _secrets_of(mlflow) == {"mlflow-admin-password", FLASK_KEY_FILE}
    assert not {"MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"} & set(mlflow["environment"])
    auth_volume = next(v for v in mlflow["volumes"] if v.endswith(":/var/lib/mlflow-auth"))
    assert auth_volume.split(":")[0] in doc["volumes"]  # the users database survives a restart


def test_the_mlflow_image_bakes_the_auth_config_modelgate_writes(tmp_path: Path) -> None:
    dockerfile = (REPO / "serving_images" / "mlflow" / "Dockerfile").read_text()
    assert "COPY deploy/mlflow/basic_auth.ini /etc/mlflow/basic_auth.ini" in dockerfile
    assert re.search(r"ENV MLFLOW_AUTH_CONFIG_PATH=/etc/mlflow/basic_auth.ini\b", dockerfile)
    assert "COPY serving_images/mlflow/mlflow-secrets.sh /usr/local/bin/mlflow-secrets" in dockerfile
    baked = configparser.ConfigParser()
    baked.read(REPO / "deploy" / "mlflow" / "basic_auth.ini")
    db = Path(baked["mlflow"]["database_uri"].removeprefix("sqlite:///"))
    assert db.parent == Path("/var/lib/mlflow-auth")
    written = configparser.ConfigParser()
    written.read(write_auth_config(tmp_path / "auth.ini", db))
    assert dict(baked["mlflow"]) == dict(written["mlflow"])
    assert baked["mlflow"]["default_permission"] == "NO_PERMISSIONS"  # issue 13: READ on models only
    assert "admin_password" not in baked["mlflow"]


def test_each_service_mounts_only_its_own_identity(doc: dict[str, Any]) -> None:
    services = doc["services"]
    held = {name: _secrets_of(s) for name, s in services.items() if _secrets_of(s)}
    airflow_ids = {"mlflow-airflow-password", "mlflow-batch-password"}  # the batch job runs on the gpu worker
    assert held == {
        "mlflow": {"mlflow-admin-password", FLASK_KEY_FILE},
        "router": {"mlflow-router-password"},
        "airflow-mlflow-init": {
            "mlflow-admin-password", "mlflow-airflow-password", "mlflow-router-password", "mlflow-batch-password",
        },
        "airflow-init": airflow_ids,
        **dict.fromkeys(AIRFLOW_LONG_RUNNING, airflow_ids),
    }
    router = services["router"]
    assert router["entrypoint"] == ["/usr/local/bin/mlflow-secrets", "client", "router"]
    assert router["command"][:3] == ["python", "-m", "router"]
    for name in AIRFLOW_LONG_RUNNING:
        env = services[name]["environment"]
        assert env["MODELGATE_MLFLOW_IDENTITIES_DIR"] == "/run/secrets"
        assert "@" not in env["AIRFLOW_CONN_MODELGATE_MLFLOW"]  # no credentials in the connection
        assert services[name]["depends_on"]["airflow-mlflow-init"]["condition"] == "service_completed_successfully"
    assert router["depends_on"]["airflow-mlflow-init"]["condition"] == "service_completed_successfully"


def test_the_users_are_made_by_a_one_shot_that_waits_for_mlflow(doc: dict[str, Any]) -> None:
    init = doc["services"]["airflow-mlflow-init"]
    assert init["command"] == ["python", "-m", "include.registry.mlflow_users", "ensure-users"]
    assert init["depends_on"]["mlflow"]["condition"] == "service_healthy"
    assert init["restart"] == "no"


def test_secret_files_come_from_the_ignored_secrets_folder(doc: dict[str, Any]) -> None:
    files = {name: spec["file"] for name, spec in doc["secrets"].items()}
    prefix = "${MODELGATE_SECRETS_DIR:-./.local/secrets}/"
    assert files == {name: prefix + name for name in files}
    expected = {password_file(Path(), u).name for u in ("admin", "airflow", "router", "batch")} | {FLASK_KEY_FILE}
    assert set(files) == expected
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", ".local/secrets/mlflow-admin-password"], cwd=REPO, check=False
    )
    assert ignored.returncode == 0, ".local/ must stay git-ignored: the compose secrets live there"


def test_generated_secret_files_are_private_and_kept(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "secrets"
    assert main(["secrets", str(folder)]) == 0
    first = {p.name: p.read_text() for p in folder.iterdir()}
    assert set(first) == {f"mlflow-{u}-password" for u in ("admin", "airflow", "router", "batch")} | {FLASK_KEY_FILE}
    assert all(len(v.strip()) >= 12 for v in first.values())
    assert all((folder / n).stat().st_mode & 0o777 == 0o600 for n in first)
    out = capsys.readouterr().out
    assert all(v.strip() not in out for v in first.values())  # paths printed, never contents
    assert main(["secrets", str(folder)]) == 0
    assert {p.name: p.read_text() for p in folder.iterdir()} == first


def _script(tmp_path: Path, *args: str, files: dict[str, str]) -> subprocess.CompletedProcess[str]:
    folder = tmp_path / "run-secrets"
    folder.mkdir(exist_ok=True)
    for name, value in files.items():
        (folder / name).write_text(value)
    env = {"PATH": os.environ["PATH"], "MLFLOW_SECRETS_DIR": str(folder)}
    return subprocess.run(["sh", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=30)


def test_the_entrypoint_gives_a_client_its_identity_and_the_server_its_admin(tmp_path: Path) -> None:
    client = _script(tmp_path, "client", "router", "env", files={"mlflow-router-password": "r" * 24 + "\n"})
    assert client.returncode == 0, client.stderr
    env = dict(line.split("=", 1) for line in client.stdout.splitlines() if "=" in line)
    assert env["MLFLOW_TRACKING_USERNAME"] == "router"
    assert env["MLFLOW_TRACKING_PASSWORD"] == "r" * 24  # without the file's trailing newline
    server = _script(
        tmp_path, "server", "env",
        files={"mlflow-admin-password": "a" * 24, FLASK_KEY_FILE: "k" * 32},
    )
    assert server.returncode == 0, server.stderr
    env = dict(line.split("=", 1) for line in server.stdout.splitlines() if "=" in line)
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"] == "a" * 24
    assert env["MLFLOW_FLASK_SERVER_SECRET_KEY"] == "k" * 32
    assert "MLFLOW_TRACKING_PASSWORD" not in env


@pytest.mark.parametrize(
    ("args", "files", "message"),
    [
        (("client", "batch", "env"), {}, "mlflow-batch-password is missing or empty"),
        (("client", "batch", "env"), {"mlflow-batch-password": ""}, "mlflow-batch-password is missing or empty"),
        (("server", "env"), {"mlflow-admin-password": "a" * 24}, "mlflow-flask-secret-key is missing"),
        (("client", "router"), {"mlflow-router-password": "r" * 24}, "mlflow-secrets: no command to run"),
        (("client",), {}, "usage: mlflow-secrets client USER COMMAND"),
        (("nonsense",), {}, "usage: mlflow-secrets server"),
    ],
    ids=["missing", "empty", "server-without-flask-key", "client-without-command", "client-without-user", "unknown-mode"],
)
def test_the_entrypoint_refuses_missing_secrets_with_a_clear_message(
    tmp_path: Path, args: tuple[str, ...], files: dict[str, str], message: str
) -> None:
    result = _script(tmp_path, *args, files=files)
    assert result.returncode == 64
    assert message in result.stderr
    assert result.stdout == ""


def test_identities_are_read_from_the_configured_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mounted = tmp_path / "run-secrets"
    mounted.mkdir()
    (mounted / "mlflow-batch-password").write_text("b" * 20)
    monkeypatch.setenv("MODELGATE_MLFLOW_IDENTITIES_DIR", str(mounted))
    assert identities_dir() == mounted
    who = role_identity("batch")
    assert who is not None and (who.username, who.password) == ("batch", "b" * 20)
    assert role_identity("airflow") is None  # not mounted: anonymous (the server answers 401)
    monkeypatch.delenv("MODELGATE_MLFLOW_IDENTITIES_DIR")
    assert identities_dir() != mounted
