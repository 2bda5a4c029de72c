"""Property-based conformance: every operation of our own OpenAPI document, with and
without credentials, against a real server. No 5xx, and responses match the schema."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from clarion.api.app import create_app
from clarion.config import Settings
from tests.e2e.conftest import Server, clarion_env, start_server


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("schemathesis")
    server = start_server(workdir, clarion_env(workdir))
    yield server
    server.stop()


def _openapi() -> dict[str, Any]:
    # The document the server publishes; building the app opens no connection.
    return create_app(Settings(_env_file=None)).openapi()  # type: ignore[call-arg]


schema = schemathesis.openapi.from_dict(_openapi())


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


_SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))


@schema.parametrize()
@_SETTINGS
def test_conformance_with_api_key(case: schemathesis.Case, live: Server) -> None:
    headers = {"Authorization": f"Bearer {live.key}"}
    case.call_and_validate(base_url=live.url, headers=headers, checks=CHECKS, timeout=10)


@schema.parametrize()
@_SETTINGS
def test_conformance_without_credentials(case: schemathesis.Case, live: Server) -> None:
    case.call_and_validate(base_url=live.url, checks=CHECKS, timeout=10)


def test_published_schema_is_the_tested_one(live: Server) -> None:
    import httpx

    published = httpx.get(f"{live.url}/openapi.json").json()
    assert published == _openapi()
    paths = set(published["paths"])
    for expected in [
        "/api/v1/notifications",
        "/api/v1/notifications/{notification_id}",
        "/api/v1/notifications/unread-count",
        "/api/v1/notifications/read-all",
        "/api/v1/notifications/{notification_id}/read",
        "/api/v1/users/{user_id}",
        "/api/v1/users/{user_id}/token",
        "/healthz",
        "/readyz",
    ]:
        assert expected in paths
