"""Fixtures of the registry tests: a real PostgreSQL for the audit log, and per-test secrets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support_postgres import Postgres, postgres_server


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL server with roles ``audit_owner`` (owns the table) and ``audit_writer``."""
    with postgres_server(("audit_owner", "audit_writer")) as pg:
        yield pg


@pytest.fixture(autouse=True)
def _own_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own audit key and head anchors."""
    d = tmp_path / "secrets"
    monkeypatch.setenv("MODELGATE_SECRETS_DIR", str(d))
    return d
