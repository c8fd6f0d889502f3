"""The production profile's system services: Debian packages, its own PostgreSQL cluster, Redis and Prometheus probes.

PostgreSQL runs from Debian's server binaries as a cluster of its own in ``<home>/pg`` (``initdb`` +
``pg_ctl``; as root the server runs as the ``postgres`` user, which PostgreSQL requires), listening on
127.0.0.1 only, password (SCRAM) authentication over TCP. It is started before the rest of the stack
(Airflow's migration needs it) and stopped by the postmaster's pid. Redis and Prometheus run in the
stack's honcho process group like the other services.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PACKAGES: dict[str, str] = {
    "postgresql": "/usr/lib/postgresql/*/bin/pg_ctl",
    "redis-server": "redis-server",
    "prometheus": "prometheus",
}
"""Debian package → the file or command that shows it is installed."""


class ServiceError(RuntimeError):
    """A system service could not be installed, started or configured; the message says which and why."""


def _installed(probe: str) -> bool:
    if probe.startswith("/"):
        return any(Path("/").glob(probe.lstrip("/")))
    return shutil.which(probe) is not None


def missing_packages() -> list[str]:
    """Return the Debian packages of the profile that are not installed."""
    return [name for name, probe in PACKAGES.items() if not _installed(probe)]


def ensure_packages() -> None:
    """Install the missing packages with ``apt-get`` (only when some are missing, as ``.ci/run`` does).

    Raises:
        ServiceError: packages are missing and this process cannot install them (not root) or apt failed.
    """
    need = missing_packages()
    if not need:
        return
    if os.geteuid() != 0:
        raise ServiceError(f"missing Debian packages {need}: run `sudo apt-get install -y {' '.join(need)}`")
    log.info("installing %s from Debian's packages", need)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *need]):
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if res.returncode != 0:
            raise ServiceError(f"{' '.join(cmd)} failed: {res.stderr[-1000:]}")


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    """Return whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def redis_ping(port: int) -> bool:
    """Return whether a Redis server answers ``PING`` on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2.0) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@dataclass(frozen=True)
class PgCluster:
    """The profile's PostgreSQL cluster: data, socket and log under ``root``, on 127.0.0.1:``port``."""

    root: Path
    port: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def bin(self) -> Path:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
        if not found:
            raise ServiceError("PostgreSQL server not installed: apt-get install -y postgresql")
        return found[-1].parent

    def _as_owner(self) -> list[str]:
        return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self._as_owner(), *args], capture_output=True, text=True, timeout=timeout, cwd="/"
        )

    def pid(self) -> int | None:
        """The postmaster's pid (from ``postmaster.pid``) if it is running."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
            os.kill(pid, 0)
        except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
            return None
        return pid

    def init(self, superuser_password: str) -> None:
        """Create the cluster unless it exists (``initdb``: SCRAM over TCP, peer on the private socket)."""
        if (self.data / "PG_VERSION").is_file():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        pwfile = self.root / ".pwfile"
        pwfile.write_text(superuser_password + "\n")
        pwfile.chmod(0o600)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
            if self._run("test", "-r", str(pwfile)).returncode != 0:
                pwfile.unlink(missing_ok=True)
                raise ServiceError(
                    f"the postgres user cannot reach {self.root} (the server runs as postgres): make the "
                    "folders above it traversable (chmod o+x) or set MODELGATE_HOME elsewhere"
                )
        try:
            res = self._run(
                str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-E", "UTF8",
                "--auth-host=scram-sha-256", "--auth-local=peer", f"--pwfile={pwfile}", "--no-sync",
            )  # fmt: skip
        finally:
            pwfile.unlink(missing_ok=True)
        if res.returncode != 0:
            raise ServiceError(f"initdb of {self.data} failed: {res.stderr[-1000:]}")

    def start(self) -> None:
        """Start the server unless it runs (``pg_ctl start``, waits until it accepts connections)."""
        if self.pid() is not None:
            return
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        res = self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", opts, "-l", str(self.root / "server.log"),
            "-w", "-t", "60", "start",
        )  # fmt: skip
        if res.returncode != 0:
            raise ServiceError(f"PostgreSQL did not start: {res.stderr[-500:]}; see {self.root / 'server.log'}")

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the server by its postmaster pid (SIGINT: fast shutdown; SIGQUIT after ``timeout``).

        Returns:
            Whether a server was running.
        """
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pid() is not None:
            time.sleep(0.2)
        if self.pid() is not None:
            os.kill(pid, signal.SIGQUIT)
        return True

    def psql(self, sql: str, db: str = "postgres") -> str:
        """Run SQL as the superuser over the private socket and return its output.

        Raises:
            ServiceError: the statement failed.
        """
        res = self._run(
            str(self.bin / "psql"), "-h", str(self.root), "-p", str(self.port), "-U", "postgres", "-d", db,
            "-v", "ON_ERROR_STOP=1", "-qAtc", sql, timeout=60,
        )  # fmt: skip
        if res.returncode != 0:
            raise ServiceError(f"psql failed: {res.stderr[-500:]}")
        return res.stdout.strip()

    def ensure_role(self, role: str, password: str) -> None:
        """Create a LOGIN role with this password, or set the password of the existing one."""
        exists = self.psql(f"SELECT 1 FROM pg_roles WHERE rolname = '{role}'") == "1"
        verb = "ALTER" if exists else "CREATE"
        self.psql(f"{verb} ROLE {role} LOGIN PASSWORD '{password}'")

    def ensure_database(self, name: str, owner: str) -> None:
        """Create a database owned by ``owner`` unless it exists; only its owner may connect besides superusers."""
        if self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'") != "1":
            self.psql(f"CREATE DATABASE {name} OWNER {owner}")
            self.psql(f"REVOKE CONNECT ON DATABASE {name} FROM PUBLIC")
            self.psql(f"GRANT CONNECT ON DATABASE {name} TO {owner}")
