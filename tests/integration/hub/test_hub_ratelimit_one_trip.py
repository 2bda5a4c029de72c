"""The default (sliding-window counter) limiter on Redis: one round trip per hit, the
same decisions and keys as the ``limits`` library, and the memory fallback when Redis
fails under it."""

from __future__ import annotations

import asyncio

import pytest
from limits.aio.storage import RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from clarion.hub.ratelimit import RateLimiter, parse_limit
from clarion.hub.redis_link import RedisLink
from tests.integration.hub.conftest import RedisProcess

pytestmark = pytest.mark.redis


async def test_decisions_and_keys_match_limits(shared_link: RedisLink) -> None:
    limiter = RateLimiter(shared_link)
    decisions = [await limiter.hit("api", "k", "3/minute") for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert all(d.storage == "redis" and d.limit == 3 for d in decisions)
    assert all(0 < d.reset_after <= 60 for d in decisions)
    headers = decisions[-1].headers()
    assert headers["RateLimit-Remaining"] == "0" and 1 <= int(headers["Retry-After"]) <= 60

    # limits itself, on the same Redis keys, sees the three hits counted by the script
    storage = RedisStorage(
        "async+" + shared_link.url,
        implementation="redispy",
        key_prefix=shared_link.key("rl"),
        connection_pool=shared_link.client.connection_pool,  # type: ignore[arg-type]
    )
    stats = await SlidingWindowCounterRateLimiter(storage).get_window_stats(
        parse_limit("3/minute"), "api", "k"
    )
    assert stats.remaining == 0

    await limiter.reset("api", "k", "3/minute")  # limits' clear removes the script's keys
    assert (await limiter.hit("api", "k", "3/minute")).remaining == 2


async def test_a_hit_is_one_command(redis_process: RedisProcess) -> None:
    """MONITOR lists what clients send; commands a script runs show as ``[0 lua]``."""
    link = RedisLink(redis_process.url, prefix="t", ping_interval=60)
    await link.start()
    watcher = RedisLink(redis_process.url, prefix="w", ping_interval=60)
    await watcher.start()
    try:
        limiter = RateLimiter(link)
        await limiter.hit("api", "warm", "10/minute")  # loads the script once
        seen: list[str] = []
        async with watcher.client.monitor() as monitor:

            async def collect() -> None:
                async for event in monitor.listen():
                    command = str(event.get("command", ""))
                    if command.startswith("ECHO end"):
                        return
                    if event.get("client_type") != "lua":
                        seen.append(command.split(" ", 1)[0].upper())

            collector = asyncio.create_task(collect())
            await asyncio.sleep(0.1)
            for _ in range(5):
                await limiter.hit("api", "k", "10/minute")
            await link.client.echo("end")
            await asyncio.wait_for(collector, 5)
        assert seen == ["EVALSHA"] * 5
    finally:
        await watcher.close()
        await link.close()


async def test_falls_back_to_memory_when_redis_dies(redis_process: RedisProcess) -> None:
    link = RedisLink(redis_process.url, prefix="t", ping_interval=60)  # no ping to notice
    await link.start()
    try:
        limiter = RateLimiter(link)
        assert (await limiter.hit("api", "k", "2/minute")).storage == "redis"
        redis_process.kill()
        # The link still believes Redis is up: the failing script must not raise.
        decisions = [await limiter.hit("api", "k", "2/minute") for _ in range(3)]
        assert [d.storage for d in decisions] == ["memory"] * 3
        assert [d.allowed for d in decisions] == [True, True, False]
        assert "Retry-After" in decisions[-1].headers()
    finally:
        await link.close()
