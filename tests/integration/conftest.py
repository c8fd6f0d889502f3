"""Fixtures of the integration tests: a real Airflow api-server for the DAGs' human-in-the-loop steps."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support_hitl import ApiServer, api_server_process


@pytest.fixture(scope="module")
def _api_server_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """A real Airflow api-server on the tests' metadata DB, one per module that asks for it.

    A module that needs it lists it in ``pytestmark`` (``pytest.mark.usefixtures``) so that it starts
    with the module's first test and is up by the time an approval test runs.
    """
    with api_server_process(tmp_path_factory.mktemp("api-server")) as server:
        yield server


@pytest.fixture
def api_server(_api_server_process: ApiServer) -> ApiServer:
    """The module's api-server, ready to answer."""
    return _api_server_process.wait_ready()
