"""Live inbox updates: what the hub is told after a commit, and what a connection does.

Frames are JSON, encoded once per message and published as bytes. Every frame starts with
``{"ts":<epoch seconds of the commit>,`` so that the socket writer can observe the
commit-to-write latency by reading a few bytes, without decoding the frame.

Counts: the unread and unseen counts live on the user's row and every write keeps them in
the same transaction (docs/inbox.md), so the counts a frame carries are read after the
commit, from the database; there is no cache to go stale.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from clarion.hub.broker import CloseReason, SubscriptionClosed
from clarion.hub.hub import Hub
from clarion.services.inbox import Counts, InboxService

log = logging.getLogger("clarion.realtime")


# One broker message may carry several frames (a notification and the new counts), so a
# change costs one publish, not two. JSON from orjson never contains a raw newline.
FRAME_SEPARATOR = b"\n"


def split_frames(message: bytes) -> list[bytes]:
    return message.split(FRAME_SEPARATOR) if FRAME_SEPARATOR in message else [message]


def frame(kind: str, ts: float, **fields: Any) -> bytes:
    # "ts" first, always: see the module docstring.
    return orjson.dumps({"ts": ts, "type": kind, **fields})


def frame_ts(data: bytes) -> float | None:
    """The commit time at the head of a frame, read without decoding the frame."""
    if not data.startswith(b'{"ts":'):
        return None
    end = data.find(b",", 6)
    try:
        return float(data[6:end])
    except ValueError:
        return None


def counts_frame(counts: Counts, ts: float | None = None) -> bytes:
    return frame(
        "unread_count",
        ts or time.time(),
        user_id=counts.user_id,
        unread=counts.unread,
        unseen=counts.unseen,
    )


class RealtimeService:
    """An inbox listener that publishes every committed change to the hub."""

    def __init__(self, hub: Hub, inbox: InboxService) -> None:
        self.hub = hub
        self.inbox = inbox

    # --- after commit -------------------------------------------------------------------
    async def notifications_created(self, items: Sequence[dict[str, Any]]) -> None:
        """One hub call per commit, whatever the number of recipients: every reachable
        user's frames (their notifications, then their counts) go out as one batch, each
        user's message encoded once, and only users connected on other nodes travel over
        the transport (none on a single node)."""
        ts = time.time()
        by_user: dict[str, list[dict[str, Any]]] = {}
        for item in items:
            mine = by_user.get(item["user_id"])
            if mine is None:
                by_user[item["user_id"]] = [item]
            else:
                mine.append(item)
        inbox_users = [u for u, its in by_user.items() if "in_app" in its[0]["channels"]]
        if not inbox_users:
            return
        targets, elsewhere = await self._reachable(inbox_users)
        if not targets:
            return
        if len(targets) == 1:  # the common send; the single-user read has a fast path
            counts = {targets[0]: await self.inbox.counts(targets[0])}
        else:
            counts = await self.inbox.counts_many(targets)
        head = b'{"ts":' + orjson.dumps(ts) + b","
        created = head + b'"type":"notification.created","id":'
        counted = head + b'"type":"unread_count","user_id":'
        messages: list[tuple[str, bytes]] = []
        for user in targets:
            # The same bytes as ``frame(...)``/``counts_frame(...)``, without building a
            # merged dict per frame (a send to 1,000 users builds 2,000 frames).
            parts = [
                b'%s%d,"notification":%s}' % (created, item["id"], orjson.dumps(item))
                for item in by_user[user]
            ]
            c = counts[user]
            parts.append(
                b'%s%s,"unread":%d,"unseen":%d}' % (counted, orjson.dumps(user), c.unread, c.unseen)
            )
            messages.append((user, FRAME_SEPARATOR.join(parts)))
        await self.hub.broker.publish_batch(messages, cross_node=elsewhere)

    async def notification_changed(
        self,
        user_id: str,
        change: str,
        notification: dict[str, Any] | None,
        notification_id: int | None,
        counts: Counts,
    ) -> None:
        ts = time.time()
        targets, elsewhere = await self._reachable([user_id])
        if not targets:
            return
        updated = frame(
            "notification.updated",
            ts,
            change=change,
            id=notification_id,
            notification=notification,
        )
        message = FRAME_SEPARATOR.join((updated, counts_frame(counts, ts)))
        await self.hub.broker.publish_batch([(user_id, message)], cross_node=elsewhere)

    async def _reachable(self, users: Sequence[str]) -> tuple[list[str], set[str] | None]:
        """(users worth a push, those of them connected on other nodes or ``None`` when
        unknown). A single process knows its own subscribers; across nodes only the Redis
        session registry sees every node, and without it everyone is published to every
        node and each node drops users it does not hold."""
        broker = self.hub.broker
        local = broker.has_local_subscribers
        if broker.backend == "memory":  # one process: its own subscribers are everyone's
            return [u for u in users if local(u)], None
        link = self.hub.redis
        if link is None or not link.healthy:
            return list(users), None
        elsewhere = await self.hub.sessions.connected_elsewhere(users)
        if elsewhere is None:
            return list(users), None
        return [u for u in users if u in elsewhere or local(u)], elsewhere


# No user id contains "/" (the API refuses it), so this name never meets a user's stream.
WORKER_WAKE_CHANNEL = "/clarion/workers"


class WorkerWake:
    """Wakes delivery workers in every process after a commit that created deliveries.

    The hub carries the wake-up across nodes (Redis or NOTIFY); a worker that misses one
    finds the work at its next poll, so this only shortens the wait."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def notifications_created(self, items: Sequence[dict[str, Any]]) -> None:
        if any(channel != "in_app" for item in items for channel in item["channels"]):
            await self.hub.broker.publish(WORKER_WAKE_CHANNEL, b"wake")

    async def notification_changed(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def listen(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` for every wake-up until cancelled; many queued count as one."""
        while True:
            sub = self.hub.broker.subscribe(WORKER_WAKE_CHANNEL, queue_size=64)
            try:
                while True:
                    await sub.get()
                    sub.drain()
                    wake()
            except SubscriptionClosed as closed:
                if closed.reason is not CloseReason.SLOW_CONSUMER:
                    return
            finally:
                self.hub.broker.unsubscribe(sub)


class LiveStream:
    """One live connection's stream of frames, transport-agnostic (WebSocket or SSE).

    Resume without gap or duplicate: the subscription is opened BEFORE the database is
    asked for what the client missed, so every commit after that moment arrives live;
    a live ``notification.created`` whose id the backlog already carried is dropped.
    """

    __slots__ = ("_backlog_max", "_cursor", "_opened", "_rt", "_sub", "user_id")

    BACKLOG_LIMIT = 5000

    def __init__(self, realtime: RealtimeService, user_id: str, cursor: int | None) -> None:
        self._rt = realtime
        self.user_id = user_id
        self._cursor = cursor
        self._backlog_max = 0
        self._sub = realtime.hub.broker.subscribe(user_id)
        self._opened = False

    async def open(self) -> list[bytes]:
        """Register the connection and return the first frames: the missed notifications
        (oldest first, when a cursor was given) and the current counts."""
        hub = self._rt.hub
        await hub.sessions.connected(self.user_id)
        hub.metrics.live_connections.inc()
        self._opened = True
        frames: list[bytes] = []
        ts = time.time()
        if self._cursor is not None:
            last = self._cursor
            while True:
                items = await self._rt.inbox.since(self.user_id, last, limit=500)
                for item in items:
                    frames.append(
                        frame(
                            "notification.created",
                            ts,
                            id=item["id"],
                            notification=item,
                            replay=True,
                        )
                    )
                    last = item["id"]
                if len(items) < 500:
                    break
                if len(frames) >= self.BACKLOG_LIMIT:
                    # Too much to replay over a socket: the client refetches by REST.
                    frames.append(frame("resync_required", ts, reason="too many missed"))
                    break
            self._backlog_max = last
        frames.append(counts_frame(await self._rt.inbox.counts(self.user_id), ts))
        return frames

    @property
    def closed(self) -> CloseReason | None:
        """Why the hub closed the stream (slow consumer, shutdown), or ``None``."""
        return self._sub.close_reason

    def take(self) -> list[bytes]:
        """The frames queued right now, without waiting (possibly none). Raises
        ``SubscriptionClosed`` once the hub closed the stream."""
        messages = self._sub.drain()
        if not messages:
            reason = self._sub.close_reason
            if reason is not None:
                raise SubscriptionClosed(reason)
            return messages
        if len(messages) == 1 and FRAME_SEPARATOR not in messages[0]:
            batch = messages
        else:
            batch = [f for message in messages for f in split_frames(message)]
        if self._backlog_max:
            batch = [
                f for f in batch if (_created_id(f) or self._backlog_max + 1) > self._backlog_max
            ]
        return batch

    async def wait(self) -> None:
        """Until frames are queued, the stream closes, or :meth:`wake` is called."""
        await self._sub.wait()

    def wake(self) -> None:
        self._sub.wake()

    def listen(self, listener: Callable[[], None] | None) -> None:
        """Have ``listener()`` called when frames are queued or the stream closes (see
        ``Subscription.listen``)."""
        self._sub.listen(listener)

    @property
    def pending(self) -> bool:
        """Frames are queued, or the stream closed: a writer has something to do."""
        return self._sub.qsize() > 0 or self._sub.closed

    async def next_frames(self) -> list[bytes]:
        """Wait for live frames; everything queued comes at once so a writer can flush
        them together. Raises ``SubscriptionClosed`` when the hub closed the stream (slow
        consumer, shutdown)."""
        await self._sub.wait()
        return self.take()

    async def wait_closed(self) -> CloseReason:
        return await self._sub.wait_closed()

    def observe_sent(self, frames: Sequence[bytes]) -> None:
        """Commit-to-write latency, once per commit: the frames of one change share
        their ``ts``, so only a new ``ts`` is observed."""
        now = time.time()
        observe = self._rt.hub.metrics.push_latency.observe
        last = None
        for f in frames:
            ts = frame_ts(f)
            if ts is not None and ts != last:
                observe(max(0.0, now - ts))
                last = ts

    async def close(self) -> None:
        hub = self._rt.hub
        hub.broker.unsubscribe(self._sub)
        if self._opened:
            self._opened = False
            hub.metrics.live_connections.dec()
            await hub.sessions.disconnected(self.user_id)


def _created_id(data: bytes) -> int | None:
    """The id of a ``notification.created`` frame, read from its head (see ``frame``)."""
    head = data[:96]
    if b'"type":"notification.created","id":' not in head:
        return None
    start = head.index(b'"id":') + 5
    end = start
    while end < len(data) and 48 <= data[end] <= 57:
        end += 1
    return int(data[start:end]) if end > start else None
