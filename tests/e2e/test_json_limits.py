"""JSON limits through a real ``clarion serve``: a body nested 100,000 levels deep and an
integer of 400 digits are refused at once with a 422, the server keeps serving, and
nothing is stored. Also on PostgreSQL, where such a send used to answer 500."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import PG_ADMIN_URL, _pg_admin, service_missing
from tests.e2e.conftest import Server, clarion_env, start_server

N = "/api/v1/notifications"
DEEP = b"[" * 100_000 + b"]" * 100_000


def _check(server: Server) -> None:
    h = {"Authorization": f"Bearer {server.key}", "Content-Type": "application/json"}
    with httpx.Client(base_url=server.url, headers=h, timeout=30) as c:
        bodies = [
            DEEP,
            b'{"user_id": "ana", "type": "t", "title": "x", "data": {"d": ' + DEEP + b"}}",
            b'{"user_id": "ana", "type": "t", "title": "x", "data": {"n": ' + b"9" * 400 + b"}}",
            b'{"user_ids": ["ana"], "type": "t", "title": "x", "data": {"n": -'
            + b"9" * 400
            + b"}}",
        ]
        for body in bodies:
            for _ in range(2):  # once through the routed path, once the hot one
                start = time.perf_counter()
                r = c.post(N, content=body)
                assert r.status_code == 422, r.text
                assert r.json()["error"]["code"] == "invalid_json_value"
                assert time.perf_counter() - start < 10  # milliseconds unloaded
        r = c.put("/api/v1/users/ana", content=b'{"data": {"n": ' + b"9" * 400 + b"}}")
        assert r.status_code == 422, r.text
        # Still serving, nothing stored.
        r = c.post(N, json={"user_id": "ana", "type": "t", "title": "fine"})
        assert r.status_code == 202, r.text
        items = c.get(N, params={"user_id": "ana"}).json()["items"]
        assert [i["title"] for i in items] == ["fine"]
        assert c.get("/api/v1/users/ana").json()["data"] == {}
    log = server.log.read_text()
    assert "RecursionError" not in log and "Traceback" not in log, log[-2000:]


def test_deep_bodies_and_huge_integers_on_sqlite(served: Server) -> None:
    _check(served)


@pytest.fixture
def pg_served(tmp_path: Path) -> Iterator[Server]:
    name = f"clarion_e2e_json_{time.time_ns()}"
    try:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # a skip outside CI, as for every PostgreSQL test
        service_missing("PostgreSQL at 127.0.0.1:5432", exc)
    url = f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    try:
        server = start_server(tmp_path, clarion_env(tmp_path, CLARION_DATABASE_URL=url))
        try:
            yield server
        finally:
            server.stop()
    finally:  # also when the server never became ready
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_deep_bodies_and_huge_integers_on_postgres(pg_served: Server) -> None:
    _check(pg_served)
