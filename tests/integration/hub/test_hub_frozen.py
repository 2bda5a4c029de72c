"""A private Redis frozen with SIGSTOP (alive, connections accepted, nothing answered):
the link flips down once on the first timed-out command, the limiter falls back with
bounded latency, the broker reports the transport it really uses, nothing flaps while
frozen, it recovers once after the thaw, and close() returns in bounded time even while
Redis is frozen."""

from __future__ import annotations

import asyncio
import os
import signal
import time

from clarion.hub.ratelimit import RateLimiter
from clarion.hub.redis import RedisBroker
from clarion.hub.redis_link import RedisLink
from tests.integration.hub.conftest import RedisProcess

TIMEOUT = 0.3
WITHIN = 15.0


async def timed_hit(limiter: RateLimiter) -> tuple[float, str]:
    t0 = time.monotonic()
    decision = await limiter.hit("api", "frozen", "1000/minute")
    return time.monotonic() - t0, decision.storage


async def test_frozen_redis_flips_once_and_back(redis_process: RedisProcess, tag: str) -> None:
    assert redis_process.proc is not None
    pid = redis_process.proc.pid
    link = RedisLink(
        redis_process.url, prefix=f"clarion-test:{tag}", ping_interval=0.2, socket_timeout=TIMEOUT
    )
    await link.start()
    flips: list[bool] = []  # the flips after the start
    link.on_change(flips.append)
    broker = RedisBroker(link, node_id="f0")
    await broker.start()
    limiter = RateLimiter(link)
    frozen = False
    try:
        assert await broker.redis_transport.wait_listening(WITHIN)
        assert (await timed_hit(limiter))[1] == "redis"
        assert broker.active_transport == "redis"

        os.kill(pid, signal.SIGSTOP)
        frozen = True
        first, storage = await timed_hit(limiter)
        assert storage == "memory" and first < 4 * TIMEOUT + 2, first
        assert not link.healthy  # flipped by the failed command, not the next ping
        later = [await timed_hit(limiter) for _ in range(20)]
        assert {s for _, s in later} == {"memory"}
        assert max(t for t, _ in later) < 0.5, later  # Redis is not even tried
        assert broker.active_transport == "local"  # no publish needed to know it
        await asyncio.sleep(3)  # pings keep failing: no flapping
        assert flips == [False] and not link.healthy, flips

        os.kill(pid, signal.SIGCONT)
        frozen = False
        assert await link.wait_healthy(WITHIN)
        assert flips == [False, True], flips
        assert (await timed_hit(limiter))[1] == "redis"
        assert broker.active_transport == "redis"

        os.kill(pid, signal.SIGSTOP)  # frozen again: shutting down must not hang on it
        frozen = True
        t0 = time.monotonic()
        await broker.close()
        await link.close()
        assert time.monotonic() - t0 < 15, time.monotonic() - t0
    finally:
        if frozen:
            os.kill(pid, signal.SIGCONT)
        await broker.close()
        await link.close()
