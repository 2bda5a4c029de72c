"""Who is connected where: live connection counts per user and per node.

Why: publishers skip users nobody is connected for (no envelope, no fan-out work), and
``/notifications/system/status`` shows connections per node.

Redis layout (one writer per node hash, so no cross-node races):

- ``{prefix}:sess:node:{node_id}`` hash ``user_id -> live connections on that node``,
  with a TTL of ``ttl`` seconds refreshed by this node's heartbeat. A dead node stops
  refreshing and its whole hash expires: its users stop counting as connected.
- ``{prefix}:sess:nodes`` sorted set ``node_id -> last heartbeat (unix time)``; readers
  ignore nodes silent for more than ``ttl`` and the heartbeat prunes them.

This node's own counts are always kept in process and are the source of truth for its
hash: when a write fails, or Redis lost the hash (restart), the next heartbeat rewrites it
whole. While Redis is down, answers cover this node only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import Any

from redis.exceptions import RedisError

from clarion.hub.redis_link import RedisLink

log = logging.getLogger("clarion.hub.sessions")


class SessionRegistry:
    def __init__(
        self,
        link: RedisLink | None,
        node_id: str,
        *,
        ttl: float = 30.0,
        heartbeat: float = 10.0,
    ) -> None:
        self.link = link
        self.node_id = node_id
        self.ttl = ttl
        self.heartbeat = heartbeat
        self._local: dict[str, int] = {}
        self._resync = True
        self._task: asyncio.Task[None] | None = None
        # After Redis comes back (maybe restarted empty) every node rewrites its hash at
        # its next beat; until then an absent user may be connected somewhere.
        self._unsure_until = float("-inf")
        # Only an "up" after a "down" is Redis returning; the first is this node starting.
        self._was_down = False
        if link is not None:
            self._node_key = link.key("sess", "node", node_id)
            self._nodes_key = link.key("sess", "nodes")
            link.on_change(self._on_link_change)

    # --- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        if self.link is not None:
            await self.beat()
            self._task = asyncio.create_task(self._beat_loop(), name="clarion-sessions")

    async def close(self) -> None:
        """Stop heartbeats and remove this node's entries (a clean shutdown)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.link is not None and self.link.healthy:
            try:
                await self.link.client.delete(self._node_key)
                await self.link.client.zrem(self._nodes_key, self.node_id)
            except (RedisError, OSError) as exc:
                self.link.report_error("sessions", exc)

    # --- this node's connections --------------------------------------------------------
    async def connected(self, user_id: str) -> None:
        n = self._local.get(user_id, 0) + 1
        self._local[user_id] = n
        await self._write(user_id, n)

    async def disconnected(self, user_id: str) -> None:
        n = self._local.get(user_id, 0) - 1
        if n <= 0:
            self._local.pop(user_id, None)
            n = 0
        else:
            self._local[user_id] = n
        await self._write(user_id, n)

    def local_count(self, user_id: str | None = None) -> int:
        """Connections on this node: of one user, or in total."""
        if user_id is not None:
            return self._local.get(user_id, 0)
        return sum(self._local.values())

    async def _write(self, user_id: str, n: int) -> None:
        if not self._usable():
            self._resync = True
            return
        assert self.link is not None
        try:
            async with self.link.client.pipeline(transaction=False) as pipe:
                if n > 0:
                    pipe.hset(self._node_key, user_id, n)
                else:
                    pipe.hdel(self._node_key, user_id)
                pipe.expire(self._node_key, int(self.ttl))
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._resync = True
            self.link.report_error("sessions", exc)

    # --- questions about every node -----------------------------------------------------
    async def count_for(self, user_id: str) -> int:
        """Live connections of ``user_id`` across live nodes."""
        counts = await self._gather_fields([user_id])
        return counts.get(user_id, 0)

    async def any_connected(self, user_ids: Iterable[str]) -> set[str]:
        """The subset of ``user_ids`` with at least one live connection somewhere; pass
        the result to ``publish_many`` to skip users nobody would receive a push for."""
        users = list(dict.fromkeys(user_ids))
        counts = await self._gather_fields(users)
        return {u for u in users if counts.get(u, 0) > 0}

    async def connected_elsewhere(self, user_ids: Iterable[str]) -> set[str] | None:
        """The subset of ``user_ids`` with a live connection on ANOTHER node, or ``None``
        when that cannot be known (Redis down or failing): a publisher then sends to
        every node. Also ``None`` for a heartbeat after Redis came back, while the other
        nodes may not have rewritten their hashes yet. This node's own subscribers are the
        broker's to know."""
        users = list(dict.fromkeys(user_ids))
        if not self._usable() or time.monotonic() < self._unsure_until:
            return None
        if not users:
            return set()
        rows = await self._elsewhere(users)
        if rows is None:
            return None
        found: set[str] = set()
        for values in rows:
            found.update(
                u for u, v in zip(users, values, strict=True) if v is not None and int(v) > 0
            )
        return found

    async def per_node(self) -> dict[str, int]:
        """Connections per live node, for the status page."""
        if not self._usable():
            return {self.node_id: self.local_count()}
        assert self.link is not None
        try:
            nodes = await self._live_nodes()
            async with self.link.client.pipeline(transaction=False) as pipe:
                for node in nodes:
                    pipe.hvals(self.link.key("sess", "node", node))
                rows = await pipe.execute()
        except (RedisError, OSError) as exc:
            self.link.report_error("sessions", exc)
            return {self.node_id: self.local_count()}
        result = {node: sum(int(v) for v in vals) for node, vals in zip(nodes, rows, strict=True)}
        result[self.node_id] = self.local_count()  # our own view is always current
        return result

    async def _gather_fields(self, users: list[str]) -> dict[str, int]:
        local = {u: self._local[u] for u in users if u in self._local}
        if not users or not self._usable():
            return local
        rows = await self._elsewhere(users)
        if rows is None:
            return local
        totals = dict(local)
        for values in rows:
            for user, value in zip(users, values, strict=True):
                if value is not None:
                    totals[user] = totals.get(user, 0) + int(value)
        return totals

    async def _elsewhere(self, users: list[str]) -> list[list[Any]] | None:
        """Each other live node's connection counts of ``users`` (one ``HMGET`` per node,
        pipelined), or ``None`` when Redis failed."""
        assert self.link is not None
        try:
            nodes = [n for n in await self._live_nodes() if n != self.node_id]
            if not nodes:
                return []
            async with self.link.client.pipeline(transaction=False) as pipe:
                for node in nodes:
                    pipe.hmget(self.link.key("sess", "node", node), users)
                return list(await pipe.execute())
        except (RedisError, OSError) as exc:
            self.link.report_error("sessions", exc)
            return None

    async def _live_nodes(self) -> list[str]:
        assert self.link is not None
        since = time.time() - self.ttl
        raw = await self.link.client.zrangebyscore(self._nodes_key, since, "+inf")
        return [n.decode() if isinstance(n, bytes) else str(n) for n in raw]

    # --- heartbeat ----------------------------------------------------------------------
    def _usable(self) -> bool:
        return self.link is not None and self.link.healthy

    async def _on_link_change(self, up: bool) -> None:
        if not up:
            self._was_down = True
        else:
            if self._was_down:
                # Back after an outage: Redis may have restarted empty, and the other
                # nodes rewrite their hashes only as they notice.
                self._unsure_until = time.monotonic() + self.heartbeat + 2.0
                self._was_down = False
            self._resync = True  # Redis may have restarted empty
            await self.beat()

    async def beat(self) -> None:
        """Refresh this node's TTL; rewrite its hash when it may be out of date."""
        if not self._usable():
            self._resync = True
            return
        assert self.link is not None
        now = time.time()
        try:
            async with self.link.client.pipeline(transaction=True) as pipe:
                if self._resync:
                    pipe.delete(self._node_key)
                    if self._local:
                        fields: dict[Any, Any] = dict(self._local)
                        pipe.hset(self._node_key, mapping=fields)
                pipe.expire(self._node_key, int(self.ttl))
                pipe.zadd(self._nodes_key, {self.node_id: now})
                pipe.zremrangebyscore(self._nodes_key, "-inf", now - 3 * self.ttl)
                pipe.expire(self._nodes_key, int(3 * self.ttl))
                results = await pipe.execute()
            expired = not self._resync and bool(self._local) and not results[0]
            self._resync = expired  # EXPIRE on a missing key: Redis lost it, rewrite next
            if expired:
                await self.beat()
        except (RedisError, OSError) as exc:
            self._resync = True
            self.link.report_error("sessions", exc)

    async def _beat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            await self.beat()
