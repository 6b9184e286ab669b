"""Property-based requests generated from the OpenAPI schema (schemathesis), sent with a valid admin
token to the app over a store built from real EVTX: whatever the input, the server never answers 5xx."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.api_support import Soc, build_soc, open_backend, soc_rules


@pytest.fixture(scope="module")
def soc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Soc]:
    backend = open_backend("sqlite", tmp_path_factory.mktemp("schema"), None)
    store = next(backend)
    try:
        yield build_soc(store, soc_rules())
    finally:
        backend.close()


def test_no_input_makes_the_server_fail(soc: Soc) -> None:
    """Every operation of the schema, 25 generated requests each (schemathesis' strategies driven by
    Hypothesis directly: its pytest plugin does not run under this pytest)."""
    api = schemathesis.openapi.from_asgi("/openapi.json", soc.client.app)
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 25
    for operation in operations:

        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None,
                  derandomize=True)  # the same requests on every run: CI stays reproducible
        @given(case=operation.as_strategy())
        def no_server_error(case: schemathesis.Case) -> None:
            response = case.call(headers=soc.admin_headers)
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path} {case.query} {case.body!r} → {response.status_code} "
                f"{response.text[:300]}")

        no_server_error()
