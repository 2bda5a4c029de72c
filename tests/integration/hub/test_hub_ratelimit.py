"""Rate limits in both storages: N allowed, then denied with a sane reset_after."""

from __future__ import annotations

import pytest

from clarion.errors import ValidationFailed
from clarion.hub.ratelimit import RateLimiter
from clarion.hub.redis_link import RedisLink


async def check_n_then_denied(limiter: RateLimiter, storage: str, key: str) -> None:
    decisions = [await limiter.hit("push", key, "3/minute") for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert all(d.limit == 3 and d.storage == storage for d in decisions)
    denied = decisions[-1]
    assert 0 < denied.reset_after <= 60
    headers = denied.headers()
    assert headers["RateLimit-Limit"] == "3" and headers["RateLimit-Remaining"] == "0"
    assert 1 <= int(headers["Retry-After"]) <= 60
    assert "Retry-After" not in decisions[0].headers()
    # another key, and another namespace, are counted apart
    assert (await limiter.hit("push", key + "-other", "3/minute")).allowed
    assert (await limiter.hit("sms", key, "3/minute")).allowed


@pytest.mark.parametrize("strategy", ["moving-window", "fixed-window", "sliding-window-counter"])
async def test_memory_storage(strategy: str) -> None:
    await check_n_then_denied(RateLimiter(None, strategy=strategy), "memory", "user-1")  # type: ignore[arg-type]


@pytest.mark.redis
@pytest.mark.parametrize("strategy", ["moving-window", "fixed-window"])
async def test_redis_storage_is_shared_between_nodes(shared_link: RedisLink, strategy: str) -> None:
    node1 = RateLimiter(shared_link, strategy=strategy)  # type: ignore[arg-type]
    await check_n_then_denied(node1, "redis", "user-1")
    node2 = RateLimiter(shared_link, strategy=strategy)  # type: ignore[arg-type]
    assert not (await node2.hit("push", "user-1", "3/minute")).allowed  # same counters
    await node2.reset("push", "user-1", "3/minute")
    assert (await node1.hit("push", "user-1", "3/minute")).allowed


async def test_a_bad_limit_string_is_a_validation_error() -> None:
    with pytest.raises(ValidationFailed):
        await RateLimiter(None).hit("api", "k", "lots per fortnight")
