"""Markers and fixtures of the fault suite (tools in tests/faults/harness.py).

Every test collected here is marked ``faults``; a test also marked ``faults_quick`` runs
in the default ``pytest -q`` (``make test``), the others only with ``-m faults``
(``make faults``): pyproject.toml's ``addopts`` selects ``not faults or faults_quick``.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PG_ADMIN_URL, _pg_admin, service_missing
from tests.faults.harness import PrivatePostgres, ProcessSet, postgres_bin

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.faults)


@pytest.fixture
def processes() -> Iterator[ProcessSet]:
    """Every clarion process the test starts; the ones still running are killed by PID."""
    procs = ProcessSet()
    try:
        yield procs
    finally:
        procs.close()


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    """A started PostgreSQL of this test's own with a database ``clarion``; the test may
    kill, stop and restart it. Its data lives under a fresh /tmp directory (pytest's tmp
    directories are private to root, and the server runs as ``postgres`` when we are
    root), removed at teardown."""
    if postgres_bin() is None:
        service_missing("PostgreSQL binaries", "no /usr/lib/postgresql/*/bin")
    root = Path(tempfile.mkdtemp(prefix="clarion-faults-pg-"))
    pg = PrivatePostgres(root)
    try:
        pg.start()
        pg.create_database("clarion")
        yield pg
    finally:
        pg.close()


@pytest.fixture
def shared_pg_database() -> Iterator[str]:
    """A fresh database on the shared PostgreSQL, for tests that kill Clarion but never
    the database server; dropped at teardown."""
    name = f"clarion_faults_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        service_missing("PostgreSQL at 127.0.0.1:5432", exc)
    yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
