"""Redis dies (SIGKILL) and comes back on the same port: every hub component degrades
with a reason, keeps answering, and recovers by itself."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from clarion.hub.broker import Subscription
from clarion.hub.postgres import PostgresTransport
from clarion.hub.ratelimit import RateLimiter
from clarion.hub.redis import RedisBroker
from clarion.hub.redis_link import RedisLink
from clarion.hub.sessions import SessionRegistry
from tests.integration.hub.conftest import RedisProcess

WITHIN = 10.0


async def recv(sub: Subscription, n: int = 1) -> list[bytes]:
    async with asyncio.timeout(WITHIN):
        return [await sub.get() for _ in range(n)]


async def nothing_more(*subs: Subscription) -> None:
    await asyncio.sleep(0.3)
    for sub in subs:
        assert sub.qsize() == 0, f"unexpected extra message on {sub}"


@contextlib.asynccontextmanager
async def started(*items: object) -> AsyncIterator[None]:
    try:
        yield
    finally:
        for item in reversed(items):
            await item.close()  # type: ignore[attr-defined]


@pytest.mark.redis
@pytest.mark.postgres
async def test_redis_outage_degrades_and_recovers(
    redis_process: RedisProcess, pg_dsn: str, tag: str
) -> None:
    prefix = f"clarion-test:{tag}"
    links = [RedisLink(redis_process.url, prefix=prefix, ping_interval=0.2) for _ in range(2)]
    for link in links:
        await link.start()
    # Nodes a, b: Redis with PostgreSQL fallback. Nodes c, d: Redis only (SQLite case).
    a, b = (
        RedisBroker(
            link,
            node_id=f"n{i}",
            fallback=PostgresTransport(pg_dsn, channel=f"clarion_t_{tag}", check_interval=0.5),
            recovery_grace=1.0,
        )
        for i, link in enumerate(links)
    )
    c, d = (
        RedisBroker(link, node_id=f"r{i}", channel=link.key("hub-only"))
        for i, link in enumerate(links)
    )
    limiter = RateLimiter(links[0])
    s1 = SessionRegistry(links[0], "n0", ttl=5, heartbeat=0.5)
    s2 = SessionRegistry(links[1], "n1", ttl=5, heartbeat=0.5)
    for broker in (a, b, c, d):
        await broker.start()
        assert await broker.redis_transport.wait_listening(WITHIN)
    await s1.start()
    await s2.start()

    async with started(*links, a, b, c, d, s1, s2):
        on_a, on_b, on_c, on_d = (
            a.subscribe("ana"),
            b.subscribe("ana"),
            c.subscribe("ana"),
            d.subscribe("ana"),
        )

        # --- healthy -------------------------------------------------------------------
        await a.publish("ana", b"before")
        assert await recv(on_b) == [b"before"] and await recv(on_a) == [b"before"]
        assert a.active_transport == "redis"
        assert (await limiter.hit("api", "k1", "100/minute")).storage == "redis"

        # --- Redis killed ----------------------------------------------------------------
        redis_process.kill()
        for link in links:
            assert await link.wait_unhealthy(WITHIN)
            assert link.reason and "redis unreachable" in link.reason
        assert not a.healthy
        assert a.reason is not None and "postgres" in a.reason

        decision = await limiter.hit("api", "k1", "100/minute")
        assert decision.allowed and decision.storage == "memory"

        await a.publish("ana", b"during-1")
        await b.publish("ana", b"during-2")
        # Two publishers: each node sees its own push first, the other's over PostgreSQL.
        assert sorted(await recv(on_b, 2)) == [b"during-1", b"during-2"]
        assert sorted(await recv(on_a, 2)) == [b"during-1", b"during-2"]
        assert a.active_transport == "postgres"

        await c.publish("ana", b"local-only")  # no fallback: this node only
        assert await recv(on_c) == [b"local-only"]

        await s1.connected("ana")  # recorded locally, synced when Redis returns
        assert await s1.count_for("ana") == 1

        # --- Redis back on the same port -------------------------------------------------
        await redis_process.start()
        for link in links:
            assert await link.wait_healthy(WITHIN)
        for broker in (a, b, c, d):
            assert await broker.redis_transport.wait_listening(WITHIN), broker.reason
        assert a.healthy and a.reason is None

        await a.publish("ana", b"grace")  # both transports during the grace period
        assert await recv(on_b) == [b"grace"]  # once, though it came over both
        assert await recv(on_a) == [b"grace"]
        await c.publish("ana", b"after")
        assert await recv(on_d) == [b"after"]  # pub/sub resubscribed by itself
        assert await recv(on_c) == [b"after"]

        await asyncio.sleep(1.1)  # grace over: Redis only
        await b.publish("ana", b"redis-again")
        assert await recv(on_a) == [b"redis-again"]
        assert b.active_transport == "redis"
        assert await recv(on_b) == [b"redis-again"]

        assert (await limiter.hit("api", "k1", "100/minute")).storage == "redis"
        async with asyncio.timeout(WITHIN):
            while await s2.count_for("ana") != 1:  # noqa: ASYNC110 - polling Redis
                await asyncio.sleep(0.1)

        await nothing_more(on_a, on_b, on_c, on_d)
        assert on_d.qsize() == 0 and not on_d.closed
