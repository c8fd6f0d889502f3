"""A real PostgreSQL (Debian's package) started by tests: server binaries from ``/usr/lib/postgresql``.

As root the server runs as the ``postgres`` user (postgres refuses to run as root); ``.ci/run``
installs the package when it is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import free_port


@dataclass(frozen=True)
class Postgres:
    """A running server: superuser URL and the two roles of the audit log."""

    port: int
    bin: Path
    as_user: list[str]
    data: Path | None = None
    opts: str = ""
    root: Path | None = None

    def stop(self) -> None:
        """Stop the server (fast shutdown: clients are disconnected), keeping its data."""
        assert self.data is not None
        subprocess.run([*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
                       check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        """Start the stopped server again on the same port and data."""
        assert self.data is not None and self.root is not None
        subprocess.run([*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", self.opts, "-l",
                        str(self.root / "log"), "-w", "-t", "60", "start"], check=True, capture_output=True,
                       timeout=120)

    def url(self, role: str, db: str) -> str:
        return f"postgresql+psycopg://{role}@127.0.0.1:{self.port}/{db}"

    def psql(self, sql: str, db: str = "postgres", role: str = "postgres") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.as_user, str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", role,
             "-d", db, "-v", "ON_ERROR_STOP=1", "-qAtc", sql],
            capture_output=True, text=True, timeout=60,
        )

    def new_database(self) -> str:
        """Create a fresh database owned by ``audit_owner`` and return its name."""
        name = f"audit_{uuid.uuid4().hex[:10]}"
        res = self.psql(f"CREATE DATABASE {name} OWNER audit_owner")
        assert res.returncode == 0, res.stderr
        return name


def _pg_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not found:
        pytest.fail("PostgreSQL server not installed: apt-get install -y postgresql (.ci/run does this)")
    return found[-1].parent


@contextmanager
def postgres_server(roles: tuple[str, ...]) -> Iterator[Postgres]:
    """Run a throwaway PostgreSQL on a free loopback port with these LOGIN roles (trust auth)."""
    pg_bin = _pg_bin()
    root = Path(tempfile.mkdtemp(prefix="modelgate-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", free_port()
    subprocess.run([*as_user, str(pg_bin / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                    "-E", "UTF8", "--no-sync"], check=True, capture_output=True, timeout=120)
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run([*as_user, str(pg_bin / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "log"),
                    "-w", "-t", "60", "start"], check=True, capture_output=True, timeout=120)
    pg = Postgres(port, pg_bin, as_user, data, opts, root)
    try:
        for role in roles:
            res = pg.psql(f"CREATE ROLE {role} LOGIN")
            assert res.returncode == 0, res.stderr
        yield pg
    finally:
        subprocess.run([*as_user, str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)
