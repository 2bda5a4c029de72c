"""Keeping the analytics rollups: a follower folds new events into them exactly once, and
raw events past their retention are deleted in small batches.

Why a follower and not an update in each event's transaction: every send, delivery and
read writes events, and adding to a shared rollup row inside those transactions would
make them all wait on the same hot rows (one per hour and dimension). The follower reads
a page of events after its cursor, adds the page's sums and moves the cursor in ONE
transaction (store/analytics.py says how the cursor stays exact on PostgreSQL), so the
send path pays nothing beyond writing the event, and a crash repeats nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from clarion.domain.rollup import fold
from clarion.services.clock import utcnow
from clarion.store import analytics as store
from clarion.store.db import Database

log = logging.getLogger("clarion.analytics")

#: Events folded per transaction: big enough to amortise the upserts, small enough that
#: a transaction stays short.
PAGE = 5000
#: Least time between two folds while the follower keeps up (the dashboard is at most
#: this much behind); a full page is followed by the next at once.
FOLD_EVERY = 2.0
#: Raw events deleted per transaction, and the least time between two expiry rounds.
EXPIRE_BATCH = 5000
EXPIRE_EVERY = 60.0


class RollupFollower:
    def __init__(self, db: Database, *, retention_days: int, page: int = PAGE) -> None:
        self._db = db
        self.retention = timedelta(days=retention_days)
        self.page = page
        self._next_expiry = 0.0
        self._next_fold = 0.0
        #: Called with each page in its transaction (experiments count outcomes per user).
        self.page_listeners: list[Callable[[AsyncConnection, Sequence[Any]], Awaitable[None]]] = []

    async def step(self) -> int:
        """Fold the next page of events; returns how many (0: caught up, or another
        process holds the cursor)."""
        now = utcnow()
        async with self._db.begin() as conn:
            before = await store.horizon(conn)
            cursor = await store.lock_cursor(conn, now)
            if cursor is None:
                return 0
            page = await store.next_events(conn, cursor, before, self.page)
            if not page:
                return 0
            await store.add_increments(conn, fold(page))
            for listener in self.page_listeners:
                await listener(conn, page)
            last = page[-1]
            await store.save_cursor(conn, int(last["txid"] or 0), int(last["id"]), now)
        return len(page)

    async def catch_up(self, *, within: float = 60.0) -> int:
        """Fold every event written so far (tests, the bench). On PostgreSQL an event
        becomes foldable once every transaction older than its own has ended, anywhere
        on the server: this waits for that, up to ``within`` seconds."""
        done, deadline = 0, time.monotonic() + within
        while time.monotonic() < deadline:
            n = await self.step()
            done += n
            if n:
                continue
            async with self._db.connect() as conn:
                if not await store.unfolded(conn, await store.read_cursor(conn)):
                    break
            await asyncio.sleep(0.05)
        return done

    async def expire(self, now: datetime | None = None, *, force: bool = False) -> int:
        """Delete one batch of raw events past retention, at most once a minute (unless
        ``force``); returns how many. Rollups are not touched."""
        clock = time.monotonic()
        if not force and clock < self._next_expiry:
            return 0
        cut = (now or utcnow()) - self.retention
        async with self._db.begin() as conn:
            n = await store.expire_events(conn, cut, EXPIRE_BATCH)
        # A full batch: more are due, come back next round; else rest a minute.
        self._next_expiry = clock if n == EXPIRE_BATCH else clock + EXPIRE_EVERY
        if n:
            log.info("expired %d raw events older than %s", n, cut.isoformat())
        return n

    async def run_once(self) -> int:
        """One round for the pipeline loop: fold a page (at most once every
        :data:`FOLD_EVERY` seconds unless the last page was full: a page's transaction and
        round trips are paid once for more events), maybe expire a batch."""
        clock = time.monotonic()
        folded = 0
        if clock >= self._next_fold:
            folded = await self.step()
            self._next_fold = clock if folded >= self.page else clock + FOLD_EVERY
        return folded + await self.expire()
