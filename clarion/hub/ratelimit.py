"""Rate limits with the ``limits`` library: shared in Redis, per-process when it is not.

One call, :meth:`RateLimiter.hit`, answers "may this happen now?" and everything an HTTP
``429`` needs (``Retry-After``, ``RateLimit-Limit/Remaining/Reset``). Used per API key by
the API (``settings.rate_limit_api``) and per user per channel by delivery
(``settings.rate_limit_channels``).

Storage follows Redis health: while the shared :class:`RedisLink` is healthy the counters
live in Redis (keys ``{prefix}:rl/...``, shared by every node); while it is down — or a
command fails — the in-memory storage answers, so a limit is always decided, never an
error. During an outage each node counts on its own: the effective limit is up to N times
the configured one on N nodes, and counts restart from zero on each switch. Limits are a
guard, not an accounting system.

Round trips: the API limiter runs on every request, so with the default sliding-window
counter the hit and the window's figures come back from ONE Redis call (``_SLIDING_HIT``,
a Lua script run by its SHA), not ``limits``' two (acquire, then read the window). The
keys and the arithmetic are ``limits``' own, so :meth:`RateLimiter.reset` and the other
strategies (which keep ``limits``' two calls) see the same counters.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.errors import StorageError as LimitsStorageError
from redis.exceptions import RedisError

from clarion.errors import ValidationFailed
from clarion.hub.redis_link import RedisLink

log = logging.getLogger("clarion.hub.ratelimit")

Strategy = Literal["moving-window", "fixed-window", "sliding-window-counter"]
_STRATEGIES: dict[str, Any] = {
    "moving-window": MovingWindowRateLimiter,
    "fixed-window": FixedWindowRateLimiter,
    "sliding-window-counter": SlidingWindowCounterRateLimiter,
}


# limits' acquire_sliding_window.lua and sliding_window.lua in one script: shift the
# window if it has expired, decide, count the hit, and return what the headers need.
# Times are milliseconds. Returns {allowed, previous count, previous TTL, current count,
# current TTL} as seen after the hit.
_SLIDING_HIT = """
local limit = tonumber(ARGV[1])
local expiry = tonumber(ARGV[2]) * 1000
local amount = tonumber(ARGV[3])
local current_ttl = tonumber(redis.call('pttl', KEYS[2]))
if current_ttl > 0 and current_ttl < expiry then
    redis.call('rename', KEYS[2], KEYS[1])
    redis.call('set', KEYS[2], 0, 'PX', current_ttl + expiry)
end
local previous_count = tonumber(redis.call('get', KEYS[1])) or 0
local previous_ttl = tonumber(redis.call('pttl', KEYS[1])) or 0
local current_count = tonumber(redis.call('get', KEYS[2])) or 0
current_ttl = tonumber(redis.call('pttl', KEYS[2])) or 0
if previous_ttl <= 0 then previous_ttl = 0 end
if current_ttl <= 0 then current_ttl = 0 end
local weighted = math.floor(previous_count * previous_ttl / expiry) + current_count
local allowed = 0
if amount <= limit and weighted + amount <= limit then
    allowed = 1
    if redis.call('exists', KEYS[2]) == 1 then
        current_count = redis.call('incrby', KEYS[2], amount)
    else
        redis.call('set', KEYS[2], amount, 'PX', expiry * 2)
        current_count = amount
    end
    current_ttl = tonumber(redis.call('pttl', KEYS[2]))
end
return {allowed, previous_count, previous_ttl, current_count, current_ttl}
"""


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_after: float  # seconds until a hit is allowed again / the window resets
    storage: str = "memory"  # "redis" or "memory": where this decision was counted

    def headers(self) -> dict[str, str]:
        """The response headers (IETF RateLimit draft + ``Retry-After`` when denied)."""
        reset = str(max(0, math.ceil(self.reset_after)))
        h = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": reset,
        }
        if not self.allowed:
            h["Retry-After"] = str(max(1, math.ceil(self.reset_after)))
        return h


@lru_cache(maxsize=256)
def parse_limit(limit: str) -> RateLimitItem:
    """``"5/hour"`` -> a limits item; a bad string is a configuration/validation error."""
    try:
        return parse(limit)
    except ValueError as exc:
        raise ValidationFailed(f"invalid rate limit {limit!r}", {"limit": limit}) from exc


class RateLimiter:
    def __init__(
        self, link: RedisLink | None, *, strategy: Strategy = "sliding-window-counter"
    ) -> None:
        # Sliding-window counters: two counters per key whatever the limit, where a moving
        # window keeps every hit (6,000 entries for "6000/minute") and costs a thread hop
        # per expiry sweep in the in-memory storage.
        self.link = link
        self.strategy = strategy
        cls = _STRATEGIES[strategy]
        self._memory = cls(MemoryStorage())
        self._redis: Any = None
        self._sliding_hit: Any = None
        self._rl_prefix = ""
        if link is not None:
            # Share the link's pool: one Redis client per process.
            storage = RedisStorage(
                "async+" + link.url,
                implementation="redispy",
                key_prefix=link.key("rl"),
                wrap_exceptions=True,
                # limits types its storage options as scalars; a pool is accepted.
                connection_pool=link.client.connection_pool,  # type: ignore[arg-type]
            )
            self._redis = cls(storage)
            if strategy == "sliding-window-counter":
                # register_script runs EVALSHA and loads the script again after a
                # Redis restart (NOSCRIPT), so a flushed script cache costs one EVAL.
                self._sliding_hit = link.client.register_script(_SLIDING_HIT)
                self._rl_prefix = link.key("rl")

    async def hit(self, namespace: str, key: str, limit: str) -> RateDecision:
        """Count one hit of ``key`` in ``namespace`` (e.g. ``"api"``, ``"push"``)."""
        item = parse_limit(limit)
        if self._redis is not None and self.link is not None and self.link.healthy:
            try:
                if self._sliding_hit is not None:
                    return await self._sliding_redis(item, namespace, key)
                return await self._decide(self._redis, item, namespace, key, "redis")
            except (LimitsStorageError, RedisError, OSError) as exc:
                self.link.report_error("ratelimit", exc)
        return await self._decide(self._memory, item, namespace, key, "memory")

    async def reset(self, namespace: str, key: str, limit: str) -> None:
        """Forget the hits of ``key`` (tests, admin tools)."""
        item = parse_limit(limit)
        await self._memory.clear(item, namespace, key)
        if self._redis is not None and self.link is not None and self.link.healthy:
            try:
                await self._redis.clear(item, namespace, key)
            except (LimitsStorageError, RedisError, OSError) as exc:
                self.link.report_error("ratelimit", exc)

    async def _sliding_redis(self, item: RateLimitItem, namespace: str, key: str) -> RateDecision:
        """One EVALSHA: the hit and the window's figures together (see ``_SLIDING_HIT``).
        Keys are the ones ``limits``' Redis storage uses for this item."""
        base = f"{self._rl_prefix}:{{{item.key_for(namespace, key)}}}"
        expiry = item.get_expiry()
        allowed, prev_count, prev_ttl, cur_count, cur_ttl = await self._sliding_hit(
            keys=[f"{base}/-1", base], args=[item.amount, expiry, 1]
        )
        return _sliding_decision(
            item,
            bool(allowed),
            int(prev_count),
            max(0.0, float(prev_ttl)) / 1000,
            int(cur_count),
            max(0.0, float(cur_ttl)) / 1000,
        )

    @staticmethod
    async def _decide(
        limiter: Any, item: RateLimitItem, namespace: str, key: str, storage: str
    ) -> RateDecision:
        allowed = bool(await limiter.hit(item, namespace, key))
        stats = await limiter.get_window_stats(item, namespace, key)
        reset_after = max(0.0, float(stats.reset_time) - time.time())
        return RateDecision(
            allowed=allowed,
            limit=int(item.amount),
            remaining=max(0, int(stats.remaining)),
            reset_after=reset_after,
            storage=storage,
        )


def _sliding_decision(
    item: RateLimitItem,
    allowed: bool,
    prev_count: int,
    prev_ttl: float,
    cur_count: int,
    cur_ttl: float,
) -> RateDecision:
    """``limits``' ``SlidingWindowCounterRateLimiter.get_window_stats`` arithmetic, on the
    figures the script returned (so both storages answer alike)."""
    expiry = item.get_expiry()
    amount = int(item.amount)
    remaining = max(0, amount - math.floor(prev_count * prev_ttl / expiry + cur_count))
    reset_after = 0.0
    if prev_count or cur_count:
        # A remainder of exactly 0 (a window created this millisecond) means a whole
        # period, not "now": limits reads the TTL a call later and never sees it.
        prev_reset = (
            (prev_ttl % (expiry / prev_count) or expiry / prev_count) if prev_count else math.inf
        )
        cur_reset = (cur_ttl % expiry or expiry) if cur_count else math.inf
        reset_after = min(prev_reset, cur_reset)
    return RateDecision(
        allowed=allowed, limit=amount, remaining=remaining, reset_after=reset_after, storage="redis"
    )
