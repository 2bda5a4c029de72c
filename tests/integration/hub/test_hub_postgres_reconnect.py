"""The PostgreSQL transport re-LISTENs by itself when its connection is killed."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from clarion.hub.postgres import PostgresBroker

pytestmark = pytest.mark.postgres


async def test_listener_reconnects_after_backend_termination(pg_dsn: str, tag: str) -> None:
    channel = f"clarion_t_{tag}"
    a = PostgresBroker(pg_dsn, node_id="a", channel=channel)
    b = PostgresBroker(pg_dsn, node_id="b", channel=channel)
    await a.start()
    await b.start()
    try:
        sub = b.subscribe("ana")
        old_pid = b.pg_transport.listener_pid
        admin = await asyncpg.connect(pg_dsn)
        try:
            await admin.execute("SELECT pg_terminate_backend($1)", old_pid)
        finally:
            await admin.close()
        async with asyncio.timeout(10):
            while b.pg_transport.listener_pid in (None, old_pid):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert b.healthy
        await a.publish("ana", b"after-reconnect")
        async with asyncio.timeout(5):
            assert await sub.get() == b"after-reconnect"
    finally:
        await a.close()
        await b.close()
