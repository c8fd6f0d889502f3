"""docker-compose.yaml: valid for `docker-compose config`, healthchecks everywhere, no secret in the file.

No container engine runs here; Debian's ``docker-compose`` validates the file offline. When it is
missing these tests fail (they do not skip): install it with ``apt-get install -y docker-compose``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yaml"

REQUIRED_SECRETS = {
    "POSTGRES_PASSWORD": "dummy-postgres-password",
    "AIRFLOW_FERNET_KEY": "dummy-fernet-key",
    "AIRFLOW_JWT_SECRET": "dummy-jwt-secret",
    "AIRFLOW_API_SECRET_KEY": "dummy-api-secret-key",
    "AIRFLOW_ADMIN_PASSWORD": "dummy-admin-password",
    "ROUTER_ADMIN_TOKEN": "dummy-router-token",
}
AIRFLOW_IMAGE = "modelgate/airflow:dev"
AIRFLOW_SERVICES = (
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-worker-gpu",
)

SECRET_KEY = re.compile(r"(?i)(password|passwd|secret|token|fernet|api_?key|private_?key|credential)")
# A whole-value reference without a default: ${VAR} or ${VAR:?message} / ${VAR?message}.
REFERENCE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(:?\?[^}]*)?\}$")
URL_CREDENTIALS = re.compile(r"://(?:\$\{[^}]*\}|[^/\s:@$]+):(\$\{[^}]*\}|[^@\s/$]+)@")


def _docker_compose() -> str:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail(
            "docker-compose is not installed, so docker-compose.yaml cannot be validated: "
            "install it with `apt-get update && apt-get install -y docker-compose`"
        )
    return exe


def _run_config(tmp_path: Path, extra_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    empty_env_file = tmp_path / "empty.env"  # isolates the run from a developer's .env
    empty_env_file.write_text("")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), **extra_env}
    return subprocess.run(
        [_docker_compose(), "--env-file", str(empty_env_file), "-f", str(COMPOSE), "config"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    result = _run_config(tmp_path_factory.mktemp("compose"), REQUIRED_SECRETS)
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"
    doc = yaml.safe_load(result.stdout)
    assert isinstance(doc, dict)
    return doc


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(doc, dict)
    return doc


def _one_shot(name: str) -> bool:
    return name.endswith("-init")


# ---------------------------------------------------------------------- validation


def test_docker_compose_config_accepts_the_file_with_secrets_set(resolved: dict[str, Any]) -> None:
    assert {
        "postgres",
        "redis",
        "mlflow",
        "router",
        "prometheus",
        "airflow-init",
        *AIRFLOW_SERVICES,
    } <= set(resolved["services"])


def test_docker_compose_config_refuses_to_run_without_secrets(tmp_path: Path) -> None:
    result = _run_config(tmp_path, {})
    assert result.returncode != 0
    assert re.search(r"set [A-Z_]+", result.stderr), result.stderr


def test_missing_docker_compose_fails_with_install_hint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y docker-compose"):
        _docker_compose()


@pytest.mark.parametrize("missing", sorted(REQUIRED_SECRETS))
def test_each_secret_is_mandatory(tmp_path: Path, missing: str) -> None:
    env = {k: v for k, v in REQUIRED_SECRETS.items() if k != missing}
    result = _run_config(tmp_path, env)
    assert result.returncode != 0
    assert f"set {missing}" in result.stderr


# ---------------------------------------------------------------------- healthchecks and shape


def test_every_long_running_service_has_a_healthcheck(resolved: dict[str, Any]) -> None:
    missing = []
    for name, service in resolved["services"].items():
        if _one_shot(name):
            assert service.get("restart") == "no", f"one-shot {name} must not restart"
            continue
        check = service.get("healthcheck") or {}
        test = check.get("test")
        if check.get("disable") or not test or test == ["NONE"]:
            missing.append(name)
    assert not missing, f"services without a healthcheck: {missing}"


def test_services_that_wait_for_health_wait_on_services_with_healthchecks(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    for name, service in services.items():
        for dependency, rule in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            if rule.get("condition") == "service_healthy":
                assert services[dependency].get("healthcheck"), f"{name} waits on {dependency}"
            if rule.get("condition") == "service_completed_successfully":
                assert _one_shot(dependency), f"{name} waits for {dependency} to complete"


def test_airflow_services_run_airflow_3_on_postgres_with_celery_and_redis(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    for name in (*AIRFLOW_SERVICES, "airflow-init"):
        service = services[name]
        env = service["environment"]
        assert service["image"] == AIRFLOW_IMAGE
        assert service["build"]["dockerfile"] == "serving_images/airflow/Dockerfile"
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/0"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg://")
        assert "@postgres:5432/airflow" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        targets = {v.split(":")[1] for v in service["volumes"] if isinstance(v, str)}
        assert {"/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/include"} <= targets
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
    assert [services[n]["command"] for n in AIRFLOW_SERVICES] == [
        "api-server",
        "scheduler",
        "dag-processor",
        "triggerer",
        ["celery", "worker", "--queues", "default"],
        ["celery", "worker", "--queues", "gpu,default"],
    ]
    assert "airflow db migrate" in " ".join(services["airflow-init"]["command"])
    for name in AIRFLOW_SERVICES:
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"


def test_mlflow_uses_postgres_backend_and_serves_artifacts_from_a_volume(resolved: dict[str, Any]) -> None:
    mlflow = resolved["services"]["mlflow"]
    assert "--serve-artifacts" in mlflow["command"]
    assert mlflow["environment"]["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg://")
    destination = mlflow["environment"]["MLFLOW_ARTIFACTS_DESTINATION"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in mlflow["volumes"] if isinstance(v, str)}
    assert mounts[destination] in resolved["volumes"]


def test_router_is_built_from_its_dockerfile_and_reads_token_from_environment(resolved: dict[str, Any]) -> None:
    router = resolved["services"]["router"]
    # the context is the repository root: the image copies the contracts package next to the router
    assert Path(router["build"]["context"]) == REPO
    assert router["build"]["dockerfile"] == "serving_images/router/Dockerfile"
    assert router["command"] == [
        "python",
        "-m",
        "router",
        "--host",
        "0.0.0.0",
        "--port",
        "8500",
    ]
    assert router["environment"]["ROUTER_ADMIN_TOKEN"] == REQUIRED_SECRETS["ROUTER_ADMIN_TOKEN"]


# ---------------------------------------------------------------------- secrets


def _is_reference(value: str) -> bool:
    return REFERENCE.match(value) is not None


def find_literal_secrets(
    node: Any, is_ok: Callable[[str], bool] = _is_reference, path: str = ""
) -> list[str]:
    """Return the places in a compose document where a secret-looking value fails ``is_ok``.

    Looks at mapping keys and ``KEY=VALUE`` strings whose key names a secret, command-line
    flags naming a secret and the value after them, and passwords inside URLs.
    """
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            if SECRET_KEY.search(str(key)) and isinstance(value, str | int | float) and value != "":
                if not is_ok(str(value)):
                    found.append(where)
            found += find_literal_secrets(value, is_ok, where)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            where = f"{path}[{i}]"
            if (
                isinstance(item, str)
                and item.startswith("--")
                and SECRET_KEY.search(item)
                and "=" not in item
            ):
                following = node[i + 1] if i + 1 < len(node) else ""
                if not is_ok(str(following)):
                    found.append(where)
            found += find_literal_secrets(item, is_ok, where)
    elif isinstance(node, str):
        if "=" in node and not node.startswith("-"):
            key, _, value = node.partition("=")
            if SECRET_KEY.search(key) and value and not is_ok(value):
                found.append(path)
        for secret in URL_CREDENTIALS.findall(node):
            if not is_ok(secret):
                found.append(f"{path} (URL credentials)")
    return found


def test_no_secret_is_written_in_the_compose_file(raw: dict[str, Any]) -> None:
    assert find_literal_secrets(raw) == []


def test_every_secret_in_the_resolved_config_comes_from_the_environment(resolved: dict[str, Any]) -> None:
    # With dummy values in the environment, any other value in a secret place was written in the file
    # (or is a ${VAR:-default}).
    dummies = set(REQUIRED_SECRETS.values())
    assert find_literal_secrets(resolved, lambda value: value in dummies) == []
    text = yaml.safe_dump(resolved)
    for value in dummies:
        assert value in text


def test_secret_references_have_no_default_value() -> None:
    text = COMPOSE.read_text()
    for name in REQUIRED_SECRETS:
        assert re.search(rf"\$\{{{name}:-", text) is None, f"{name} has a default value"
        assert f"${{{name}:?set {name}}}" in text


@pytest.mark.parametrize(
    "doc",
    [
        {"services": {"db": {"environment": {"POSTGRES_PASSWORD": "hunter2"}}}},
        {"services": {"db": {"environment": ["API_TOKEN=abc123"]}}},
        {"services": {"db": {"environment": {"DB_URL": "postgresql://u:hunter2@db/x"}}}},
        {"services": {"db": {"command": ["serve", "--admin-token", "abc123"]}}},
        {"services": {"db": {"environment": {"JWT_SECRET": "${JWT_SECRET:-fallback}"}}}},
    ],
    ids=["mapping", "list-form", "url-credentials", "cli-flag", "reference-with-default"],
)
def test_secret_scanner_catches_literal_secrets(doc: dict[str, Any]) -> None:
    assert find_literal_secrets(doc) != []


def test_secret_scanner_reads_urls_whose_user_is_a_reference() -> None:
    literal = {"x": {"URL": "postgresql://${POSTGRES_USER:-app}:hunter2@db:5432/x"}}
    referenced = {"x": {"URL": "postgresql://${POSTGRES_USER:-app}:${POSTGRES_PASSWORD:?set it}@db:5432/x"}}
    assert find_literal_secrets(literal) == ["x.URL (URL credentials)"]
    assert find_literal_secrets(referenced) == []


def test_secret_scanner_accepts_references() -> None:
    doc = {
        "services": {
            "db": {
                "environment": {
                    "POSTGRES_PASSWORD": "${POSTGRES_PASSWORD:?set it}",
                    "URL": "postgresql://u:${POSTGRES_PASSWORD:?set it}@db/x",
                    "TOKEN_FILE_HINT": "${TOKEN}",
                },
                "command": ["serve", "--admin-token", "${TOKEN:?set TOKEN}"],
            }
        }
    }
    assert find_literal_secrets(doc) == []
