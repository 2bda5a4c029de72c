"""Fixtures for the broker contract suite: a "cluster" of broker nodes per backend.

Real Redis (127.0.0.1:6379) and PostgreSQL (127.0.0.1:5432) are used; each test gets its
own Redis channel prefix / NOTIFY channel so parallel runs never see each other's traffic.
A missing service skips with the reason, or fails when ``CI=true``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from clarion.hub.broker import Broker
from clarion.hub.memory import MemoryBroker, MemoryBus
from clarion.hub.postgres import PostgresBroker
from clarion.hub.redis import RedisBroker
from clarion.hub.redis_link import RedisLink

REDIS_URL = os.environ.get("CLARION_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_DSN = os.environ.get("CLARION_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
RUN_ID = uuid.uuid4().hex[:8]


def service_missing(why: str) -> None:
    """Skip with a visible reason, or fail under CI where services must exist."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"required service missing under CI: {why}")
    pytest.skip(why)


class Cluster:
    """Several broker "nodes" of one backend in this process, sharing one bus/channel."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.tag = f"{RUN_ID}_{uuid.uuid4().hex[:8]}"
        self.bus = MemoryBus()
        self.brokers: list[Broker] = []
        self.links: list[RedisLink] = []

    async def node(self, **kw: Any) -> Broker:
        name = f"node{len(self.brokers)}"
        broker: Broker
        if self.backend == "memory":
            broker = MemoryBroker(bus=self.bus, node_id=name, **kw)
            await broker.start()
        elif self.backend == "redis":
            link = RedisLink(REDIS_URL, prefix=f"clarion-test:{self.tag}")
            self.links.append(link)
            await link.start()
            if not link.healthy:
                service_missing(f"Redis at {REDIS_URL} unreachable: {link.reason}")
            broker = RedisBroker(link, node_id=name, **kw)
            await broker.start()
            assert await broker.redis_transport.wait_listening(5.0)
        else:
            broker = PostgresBroker(PG_DSN, node_id=name, channel=f"clarion_t_{self.tag}", **kw)
            await broker.start()
            if not await broker.pg_transport.wait_listening(5.0):
                service_missing(f"PostgreSQL unreachable: {broker.pg_transport.reason}")
        self.brokers.append(broker)
        return broker

    async def close(self) -> None:
        for broker in self.brokers:
            await broker.close()
        for link in self.links:
            await link.close()


async def _postgres_up() -> str | None:
    try:
        conn = await asyncpg.connect(PG_DSN, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"PostgreSQL at {PG_DSN} unreachable: {exc}"
    await conn.close()
    return None


@pytest.fixture(params=["memory", "redis", "postgres"])
async def cluster(request: pytest.FixtureRequest) -> AsyncIterator[Cluster]:
    if request.param == "postgres" and (why := await _postgres_up()):
        service_missing(why)
    c = Cluster(request.param)
    try:
        yield c
    finally:
        await c.close()
