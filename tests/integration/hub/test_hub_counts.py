"""Count cache on real Redis: hits, misses, TTL, and invalidations that failed during an
outage applied when Redis returns."""

from __future__ import annotations

import pytest

from clarion.hub.counts import CountCache
from clarion.hub.redis_link import RedisLink

pytestmark = pytest.mark.redis


async def test_set_get_invalidate(shared_link: RedisLink) -> None:
    cache = CountCache(shared_link)
    assert await cache.get("ana") is None
    await cache.set("ana", 7, 2)
    await cache.set("bob", 1, 1)
    assert await cache.get("ana") == (7, 2)
    assert 0 < await shared_link.client.ttl(shared_link.key("count", "ana")) <= 300
    await cache.invalidate(["ana", "ana", "carl"])
    assert await cache.get("ana") is None
    assert await cache.get("bob") == (1, 1)


async def test_malformed_value_is_a_miss(shared_link: RedisLink) -> None:
    await shared_link.client.set(shared_link.key("count", "ana"), b"garbage")
    assert await CountCache(shared_link).get("ana") is None


async def test_invalidations_missed_while_down_are_applied_on_return(
    shared_link: RedisLink, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = CountCache(shared_link)
    await cache.set("ana", 7, 2)
    monkeypatch.setattr(shared_link, "_healthy", False)  # as the monitor would see it
    await cache.invalidate(["ana"])
    assert await cache.get("ana") is None
    monkeypatch.setattr(shared_link, "_healthy", True)
    assert await cache.get("ana") is None  # pending invalidation applied first
    assert await shared_link.client.exists(shared_link.key("count", "ana")) == 0


async def test_too_many_missed_invalidations_flush_every_count(
    shared_link: RedisLink, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = CountCache(shared_link, max_pending_invalidations=2)
    for user in ("a", "b", "c", "d"):
        await cache.set(user, 1, 1)
    monkeypatch.setattr(shared_link, "_healthy", False)
    await cache.invalidate(["a", "b", "c"])
    monkeypatch.setattr(shared_link, "_healthy", True)
    await cache.flush_pending()
    assert await cache.get("d") is None  # flushed wholesale: safe, merely a miss


async def test_without_redis_a_local_cache_or_nothing() -> None:
    local = CountCache(None)
    await local.set("ana", 1, 0)
    assert await local.get("ana") == (1, 0)
    await local.invalidate(["ana"])
    assert await local.get("ana") is None
    off = CountCache(None, local=False)
    await off.set("ana", 1, 0)
    assert await off.get("ana") is None
