"""Property-based conformance: every operation of our own OpenAPI document, with and
without credentials, and the stateful run following its links (create a user, send,
read, list), against a real server on SQLite and on PostgreSQL. No 5xx, and every
response matches the schema.

Inside ``make test`` the runs are small and derandomized (the same examples every run);
``-m faults`` (``make faults``) selects the deep runs: many more examples, a fresh random
seed each time (Hypothesis prints it with any failure, to replay with
``--hypothesis-seed``).
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis.stateful import Bundle, initialize, multiple
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation.stateful.state_machine import StepInput
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from clarion.api.app import create_app
from clarion.config import Settings
from tests.conftest import PG_ADMIN_URL, _pg_admin, service_missing
from tests.e2e.conftest import Server, clarion_env, start_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One server per backend; PostgreSQL gets a fresh database on the shared server."""
    workdir: Path = tmp_path_factory.mktemp(f"schemathesis-{request.param}")
    extra: dict[str, str] = {}
    database = None
    if request.param == "postgres":
        database = f"clarion_schemathesis_{uuid.uuid4().hex[:8]}"
        try:
            asyncio.run(_pg_admin(f'CREATE DATABASE "{database}"'))
        except Exception as exc:
            service_missing("PostgreSQL at 127.0.0.1:5432", exc)
        extra["CLARION_DATABASE_URL"] = f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{database}"
    server = start_server(workdir, clarion_env(workdir, **extra))
    try:
        yield server
    finally:
        server.stop()
        if database is not None:
            asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))


def _openapi() -> dict[str, Any]:
    # The document the server publishes; building the app opens no connection.
    return create_app(Settings(_env_file=None)).openapi()  # type: ignore[call-arg]


#: Refusals of invalid data: schemathesis' list, plus the two the server itself answers
#: before any route sees the request (a body over the limit, headers over 16 KiB).
REFUSALS = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429, 431, "5XX"]


def _schema(**phases: Any) -> Any:
    config = {
        "phases": phases,
        "checks": {"negative_data_rejection": {"expected-statuses": REFUSALS}},
    }
    return schemathesis.openapi.from_dict(_openapi(), config=SchemathesisConfig.from_dict(config))


#: Inside make test: generated examples only. The coverage phase (a deterministic walk of
#: every boundary and every way to break each parameter: some 200 requests for the send
#: alone) belongs to the deep run.
schema = _schema(coverage={"enabled": False})
deep_schema = _schema()


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]

_COMMON: dict[str, Any] = {
    "deadline": None,
    "suppress_health_check": list(HealthCheck),
    "database": None,  # no example database: what runs is what the settings say
}
#: Inside make test: the same examples every run.
QUICK = settings(max_examples=6, derandomize=True, **_COMMON)
QUICK_UNAUTHENTICATED = settings(max_examples=1, derandomize=True, **_COMMON)
#: make faults: far more, and new ones every run.
DEEP = settings(max_examples=400, print_blob=True, **_COMMON)


def _deep(request: pytest.FixtureRequest) -> None:
    """The deep runs take minutes: only when selected (``-m faults``)."""
    if "faults" not in (request.config.option.markexpr or ""):
        pytest.skip("a deep run: select it with -m faults (make faults)")


def _bounded(case: schemathesis.Case) -> schemathesis.Case:
    """The live analytics stream lasts ``seconds`` (up to an hour) by design: a case that
    would hold it open longer than a second is cut to one, so the run never waits on it."""
    if case.path.endswith("/analytics/live"):
        query = dict(case.query or {})
        seconds = query.get("seconds")
        if seconds is None or (isinstance(seconds, int) and seconds > 1):
            query["seconds"] = 1
            case.query = query
    return case


def _headers(live: Server) -> dict[str, str]:
    return {"Authorization": f"Bearer {live.key}"}


def _auth_for(case: schemathesis.Case, live: Server) -> dict[str, str] | None:
    """The key, unless the case breaks its headers on purpose (a negative case without
    or with a bad ``Authorization``): sending ours would undo the break, and the check
    that invalid data is refused would then blame the server for accepting valid data."""
    meta = case.meta
    header = meta.components.get(ParameterLocation.HEADER) if meta is not None else None
    if header is not None and header.mode.is_negative:
        return None
    return _headers(live)


@schema.parametrize()
@QUICK
def test_conformance_with_api_key(case: schemathesis.Case, live: Server) -> None:
    _bounded(case).call_and_validate(
        base_url=live.url, headers=_auth_for(case, live), checks=CHECKS, timeout=30
    )


# Refusals come before any storage: one backend is enough.
@pytest.mark.parametrize("live", ["sqlite"], indirect=True)
@schema.parametrize()
@QUICK_UNAUTHENTICATED
def test_conformance_without_credentials(case: schemathesis.Case, live: Server) -> None:
    case.call_and_validate(base_url=live.url, checks=CHECKS, timeout=30)


@pytest.mark.faults
@deep_schema.parametrize()
@DEEP
def test_deep_conformance_with_api_key(
    case: schemathesis.Case, live: Server, request: pytest.FixtureRequest
) -> None:
    _deep(request)
    _bounded(case).call_and_validate(
        base_url=live.url, headers=_auth_for(case, live), checks=CHECKS, timeout=30
    )


# --- stateful: following the document's links ---------------------------------------------

STATEFUL_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def run_workflow(live: Server, config: settings) -> None:
    """Scenarios of linked calls (api/openapi_links.py and the links schemathesis infers):
    each step's answer feeds the next request."""

    users = itertools.count(1)

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def seed_step(self, case: schemathesis.Case) -> Any:
            # Recorded as the generated roots are, so that links from it can be followed.
            self.recorder.record_case(case=case)
            return self.step(StepInput.initial(case))

        @initialize(target=Bundle("catch_all"))
        def a_user_and_a_notification(self) -> Any:
            """Each scenario starts from a user and a notification of theirs (random sends
            rarely pass the send's rules): the links take it on from there."""
            user_id = f"flow-{next(users)}"
            profile = schema["/api/v1/users/{user_id}"]["PUT"].Case(
                path_parameters={"user_id": user_id},
                body={"name": "Ana", "email": f"{user_id}@example.com"},
                media_type="application/json",
            )
            send = schema["/api/v1/notifications"]["POST"].Case(
                body={"user_id": user_id, "type": "follow", "title": "Bo followed you"},
                media_type="application/json",
            )
            return multiple(self.seed_step(profile), self.seed_step(send))

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"base_url": live.url, "headers": _headers(live), "timeout": 30}

        def validate_response(
            self,
            response: Any,
            case: schemathesis.Case,
            additional_checks: Any = None,
            **kwargs: Any,
        ) -> None:
            case.validate_response(
                response,
                checks=STATEFUL_CHECKS,
                transport_kwargs=kwargs or None,
                recorder=getattr(self, "recorder", None),
            )

    Workflow.run(settings=config)


@pytest.mark.timeout(600)
def test_stateful_workflow(live: Server) -> None:
    run_workflow(
        live, settings(max_examples=10, stateful_step_count=8, derandomize=True, **_COMMON)
    )


@pytest.mark.faults
@pytest.mark.timeout(3600)
def test_deep_stateful_workflow(live: Server, request: pytest.FixtureRequest) -> None:
    _deep(request)
    run_workflow(live, settings(max_examples=300, stateful_step_count=20, **_COMMON))


def test_published_schema_is_the_tested_one(live: Server) -> None:
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
    # The main flow is linked: a profile to a send, a send to what it wrote.
    send = published["paths"]["/api/v1/notifications"]["post"]["responses"]["202"]
    assert send["links"]["GetSent"]["parameters"] == {
        "path.notification_id": "$response.body#/ids/0"
    }
    profile = published["paths"]["/api/v1/users/{user_id}"]["put"]["responses"]["200"]
    assert profile["links"]["SendToUser"]["requestBody"] == {"user_id": "$response.body#/user_id"}
