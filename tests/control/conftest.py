"""Fixtures of the control-plane store tests: a real PostgreSQL, and a store per backend."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support_postgres import Postgres, postgres_server


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL server with roles ``audit_owner`` (owns the tables) and ``audit_writer``."""
    with postgres_server(("audit_owner", "audit_writer")) as pg:
        yield pg


@pytest.fixture(autouse=True)
def _own_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own audit key and head anchors (the store and include.registry share them)."""
    d = tmp_path / "secrets"
    monkeypatch.setenv("MODELGATE_SECRETS_DIR", str(d))
    return d


@dataclass
class Backend:
    """A control-plane database: the URL the store writes with, and its dialect."""

    url: str
    dialect: str


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The same tests on a SQLite file and on a real PostgreSQL (writer role after setup-postgres)."""
    if request.param == "sqlite":
        return Backend(f"sqlite:///{tmp_path / 'control.db'}", "sqlite")
    from include.registry import audit

    pg: Postgres = request.getfixturevalue("postgres")
    db = pg.new_database()
    audit.setup_postgres(pg.url("audit_owner", db), "audit_writer")
    return Backend(pg.url("audit_writer", db), "postgresql")
