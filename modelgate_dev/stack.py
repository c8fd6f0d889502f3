"""The embedded local stack: ``python -m modelgate_dev.stack up|down|status`` (``make up`` / ``make down``).

Runs, on loopback, an MLflow server (SQLite + local artifacts) and Airflow 3 (api-server, scheduler,
dag-processor, triggerer; SQLite metadata, LocalExecutor, SimpleAuthManager) under honcho with the
repo's Procfile. All state lives in ``MODELGATE_HOME`` (default ``.local/``). The admin password
and the JWT/API secrets are generated on first start and kept there, never in the repo.

MLflow runs its basic-auth app: passwords of ``admin``, ``airflow``, ``router`` and ``batch`` are
generated into ``<home>/secrets/mlflow-<user>-password``; each process reads only its own (the
Procfile lines read the files; the Airflow connection names the file, not the password).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class StackConfig:
    """Where the stack keeps its state and which loopback ports it uses."""

    home: Path
    mlflow_port: int
    airflow_port: int
    router_port: int
    router_replicas: int = 1

    @classmethod
    def from_env(cls) -> StackConfig:
        """Read ``MODELGATE_HOME`` and ``MODELGATE_{MLFLOW,AIRFLOW,ROUTER}_PORT``."""
        from modelgate_dev.settings import get_dev_settings

        s = get_dev_settings()
        return cls(
            home=s.home.resolve(),
            mlflow_port=s.mlflow_port,
            airflow_port=s.airflow_port,
            router_port=s.router_port,
            router_replicas=s.router_replicas,
        )

    @property
    def pidfile(self) -> Path:
        return self.home / "stack.pid"

    @property
    def airflow_url(self) -> str:
        return f"http://127.0.0.1:{self.airflow_port}"

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    @property
    def router_ports(self) -> list[int]:
        """The router replicas' ports: ``router_port``, +1, +2, ..."""
        return [self.router_port + i for i in range(self.router_replicas)]

    @property
    def router_urls(self) -> list[str]:
        """The router replicas' base URLs, replica 0 first."""
        return [f"http://127.0.0.1:{port}" for port in self.router_ports]

    @property
    def procfile(self) -> Path:
        """The Procfile ``up`` writes: the repo's, with one ``router<i>`` line per replica."""
        return self.home / "Procfile"


def _secret(path: Path) -> str:
    """Return the secret kept in ``path``, generating it on first use.

    The file is written complete under a private name (0600 from its first byte) and then linked
    into place, so a concurrent caller never reads it empty or partial; when two callers race, the
    first link wins and both return its value.

    Raises:
        RuntimeError: the file exists but is empty (written by something else; delete it).
    """
    from include.registry.audit_anchor import write_secret_file

    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        write_secret_file(path, secrets.token_urlsafe(24).encode())
    value = path.read_text().strip()
    if not value:
        raise RuntimeError(f"secret file {path} is empty: delete it so that a new secret is generated")
    return value


def admin_password(cfg: StackConfig) -> str:
    """Return the local stack's Airflow admin password (generated once, kept under home)."""
    return _secret(cfg.home / "secrets" / "airflow-admin-password")


def router_token(cfg: StackConfig) -> str:
    """Return the local router's admin token (generated once, kept under home)."""
    return _secret(cfg.home / "secrets" / "router-admin-token")


def router_connection(cfg: StackConfig) -> str:
    """Return the ``modelgate_router`` Airflow connection as a URI: replica 0, the token, every replica.

    The connection's extra ``{"replicas": [...]}`` lists every replica's base URL; the gates wait for
    all of them to serve a change (:mod:`include.routing.replicas`).
    """
    extra = urllib.parse.quote(json.dumps({"replicas": cfg.router_urls}), safe="")
    return f"http://admin:{router_token(cfg)}@127.0.0.1:{cfg.router_port}?__extra__={extra}"


def write_procfile(cfg: StackConfig) -> Path:
    """Write the stack's Procfile: the repo's, its ``router`` line repeated once per replica.

    Replica ``i`` listens on ``router_port + i``; all replicas follow the same routes store
    (``ROUTER_STORE_URL``) and write events under the same root (file names carry the process id).

    Returns:
        The written file.

    Raises:
        RuntimeError: the repo's Procfile has no ``router:`` line.
    """
    lines = (REPO / "Procfile").read_text().splitlines()
    router = [line for line in lines if line.startswith("router:")]
    if len(router) != 1:
        raise RuntimeError(f"{REPO / 'Procfile'} must have exactly one 'router:' line, found {len(router)}")
    command = router[0].removeprefix("router:").strip()
    out: list[str] = []
    for line in lines:
        if line is router[0]:
            for i, port in enumerate(cfg.router_ports):
                out.append(f"router{i}: " + command.replace("$MODELGATE_ROUTER_PORT", str(port)))
        else:
            out.append(line)
    if production(cfg):
        from modelgate_dev.production.profile import procfile

        out = procfile(cfg, out)
    cfg.home.mkdir(parents=True, exist_ok=True)
    tmp = cfg.procfile.with_suffix(".tmp")
    tmp.write_text("\n".join(out) + "\n")
    tmp.replace(cfg.procfile)
    return cfg.procfile


def mlflow_auth_config(cfg: StackConfig) -> Path:
    """Write the MLflow basic-auth app's configuration and the MLflow passwords; return the config path."""
    from include.registry.credentials import ROLES, ensure_password
    from include.registry.mlflow_users import server_env, write_auth_config

    secrets_dir = cfg.home / "secrets"
    for user in ROLES:
        ensure_password(secrets_dir, user)
    config = write_auth_config(cfg.home / "mlflow-auth.ini", cfg.home / "mlflow-auth.db")
    server_env(secrets_dir, config)  # generates the Flask secret key the Procfile line reads
    return config


def stack_env(cfg: StackConfig) -> dict[str, str]:
    """Return the environment every process of the stack runs with (no password in it: files are named)."""
    from include.registry.mlflow_users import SERVER_ENV

    airflow_home = cfg.home / "airflow"
    airflow_home.mkdir(parents=True, exist_ok=True)
    passwords = airflow_home / "passwords.json"
    passwords.write_text(json.dumps({"admin": admin_password(cfg)}))
    passwords.chmod(0o600)
    venv_bin = str(Path(sys.executable).parent)
    from include.config import Settings

    store_url = Settings(home=cfg.home).resolved_audit_db_url()
    env = {
        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(REPO),
        "MODELGATE_HOME": str(cfg.home),
        "MODELGATE_SECRETS_DIR": str(cfg.home / "secrets"),
        "MODELGATE_MLFLOW_PORT": str(cfg.mlflow_port),
        "MODELGATE_AIRFLOW_PORT": str(cfg.airflow_port),
        "MODELGATE_ROUTER_PORT": str(cfg.router_port),
        "MODELGATE_ROUTER_REPLICAS": str(cfg.router_replicas),
        # every replica follows one routes store: the audit database (route change + audit record in one
        # transaction)
        "ROUTER_STORE_URL": store_url,
        "MODELGATE_TRACKING_URI": cfg.mlflow_url,
        "MLFLOW_TRACKING_URI": cfg.mlflow_url,
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{cfg.airflow_url}/execution/",
        "AIRFLOW__API__BASE_URL": cfg.airflow_url,
        "AIRFLOW__API__SECRET_KEY": _secret(cfg.home / "secrets" / "api-secret-key"),
        "AIRFLOW__API_AUTH__JWT_SECRET": _secret(cfg.home / "secrets" / "jwt-secret"),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
        # the airflow identity: login + the file holding its password (plugins/mlflow_hook.py)
        "AIRFLOW_CONN_MODELGATE_MLFLOW": json.dumps(
            {
                "conn_type": "http",
                "host": "127.0.0.1",
                "port": cfg.mlflow_port,
                "login": "airflow",
                "extra": {"password_file": str(cfg.home / "secrets" / "mlflow-airflow-password")},
            }
        ),
        "MLFLOW_AUTH_CONFIG_PATH": str(mlflow_auth_config(cfg)),
        **SERVER_ENV,
        "AIRFLOW_CONN_MODELGATE_ROUTER": router_connection(cfg),
        "ROUTER_ADMIN_TOKEN": router_token(cfg),
        "MODELGATE_ROUTER_URL": f"http://127.0.0.1:{cfg.router_port}",
        "NO_PROXY": "127.0.0.1,localhost",
        # the canary policy every canary_promotion run of this stack uses unless its conf names one
        # (make demo sets policies/canary_demo.yaml: short bakes); empty: the per-model lookup
        "MODELGATE_CANARY_POLICY": os.environ.get("MODELGATE_CANARY_POLICY", ""),
    }
    if production(cfg):
        from modelgate_dev.production.profile import stack_env_overrides

        env.update(stack_env_overrides(cfg))
    return env


def production(cfg: StackConfig) -> bool:
    """Whether ``MODELGATE_PROFILE=production`` selects the production topology (modelgate_dev/production)."""
    from modelgate_dev.settings import get_dev_settings

    return get_dev_settings().profile == "production"


def settings_file(cfg: StackConfig) -> Path:
    """Where ``up`` records the settings the running stack was started with."""
    return cfg.home / "stack-settings.json"


def started_with(cfg: StackConfig) -> dict[str, str]:
    """Return the settings the running stack was started with (empty when unknown)."""
    try:
        return dict(json.loads(settings_file(cfg).read_text()))
    except (FileNotFoundError, ValueError):
        return {}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_pid(cfg: StackConfig) -> int | None:
    """Return the pid of the stack's honcho process if it is running."""
    try:
        pid = int(cfg.pidfile.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _pid_alive(pid) else None


def _port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _get(url: str, timeout: float = 3.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - loopback http URLs built here
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, b""
    except (urllib.error.URLError, OSError):
        return 0, b""


def healthy(cfg: StackConfig) -> dict[str, bool]:
    """Return which parts of the stack answer their health checks."""
    ml, _ = _get(f"{cfg.mlflow_url}/health")
    st, body = _get(f"{cfg.airflow_url}/api/v2/monitor/health")
    scheduler = False
    if st == 200:
        try:
            scheduler = json.loads(body)["scheduler"]["status"] == "healthy"
        except (KeyError, ValueError):
            scheduler = False
    routers = {
        f"router{i}" if cfg.router_replicas > 1 else "router": _get(f"{url}/v2/health/live")[0] == 200
        for i, url in enumerate(cfg.router_urls)
    }
    state = {"mlflow": ml == 200, "airflow-api": st == 200, "scheduler": scheduler, **routers}
    if production(cfg):
        from modelgate_dev.production.probe import health

        state.update(health(cfg))
    return state


def up(cfg: StackConfig, timeout: float = 240.0) -> int:
    """Start the stack unless it is already running, and wait until it is healthy."""
    if running_pid(cfg) is not None:
        state = healthy(cfg)
        if all(state.values()):
            print(f"stack already up (pid {running_pid(cfg)})")
            _print_access(cfg)
            return 0
        print(f"stack running (pid {running_pid(cfg)}) but not healthy yet: {state}; waiting")
        return _wait(cfg, timeout)
    for name, port in (
        ("MLflow", cfg.mlflow_port),
        ("Airflow", cfg.airflow_port),
        *(("Router", port) for port in cfg.router_ports),
    ):
        if _port_taken(port):
            print(
                f"error: port {port} for {name} is already in use on 127.0.0.1; stop what uses it or set "
                f"MODELGATE_{name.upper()}_PORT",
                file=sys.stderr,
            )
            return 1
    cfg.home.mkdir(parents=True, exist_ok=True)
    if production(cfg):
        from modelgate_dev.production.profile import prepare
        from modelgate_dev.production.services import ServiceError

        print("production profile: PostgreSQL, roles and databases ...")
        try:
            prepare(cfg)
        except ServiceError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    env = {**os.environ, **stack_env(cfg)}
    print("migrating the Airflow metadata database ...")
    res = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        env=env,
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        print(f"error: airflow db migrate failed:\n{res.stderr[-2000:]}", file=sys.stderr)
        return 1
    procfile = write_procfile(cfg)
    log = open(cfg.home / "stack.log", "ab")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "honcho"), "-f", str(procfile), "-d", str(REPO), "start"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    cfg.pidfile.write_text(str(proc.pid))
    if production(cfg):
        from modelgate_dev.production.workers import start_workers

        start_workers(cfg, env)
    settings_file(cfg).write_text(json.dumps({"MODELGATE_CANARY_POLICY": env["MODELGATE_CANARY_POLICY"]}))
    return _wait(cfg, timeout)


def _wait(cfg: StackConfig, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    state: dict[str, bool] = {}
    while time.monotonic() < deadline:
        if running_pid(cfg) is None:
            print(f"error: the stack exited during start; see {cfg.home / 'stack.log'}", file=sys.stderr)
            return 1
        state = healthy(cfg)
        if all(state.values()):
            _ensure_mlflow_users(cfg)
            _print_access(cfg)
            return 0
        time.sleep(1.0)
    down(cfg)
    missing = [k for k, ok in state.items() if not ok]
    print(
        f"error: {', '.join(missing)} did not become healthy in {timeout:.0f}s; see {cfg.home / 'stack.log'}",
        file=sys.stderr,
    )
    return 1


def _ensure_mlflow_users(cfg: StackConfig) -> None:
    """Create the MLflow users of every role (idempotent: passwords reset to the secret files)."""
    from include.registry.mlflow_users import ensure_users

    ensure_users(cfg.mlflow_url, cfg.home / "secrets")


def _print_access(cfg: StackConfig) -> None:
    secrets_dir = cfg.home / "secrets"
    print(f"Airflow UI : {cfg.airflow_url}   user: admin   password in {secrets_dir / 'airflow-admin-password'}")
    print(f"MLflow UI  : {cfg.mlflow_url}   user: admin   password in {secrets_dir / 'mlflow-admin-password'}")
    print(
        f"Router     : {', '.join(cfg.router_urls)}   admin token in {cfg.home / 'secrets' / 'router-admin-token'}"
    )
    print(f"state in   : {cfg.home}   (make down to stop)")


def down(cfg: StackConfig, timeout: float = 30.0) -> int:
    """Stop exactly the processes ``up`` started (the honcho process group)."""
    pid = running_pid(cfg)
    if production(cfg):
        from modelgate_dev.production.profile import pg_cluster
        from modelgate_dev.production.workers import stop_workers

        stop_workers(cfg, timeout)
        if pid is not None:
            _stop_group(pid, timeout)
        if pg_cluster(cfg).stop():
            print("PostgreSQL stopped")
    if pid is None:
        cfg.pidfile.unlink(missing_ok=True)
        print("stack is not running")
        return 0
    _stop_group(pid, timeout)
    cfg.pidfile.unlink(missing_ok=True)
    print("stack stopped")
    return 0


def _stop_group(pid: int, timeout: float) -> None:
    """SIGTERM the honcho process group, SIGKILL what is left after ``timeout``."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _group_alive(pid):
        time.sleep(0.3)
    if _group_alive(pid):
        os.killpg(pid, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _without_credentials(value: str) -> str:
    """Replace the password of a ``scheme://user:password@host`` URL with ``***``."""
    return re.sub(r"(://[^/:@\s]+:)[^@/\s]+@", r"\1***@", value)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(prog="python -m modelgate_dev.stack", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "status", "env"])
    parser.add_argument("--timeout", type=float, default=240.0)
    args = parser.parse_args(argv)
    from pydantic import ValidationError

    try:
        cfg = StackConfig.from_env()
    except ValidationError as e:
        problems = "; ".join(f"MODELGATE_{'_'.join(map(str, err['loc'])).upper()}: {err['msg']}" for err in e.errors())
        print(f"error: invalid stack settings: {problems}", file=sys.stderr)
        return 2
    if args.command == "up":
        return up(cfg, args.timeout)
    if args.command == "down":
        return down(cfg)
    if args.command == "env":
        for k, v in stack_env(cfg).items():
            if not any(word in k for word in ("SECRET", "PASSWORD", "TOKEN")):
                print(f"export {k}={_without_credentials(v)!r}")
        return 0
    pid = running_pid(cfg)
    print(json.dumps({"pid": pid, **healthy(cfg)}))
    return 0 if pid else 1


if __name__ == "__main__":
    sys.exit(main())
