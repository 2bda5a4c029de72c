"""Unread/unseen count cache in front of the database.

The database is the truth; this only saves the ``COUNT(*)`` on hot paths (the bell badge
is asked for on every page view). Hence the rules: a miss is always a valid answer, any
Redis error becomes a miss (logged and counted, never raised), and values live at most
``ttl`` seconds so a lost invalidation heals by itself.

Storage: ``{prefix}:count:{user_id}`` = ``"unread:unseen"`` with a TTL, when Redis is
configured and healthy. While Redis is down the cache answers "miss" (a per-process copy
would go stale on every other node's writes) and remembers which users it failed to
invalidate; when Redis returns those keys are deleted first — or, if too many piled up,
every count key — so a value cached before the outage is not served after it. Without
Redis configured at all a small in-process LRU is used (``local=True``, the one-process
SQLite deployment); pass ``local=False`` for several nodes without Redis.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Iterable

from redis.exceptions import RedisError

from clarion.hub.redis_link import RedisLink

log = logging.getLogger("clarion.hub.counts")

DEFAULT_TTL = 300


class CountCache:
    def __init__(
        self,
        link: RedisLink | None,
        *,
        ttl: int = DEFAULT_TTL,
        local: bool = True,
        local_max: int = 10_000,
        max_pending_invalidations: int = 10_000,
    ) -> None:
        self.link = link
        self.ttl = ttl
        self.local = local and link is None
        self.local_max = local_max
        self.max_pending = max_pending_invalidations
        self._local: OrderedDict[str, tuple[float, int, int]] = OrderedDict()
        self._pending: set[str] = set()
        self._pending_overflow = False
        if link is not None:
            link.on_change(self._on_link_change)

    def _key(self, user_id: str) -> str:
        assert self.link is not None
        return self.link.key("count", user_id)

    def _redis_ready(self) -> bool:
        return self.link is not None and self.link.healthy

    async def get(self, user_id: str) -> tuple[int, int] | None:
        """``(unread, unseen)``, or ``None``: ask the database."""
        if self.link is None:
            return self._local_get(user_id) if self.local else None
        if not self._redis_ready():
            return None
        if self._pending or self._pending_overflow:
            await self.flush_pending()
            if self._pending or self._pending_overflow:
                return None  # not yet cleaned after an outage: values may be stale
        try:
            raw = await self.link.client.get(self._key(user_id))
        except (RedisError, OSError) as exc:
            self.link.report_error("counts", exc)
            return None
        if raw is None:
            return None
        try:
            text = raw.decode() if isinstance(raw, bytes) else str(raw)
            unread, unseen = text.split(":", 1)
            return int(unread), int(unseen)
        except ValueError:
            log.warning("ignoring malformed count for %r: %r", user_id, raw)
            return None

    async def set(self, user_id: str, unread: int, unseen: int) -> None:
        if self.link is None:
            if self.local:
                self._local_set(user_id, unread, unseen)
            return
        if not self._redis_ready():
            return
        try:
            await self.link.client.set(self._key(user_id), f"{unread}:{unseen}", ex=self.ttl)
        except (RedisError, OSError) as exc:
            self.link.report_error("counts", exc)

    async def invalidate(self, user_ids: Iterable[str]) -> None:
        """Forget these users' counts (call after the transaction that changed them)."""
        users = list(dict.fromkeys(user_ids))
        if not users:
            return
        if self.link is None:
            for u in users:
                self._local.pop(u, None)
            return
        if self._redis_ready():
            try:
                await self.link.client.delete(*(self._key(u) for u in users))
                return
            except (RedisError, OSError) as exc:
                self.link.report_error("counts", exc)
        self._remember(users)

    # --- outage bookkeeping -------------------------------------------------------------
    def _remember(self, users: list[str]) -> None:
        if self._pending_overflow:
            return
        self._pending.update(users)
        if len(self._pending) > self.max_pending:
            self._pending.clear()
            self._pending_overflow = True

    async def _on_link_change(self, up: bool) -> None:
        if up:
            await self.flush_pending()

    async def flush_pending(self) -> None:
        """Apply invalidations that failed during an outage; keeps them if Redis fails."""
        if self.link is None or not (self._pending or self._pending_overflow):
            return
        client = self.link.client
        try:
            if self._pending_overflow:
                async for key in client.scan_iter(match=self.link.key("count", "*"), count=500):
                    await client.delete(key)
                self._pending_overflow = False
            pending = list(self._pending)
            for i in range(0, len(pending), 500):
                await client.delete(*(self._key(u) for u in pending[i : i + 500]))
            self._pending.clear()
        except (RedisError, OSError) as exc:
            self.link.report_error("counts", exc)

    # --- in-process (no Redis configured) -----------------------------------------------
    def _local_get(self, user_id: str) -> tuple[int, int] | None:
        entry = self._local.get(user_id)
        if entry is None:
            return None
        expires, unread, unseen = entry
        if expires < time.monotonic():
            del self._local[user_id]
            return None
        self._local.move_to_end(user_id)
        return unread, unseen

    def _local_set(self, user_id: str, unread: int, unseen: int) -> None:
        self._local[user_id] = (time.monotonic() + self.ttl, unread, unseen)
        self._local.move_to_end(user_id)
        while len(self._local) > self.local_max:
            self._local.popitem(last=False)
