"""Shared fixtures: the real databases, services over each backend, an API client.

PostgreSQL (127.0.0.1:5432, user postgres, database test) is used for real: the session
creates a database of its own, migrates it once, and each test starts from empty tables.
With CI=true an unreachable service fails the run; elsewhere those tests skip, saying why.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from clarion.api.app import create_app
from clarion.config import Settings
from clarion.services.auth import Principal
from clarion.services.container import Services
from clarion.store.db import Database
from clarion.store.migrate import upgrade_sync
from clarion.store.schema import metadata

IN_CI = os.environ.get("CI", "").lower() == "true"
PG_ADMIN_URL = os.environ.get(
    "CLARION_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("CLARION_TEST_REDIS", "redis://127.0.0.1:6379/0")


def service_missing(what: str, why: object) -> None:
    """Fail under CI (a missing service is a broken machine), skip elsewhere."""
    message = f"{what} is not reachable: {why}"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


async def _pg_admin(sql: str) -> None:
    import asyncpg

    dsn = PG_ADMIN_URL.replace("+asyncpg", "")
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session (each worker's own)."""
    name = f"clarion_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        service_missing("PostgreSQL at 127.0.0.1:5432", exc)
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    url = f"{base}/{name}"
    upgrade_sync(url)
    yield url
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (migrating is the slow part)."""
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    upgrade_sync(f"sqlite+aiosqlite:///{path}")
    return path


def _sqlite_url(template: Path, tmp_path: Path) -> str:
    target = tmp_path / "clarion.db"
    target.write_bytes(template.read_bytes())
    return f"sqlite+aiosqlite:///{target}"


async def _truncate(url: str) -> None:
    db = Database(url)
    try:
        async with db.begin() as conn:
            names = ", ".join(t.name for t in metadata.sorted_tables)
            await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    finally:
        await db.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, sqlite_template: Path, tmp_path: Path) -> str:
    """Every test using this runs on both backends."""
    if request.param == "sqlite":
        return _sqlite_url(sqlite_template, tmp_path)
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """The session's PostgreSQL database with every table emptied for this test: a test
    never meets what an earlier one left there (an experiment still running on its type,
    a batching rule), whichever tests ran before it in this worker."""
    asyncio.run(_truncate(pg_database))
    return pg_database


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=db_url,
        secret_key="test-secret-key-" + "x" * 32,
        redis_url=None,
        embedded_worker=False,
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    svc = Services(settings)
    await svc.start()
    try:
        yield svc
    finally:
        await svc.close()


@pytest.fixture
def server() -> Principal:
    return Principal(kind="api_key", api_key_id="test")


@pytest.fixture
async def api_key(services: Services) -> str:
    _id, key = await services.auth.create_api_key("tests")
    return key


@pytest.fixture
async def client(settings: Settings, services: Services) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, services)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://clarion.test") as c:
        yield c


@pytest.fixture
async def authed(client: httpx.AsyncClient, api_key: str) -> httpx.AsyncClient:
    client.headers["Authorization"] = f"Bearer {api_key}"
    return client
