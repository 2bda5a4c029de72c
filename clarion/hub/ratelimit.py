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

    async def hit(self, namespace: str, key: str, limit: str) -> RateDecision:
        """Count one hit of ``key`` in ``namespace`` (e.g. ``"api"``, ``"push"``)."""
        item = parse_limit(limit)
        if self._redis is not None and self.link is not None and self.link.healthy:
            try:
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
