"""The local stack's secrets are created 0600, complete, once: concurrent callers agree on one value."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest

from modelgate_dev.stack import _secret


def test_secret_is_private_non_empty_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "jwt-secret"
    first = _secret(path)
    assert len(first) >= 24
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert _secret(path) == first
    assert path.read_text() == first
    assert [p.name for p in path.parent.iterdir()] == ["jwt-secret"], "no temporary file is left behind"


def test_concurrent_callers_get_the_same_non_empty_secret(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "router-admin-token"
    barrier = threading.Barrier(16)
    results: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def call() -> None:
        try:
            barrier.wait(timeout=30)
            value = _secret(path)
        except BaseException as e:
            with lock:
                errors.append(e)
            return
        with lock:
            results.append(value)

    threads = [threading.Thread(target=call) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert len(results) == 16
    assert results[0] != ""
    assert set(results) == {path.read_text().strip()}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_existing_empty_secret_file_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "api-secret-key"
    path.parent.mkdir()
    path.write_text("")
    with pytest.raises(RuntimeError, match="api-secret-key is empty"):
        _secret(path)
