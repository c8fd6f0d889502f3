"""docker-compose.yaml is the contract's compose rendering, and every value in it is one the code reads.

The checks live in ``support_contract``; each is run on the real file and on a copy with one of the
defects the file once had (router without routes file, a variable nobody reads, events mounted
where the code does not look, policies/validation/experiments missing, a file the repo lacks).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from support_contract import (
    REPO,
    closure,
    distribution_of,
    dockerfile_copies,
    missing_file_problems,
    module_file,
    mount_problems,
    pins,
    rendering_problems,
    repo_data_dirs,
    unread_variable_problems,
    unusable_default_problems,
)

from modelgate_dev.production import contract

COMPOSE = REPO / "docker-compose.yaml"


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def _broken(doc: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(doc))  # unshared copies of what YAML anchors share


# ---------------------------------------------------------------------- compose = contract rendering


def test_compose_environment_is_the_contract_rendering(doc: dict[str, Any]) -> None:
    assert rendering_problems(doc) == []


def test_a_value_edited_in_compose_only_is_caught(doc: dict[str, Any]) -> None:
    bad = _broken(doc)
    bad["services"]["airflow-worker-gpu"]["environment"]["MODELGATE_BATCH_QUEUE"] = "default"
    del bad["services"]["router"]["environment"]["ROUTER_EVENTS_ROOT"]
    assert rendering_problems(bad) == [
        "airflow-worker-gpu.MODELGATE_BATCH_QUEUE: compose 'default', contract 'gpu'",
        "router.ROUTER_EVENTS_ROOT: compose None, contract '/events'",
    ]


def test_the_contract_renders_every_placeholder_for_compose() -> None:
    for name in contract.SERVICES:
        env = contract.render(name, contract.COMPOSE)
        assert not any("{" in v.replace("${", "") for v in env.values()), env


# ---------------------------------------------------------------------- variables


def test_every_variable_compose_sets_is_read_by_the_code(doc: dict[str, Any]) -> None:
    assert unread_variable_problems(doc) == []


@pytest.mark.parametrize(
    ("service", "variable"),
    [
        ("airflow-scheduler", "MODELGATE_ROUTER_ADMIN_TOKENS"),
        ("airflow-worker", "AIRFLOW__CORE__NO_SUCH_OPTION"),
        ("router", "ROUTER_ROUTES_FILE"),
        ("mlflow", "MLFLOW_NO_SUCH_FLAG"),
        ("airflow-apiserver", "AIRFLOW_CONN_MODELGATE_NOBODY"),
    ],
)
def test_a_variable_nobody_reads_is_caught(doc: dict[str, Any], service: str, variable: str) -> None:
    bad = _broken(doc)
    bad["services"][service]["environment"][variable] = "x"
    assert unread_variable_problems(bad) == [f"{service}.{variable}: no code reads it"]


def test_every_setting_with_a_single_host_default_is_set(doc: dict[str, Any]) -> None:
    assert unusable_default_problems(doc) == []


def test_a_setting_left_at_its_loopback_or_local_default_is_caught(doc: dict[str, Any]) -> None:
    bad = _broken(doc)
    del bad["services"]["airflow-triggerer"]["environment"]["MODELGATE_TRACKING_URI"]
    del bad["services"]["airflow-triggerer"]["environment"]["MODELGATE_AUDIT_DB_URL"]
    del bad["services"]["router"]["environment"]["ROUTER_STATE_DIR"]
    del bad["services"]["router"]["environment"]["ROUTER_STORE_URL"]
    problems = unusable_default_problems(bad)
    assert "airflow-triggerer: Settings.tracking_uri = http://127.0.0.1:5000 (set it)" in problems
    assert any(p.startswith("airflow-triggerer: Settings.audit_db_url = sqlite:///") for p in problems)
    assert "router: RouterSettings.state_dir = .local/router (set it)" in problems
    assert "router: RouterSettings.cache_dir = .local/router/cache (set it)" in problems
    # the routes store defaults to SQLite under the state dir
    assert any(p.startswith("router: RouterSettings.store_url = sqlite:///") for p in problems)
    assert len(problems) == 5, problems


# ---------------------------------------------------------------------- paths and files


def test_every_mount_is_used_and_airflow_has_every_folder_it_reads(doc: dict[str, Any]) -> None:
    assert mount_problems(doc) == []


def test_events_mounted_where_the_code_does_not_look_are_caught(doc: dict[str, Any]) -> None:
    bad = _broken(doc)
    volumes = bad["services"]["airflow-scheduler"]["volumes"]
    volumes[volumes.index("events:/events")] = "events:/opt/airflow/events:ro"
    volumes.remove("./policies:/opt/airflow/policies:ro")
    assert mount_problems(bad) == [
        "airflow-scheduler: /opt/airflow/events is mounted but nothing reads it",
        "airflow-scheduler: /opt/airflow/policies is needed by the code but not mounted",
    ]


def test_airflow_needs_the_folders_the_domain_reads_relative_to_the_checkout() -> None:
    # published by the code itself: parents[2] / "policies" etc. (not by this test)
    files, _ = closure([REPO / "dags" / "canary_promotion.py", REPO / "dags" / "ab_analysis.py"])
    assert {"policies", "experiments"} <= repo_data_dirs(files)


def test_every_file_compose_names_exists(doc: dict[str, Any]) -> None:
    assert missing_file_problems(doc) == []


def test_a_missing_file_is_caught(doc: dict[str, Any]) -> None:
    bad = _broken(doc)
    bad["services"]["router"]["volumes"].append("./deploy/router/routes:/routes:ro")
    bad["services"]["mlflow"]["build"]["dockerfile"] = "serving_images/mlflow/Dockerfile.nope"
    assert missing_file_problems(bad) == [
        "mlflow: Dockerfile serving_images/mlflow/Dockerfile.nope does not exist",
        "router: mount source ./deploy/router/routes does not exist",
    ]


def test_the_router_runs_from_the_control_plane_not_a_routes_file(doc: dict[str, Any]) -> None:
    router = doc["services"]["router"]
    assert "--routes" not in router["command"]
    assert not any(t == "/routes" for _, t in (v.split(":")[:2] for v in router["volumes"]))


def test_prometheus_config_and_rules_exist_where_compose_mounts_them(doc: dict[str, Any]) -> None:
    prom = doc["services"]["prometheus"]
    source = next(v.split(":")[0] for v in prom["volumes"] if v.split(":")[1] == "/etc/prometheus")
    config = yaml.safe_load((REPO / source / "prometheus.yml").read_text())
    for rule_file in config["rule_files"]:
        assert (REPO / source / rule_file).is_file(), rule_file  # relative to the config file


# ---------------------------------------------------------------------- images


def test_every_dockerfile_copies_files_the_repository_has() -> None:
    for dockerfile in sorted(REPO.glob("serving_images/*/Dockerfile")):
        for source in dockerfile_copies(dockerfile):
            assert (REPO / source).exists(), f"{dockerfile.relative_to(REPO)} copies missing {source}"


def test_the_batch_image_has_every_module_and_distribution_its_entrypoint_imports() -> None:
    dockerfile = REPO / "serving_images" / "batch" / "Dockerfile"
    copied = [REPO / s for s in dockerfile_copies(dockerfile)]
    # the job's own package (its entrypoint imports it lazily) and models:/ resolution, which it calls;
    # not the DAG-side modules of the package (plan and publish, pod specs, output validation, the DAG steps)
    dag_side = {"nightly.py", "pods.py", "validate.py", "settings.py", "steps.py"}
    start = [p for p in sorted((REPO / "include" / "batch").glob("*.py")) if p.name not in dag_side]
    resolve = module_file("include.registry.resolve")
    assert resolve is not None and module_file("include.batch.__main__") in start
    files, third = closure([*start, resolve], module_level=True)
    assert len(files) > 10 and {"numpy", "pyarrow", "mlflow", "onnxruntime"} <= third
    not_copied = sorted(
        str(f.relative_to(REPO)) for f in files if not any(f == c or c in f.parents for c in copied)
    )
    assert not_copied == [], "python -m include.batch imports files the image does not copy"
    data = repo_data_dirs(files)
    assert all(any(REPO / d == c for c in copied) for d in data), f"the image lacks data folders {data}"
    required = set(pins(REPO / "serving_images" / "batch" / "requirements.txt"))
    lacking = sorted(m for m in third if not distribution_of(m) & {r.removesuffix("-gpu") for r in required})
    assert lacking == [], "python -m include.batch imports modules no requirement of the image provides"


@pytest.mark.parametrize("image", ["router", "batch"])
def test_image_requirements_are_exact_pins_of_the_lock(image: str) -> None:
    lock = pins(REPO / "constraints.txt")
    wanted = pins(REPO / "serving_images" / image / "requirements.txt")
    assert wanted
    for name, version in wanted.items():
        assert version, f"{image}: {name} is not pinned exactly"
        assert lock.get(name.removesuffix("-gpu")) == version, f"{image}: {name}=={version} differs from the lock"


@pytest.mark.parametrize("image", ["airflow", "mlflow", "router", "batch"])
def test_images_install_under_the_lock(image: str) -> None:
    text = (REPO / "serving_images" / image / "Dockerfile").read_text()
    assert "constraints.txt" in dockerfile_copies(REPO / "serving_images" / image / "Dockerfile"), image
    assert re.search(r"pip install[^\n]*-c [^\s]*constraints\.txt", text), image


def test_celery_workers_listen_on_the_contract_queues(doc: dict[str, Any]) -> None:
    workers = {n: s for n, s in contract.SERVICES.items() if s.queues}
    assert len(workers) == 2 and any(contract.BATCH_QUEUE in s.queues for s in workers.values())
    for name, service in workers.items():
        command = doc["services"][name]["command"]
        assert command[:2] == ["celery", "worker"]
        assert command[command.index("--queues") + 1] == ",".join(service.queues)
    # either worker can take a default task, so a task of a dead worker is retried on the other
    assert all("default" in s.queues for s in workers.values())


def test_the_batch_dag_runs_on_the_queue_of_its_settings() -> None:
    text = (REPO / "dags" / "nightly_batch_inference.py").read_text()
    assert '"queue": SETTINGS.queue' in text
