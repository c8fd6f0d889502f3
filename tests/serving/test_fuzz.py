"""Schemathesis against /openapi.json: no generated request gets a 5xx."""

from __future__ import annotations

import hypothesis
import schemathesis
from conftest import ADMIN_TOKEN, two_variants
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

PER_OPERATION = 60
PER_SCORING_OPERATION = 150  # the scoring endpoints take most of the budget


def test_generated_requests_against_the_openapi_document_get_no_5xx(router_factory, models):
    r = router_factory(two_variants(models["a"], models["b"], canary_bp=3000))
    schema = schemathesis.openapi.from_url(f"{r.url}/openapi.json")
    calls = 0
    server_errors: list[str] = []
    operations = [op.ok() for op in schema.get_all_operations()]
    assert len(operations) >= 18
    for op in operations:
        # admin operations are fuzzed with a valid token, so PUT bodies reach validation and loading
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"} if op.path.startswith("/admin/") else {}

        @settings(
            max_examples=PER_SCORING_OPERATION
            if op.method.upper() == "POST" and "admin" not in op.path
            else PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
            phases=[hypothesis.Phase.generate],
        )
        @given(case=op.as_strategy())
        def run(case):
            nonlocal calls
            if op.path.startswith("/admin/") and op.method.upper() == "DELETE":
                case.path_parameters = {"name": "not-served"}  # keep the model under test served
            response = case.call(base_url=r.url, headers=headers, timeout=30)
            calls += 1
            if response.status_code >= 500:
                server_errors.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}"
                )
            case.validate_response(response, checks=[not_a_server_error])

        run()
    assert calls >= 1000, calls
    assert server_errors == []
    with r.client() as c:  # and the router still serves
        assert c.post("/invocations", json={"inputs": [[0.1, 0.2, 0.3, 0.4]]}).status_code == 200
