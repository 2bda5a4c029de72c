"""The broker contract: push opaque, already-encoded messages to a user's live connections.

A :class:`Subscription` is one live connection's mailbox. It is bounded on purpose: a
client that cannot keep up must not grow the server's memory nor slow the publisher or the
other subscribers, so when its queue is full it is closed with
:attr:`CloseReason.SLOW_CONSUMER` (never a silent drop) and the WebSocket layer closes the
socket with :data:`SLOW_CONSUMER_CLOSE_CODE`; the client reconnects and resumes from its
cursor — the database is the truth, pushes are hints.

Local fan-out lives here, shared by every backend: ``user_id -> {subscriptions}`` and a
plain loop that yields to the event loop every ``yield_every`` deliveries so a big
broadcast does not stall API requests served by the same process.
"""

from __future__ import annotations

import asyncio
import itertools
from abc import ABC, abstractmethod
from collections.abc import Callable, Container, Iterable, Sequence
from enum import StrEnum

from clarion.hub.metrics import HubMetrics, hub_metrics

#: WebSocket close code for "slow consumer: reconnect and resume from your cursor".
SLOW_CONSUMER_CLOSE_CODE = 4008
DEFAULT_QUEUE_SIZE = 1000
# Each delivery wakes a socket writer that runs in the loop iteration after the yield:
# 100 of them are a few milliseconds of writes, which is what an API request running on
# the same process may wait behind.
DEFAULT_YIELD_EVERY = 100


class CloseReason(StrEnum):
    SLOW_CONSUMER = "slow_consumer"
    UNSUBSCRIBED = "unsubscribed"
    BROKER_CLOSED = "broker_closed"


class SubscriptionClosed(Exception):
    """Raised by :meth:`Subscription.get` once the subscription is closed."""

    def __init__(self, reason: CloseReason) -> None:
        super().__init__(f"subscription closed: {reason}")
        self.reason = reason


class Subscription:
    """One connection's bounded mailbox. Not thread-safe; lives on the broker's loop.

    Small on purpose (20,000 idle connections per process): a plain list for the queue
    and one future, created only while a reader waits, instead of a deque and two
    ``asyncio.Event`` objects per connection.
    """

    __slots__ = (
        "_closed_waiters",
        "_items",
        "_listener",
        "_on_overflow",
        "_reason",
        "_waiter",
        "maxsize",
        "sub_id",
        "user_id",
    )

    _ids = itertools.count(1)

    def __init__(
        self,
        user_id: str,
        maxsize: int = DEFAULT_QUEUE_SIZE,
        on_overflow: Callable[[Subscription], None] | None = None,
    ) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.user_id = user_id
        self.maxsize = maxsize
        self.sub_id = next(self._ids)
        self._items: list[bytes] = []
        self._waiter: asyncio.Future[None] | None = None
        self._closed_waiters: list[asyncio.Future[None]] | None = None
        self._listener: Callable[[], None] | None = None
        self._reason: CloseReason | None = None
        self._on_overflow = on_overflow

    @property
    def closed(self) -> bool:
        return self._reason is not None

    @property
    def close_reason(self) -> CloseReason | None:
        return self._reason

    @property
    def overflowed(self) -> bool:
        return self._reason is CloseReason.SLOW_CONSUMER

    def qsize(self) -> int:
        return len(self._items)

    def offer(self, message: bytes) -> bool:
        """Queue without waiting; on a full queue close as slow consumer. False if not queued."""
        if self._reason is not None:
            return False
        if len(self._items) >= self.maxsize:
            self.close(CloseReason.SLOW_CONSUMER)
            if self._on_overflow is not None:
                self._on_overflow(self)
            return False
        self._items.append(message)
        self.wake()
        return True

    def listen(self, listener: Callable[[], None] | None) -> None:
        """Call ``listener()`` (synchronously, on the loop) on every :meth:`wake`: a
        message queued, the subscription closed, or a wake-up from its owner. For an
        owner that starts a writer only when there is something to write, rather than
        keeping a task parked on :meth:`wait` for every idle connection."""
        self._listener = listener

    def wake(self) -> None:
        """Wake whoever waits in :meth:`wait`, and the listener (a writer with other
        reasons to look up: a deadline, its reader gone)."""
        if self._listener is not None:
            self._listener()
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def close(self, reason: CloseReason) -> None:
        """Close once (the first reason wins) and wake the reader; queued items are dropped
        because the client resumes from its cursor anyway."""
        if self._reason is not None:
            return
        self._reason = reason
        self._items.clear()
        self.wake()
        if self._closed_waiters:
            for fut in self._closed_waiters:
                if not fut.done():
                    fut.set_result(None)
            self._closed_waiters = None

    async def wait(self) -> None:
        """Until something is queued, the subscription closes, or :meth:`wake` is called;
        returns at once if one of the first two holds already."""
        if self._items or self._reason is not None:
            return
        waiter = self._waiter
        if waiter is None or waiter.done():
            waiter = self._waiter = asyncio.get_running_loop().create_future()
        await waiter

    async def wait_closed(self) -> CloseReason:
        """Until the subscription closes (for a watcher that does not read)."""
        if self._reason is None:
            fut = asyncio.get_running_loop().create_future()
            if self._closed_waiters is None:
                self._closed_waiters = []
            self._closed_waiters.append(fut)
            await fut
        assert self._reason is not None
        return self._reason

    async def get(self) -> bytes:
        """Next message; raises :class:`SubscriptionClosed` once closed."""
        while True:
            if self._reason is not None:
                raise SubscriptionClosed(self._reason)
            if self._items:
                return self._items.pop(0)
            await self.wait()

    def drain(self) -> list[bytes]:
        """Everything queued right now, so a writer can batch frames into one flush."""
        items = self._items
        if not items:
            return []
        self._items = []
        return items

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self.get()
        except SubscriptionClosed:
            raise StopAsyncIteration from None

    def __repr__(self) -> str:
        state = self._reason or "open"
        return f"<Subscription #{self.sub_id} user={self.user_id!r} {state} q={len(self._items)}>"


class Broker(ABC):
    """Publish to users; subscribe connections. Backends differ only in how messages
    cross to other nodes; every backend delivers to this node's subscribers directly,
    exactly once per subscriber."""

    backend: str = "abstract"

    def __init__(
        self,
        *,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        yield_every: int = DEFAULT_YIELD_EVERY,
        metrics: HubMetrics | None = None,
    ) -> None:
        self.queue_size = queue_size
        self.yield_every = max(1, yield_every)
        self.metrics = metrics or hub_metrics()
        self._subs: dict[str, set[Subscription]] = {}
        # Big fan-outs take turns between their yields: ten concurrent sends to 1,000
        # users each would otherwise wake ten chunks of writers in the same iteration.
        self._turn = asyncio.Lock()

    # --- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:  # noqa: B027 - optional hook, memory needs nothing
        """Connect transports and start listening."""

    async def close(self) -> None:
        """Close every subscription (reason ``broker_closed``); backends also disconnect."""
        for subs in list(self._subs.values()):
            for sub in list(subs):
                sub.close(CloseReason.BROKER_CLOSED)
        self._subs.clear()

    # --- health -------------------------------------------------------------------------
    @property
    def healthy(self) -> bool:
        return True

    @property
    def reason(self) -> str | None:
        """Why the broker is degraded; ``None`` when healthy."""
        return None

    # --- publishing ---------------------------------------------------------------------
    async def publish(self, user_id: str, message: bytes) -> None:
        """Push ``message`` to every connection of ``user_id`` on every node."""
        await self.publish_many((user_id,), message)

    @abstractmethod
    async def publish_many(self, user_ids: Sequence[str], message: bytes) -> None:
        """Push one already-encoded ``message`` to many users (encoded once by the caller).

        Never raises for a transport failure: pushes are hints, the failure shows in
        :attr:`healthy`/:attr:`reason` and metrics.
        """

    async def publish_batch(
        self, messages: Sequence[tuple[str, bytes]], *, cross_node: Container[str] | None = None
    ) -> None:
        """Push a different message to each listed user in one go: ``(user_id, message)``
        pairs, each message encoded once by the caller. This node's subscribers get theirs
        directly; other nodes get ONE transport message for the whole batch instead of one
        per user.

        ``cross_node``: the users connected on other nodes, when the caller knows it (the
        session registry); only their messages travel, and none when it is empty.
        ``None`` sends every message across. Never raises for a transport failure.
        """
        # The default is correct for any backend; relaying backends override it.
        for user_id, message in messages:
            await self.publish(user_id, message)

    # --- subscriptions ------------------------------------------------------------------
    def subscribe(self, user_id: str, *, queue_size: int | None = None) -> Subscription:
        sub = Subscription(user_id, queue_size or self.queue_size, self._overflowed)
        self._subs.setdefault(user_id, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        sub.close(CloseReason.UNSUBSCRIBED)
        self._forget(sub)

    def has_local_subscribers(self, user_id: str) -> bool:
        return user_id in self._subs

    def local_user_ids(self) -> set[str]:
        return set(self._subs)

    def local_subscription_count(self) -> int:
        return sum(len(s) for s in self._subs.values())

    def _forget(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.user_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.user_id]

    def _overflowed(self, sub: Subscription) -> None:
        self.metrics.slow_consumer_disconnects.inc()
        self._forget(sub)

    async def deliver_local(self, user_ids: Iterable[str], message: bytes) -> int:
        """Queue ``message`` to this node's subscribers of ``user_ids``; returns how many.

        A plain loop (no gather): ``offer`` never blocks. Every ``yield_every`` deliveries
        it yields to the loop, one big fan-out at a time; it iterates over snapshots so
        (un)subscribes meanwhile are safe.
        """
        return await self.deliver_local_batch((u, message) for u in user_ids)

    async def deliver_local_batch(self, messages: Iterable[tuple[str, bytes]]) -> int:
        """Queue each ``(user_id, message)`` to this node's subscribers of that user only;
        users with no subscriber here cost one dict lookup. Same loop and yielding as
        :meth:`deliver_local`."""
        delivered = 0
        budget = self.yield_every
        subs_of = self._subs.get
        turn = False
        try:
            for user_id, message in messages:
                subs = subs_of(user_id)
                if not subs:
                    continue
                if len(subs) == 1:  # the common case, without a snapshot
                    if next(iter(subs)).offer(message):
                        delivered += 1
                    budget -= 1
                else:
                    for sub in tuple(subs):
                        if sub.offer(message):
                            delivered += 1
                        budget -= 1
                if budget <= 0:
                    budget = self.yield_every
                    if not turn:  # a small fan-out never waits for a big one
                        await self._turn.acquire()
                        turn = True
                    await asyncio.sleep(0)
        finally:
            if turn:
                self._turn.release()
        if delivered:
            self.metrics.messages_pushed.inc(delivered)
        return delivered


def unique(user_ids: Sequence[str]) -> list[str]:
    """User ids without repeats, order kept: one user listed twice gets one push."""
    return list(dict.fromkeys(user_ids))
