"""Batches: list, flush, drop, and the flush of due batches (docs/batching.md).

A flush folds the batch's items (``domain.folding.fold``) into ONE notification and
writes it with ``SendingService.write`` in the same transaction that marks the batch
``flushed``: with several flushers (each claims with ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, or under SQLite's write lock) a batch flushes exactly once, and a crash
before the commit leaves it open for the next try. Nothing is held in memory.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from clarion.domain.folding import Actor, BatchItem, fold, phrase_for
from clarion.domain.holds import Batch
from clarion.domain.send_command import SendCommand
from clarion.domain.types import HoldStatus
from clarion.errors import ClarionError, Conflict, NotFound
from clarion.services.auth import Principal
from clarion.services.clock import as_utc, utcnow
from clarion.services.send_rows import Written
from clarion.services.sending import SendingService
from clarion.store import batches as store
from clarion.store.db import Database

log = logging.getLogger("clarion.batches")

#: Due batches claimed and folded per transaction by :meth:`BatchService.flush_due`.
FLUSH_PAGE = 200
#: Pages folded at once by :meth:`BatchService.flush_due`.
FLUSH_PAGES = 2


def batch_json(batch: Batch) -> dict[str, Any]:
    return {
        "id": batch.id,
        "key": batch.key,
        "user_id": batch.user_id,
        "type": batch.type,
        "group_key": batch.group_key or None,
        "status": batch.status,
        "rule": batch.rule,
        "item_count": batch.item_count,
        "opened_at": as_utc(batch.opened_at).isoformat(),
        "flush_at": None if batch.flush_at is None else as_utc(batch.flush_at).isoformat(),
        "notification_id": batch.notification_id,
    }


_NEUTRAL = {
    "en": "You have {n} new notifications",
    "pt": "Você tem {n} novas notificações",
    "es": "Tienes {n} notificaciones nuevas",
}
MAX_DIGEST_MESSAGE = 1000


def digest_content(items: list[BatchItem], types: set[str], locale: str) -> dict[str, Any]:
    """What one released channel digest says: the fold ("Ana and 2 others started
    following you") when every item has an actor and one type, else a neutral
    "You have N new notifications" with their titles. Stored as the delivery's
    ``content`` and rendered by ``dispatch.render`` instead of its notification."""
    the_type = next(iter(types)) if len(types) == 1 else None
    folded = fold(items, locale, phrase=None if the_type is None else phrase_for(the_type, locale))
    if the_type is not None and all(i.actor is not None for i in items):
        title, message = folded.title, folded.message
    else:
        language = (locale or "en").replace("_", "-").split("-")[0].lower()
        title = _NEUTRAL.get(language, _NEUTRAL["en"]).format(n=folded.count)
        titles = [i.title for i in sorted(items, key=lambda i: i.created_at, reverse=True)]
        message = "; ".join(titles)
        if len(message) > MAX_DIGEST_MESSAGE:
            message = message[: MAX_DIGEST_MESSAGE - 1] + "…"
    return {
        "title": title,
        "message": message,
        "count": folded.count,
        "actors": [{"id": a.id, "name": a.name} for a in folded.actors],
        "notification_ids": [int(x) for x in folded.notification_ids],
        "first_at": folded.first_at.isoformat(),
        "last_at": folded.last_at.isoformat(),
    }


class BatchService:
    def __init__(self, db: Database, sending: SendingService) -> None:
        self._db = db
        self._sending = sending

    async def list_open(
        self, principal: Principal, user_id: str | None, *, limit: int, cursor: str | None
    ) -> dict[str, Any]:
        if not principal.is_server:
            user_id = principal.scope_user(user_id)
        async with self._db.connect() as conn:
            rows = await store.list_open(conn, user_id=user_id, limit=limit + 1, after=cursor)
        more = len(rows) > limit
        rows = rows[:limit]
        return {
            "items": [batch_json(r) for r in rows],
            "next_cursor": rows[-1].id if more else None,
        }

    async def get(self, principal: Principal, batch_id: str) -> dict[str, Any]:
        """One batch (any status) with its items and, once flushed, the notification they
        were folded into. ``404`` when unknown or another user's (with a user token)."""
        async with self._db.connect() as conn:
            batch = await store.get(conn, batch_id)
            if batch is None or (not principal.is_server and batch.user_id != principal.user_id):
                raise NotFound(f"no batch {batch_id!r}")
            items = await store.items(conn, batch_id)
        # Every item of a flushed batch is folded into its notification.
        flushed = batch.status == HoldStatus.FLUSHED
        return {
            **batch_json(batch),
            "items": [
                {
                    "id": i.id,
                    "title": i.title,
                    "message": i.message,
                    "actor": i.actor,
                    "data": i.data,
                    "created_at": as_utc(i.created_at).isoformat(),
                    "folded_into": batch.notification_id if flushed else None,
                }
                for i in items
            ],
        }

    async def flush(self, batch_id: str) -> dict[str, Any]:
        """Flush one open batch now (``404`` unknown, ``409`` no longer open)."""
        now = utcnow()
        async with self._db.begin() as conn:
            row = await self._open(conn, batch_id)
            written = await self._flush_page(conn, [row], now)
            after = await store.get(conn, batch_id)
        await self._sending.notify(written)
        assert after is not None
        return batch_json(after)

    async def drop(self, batch_id: str) -> None:
        """Discard an open batch and its items."""
        async with self._db.begin() as conn:
            await self._open(conn, batch_id)
            await store.close(conn, batch_id, status=HoldStatus.DROPPED, now=utcnow())

    async def flush_due(
        self, now: datetime | None = None, *, limit: int = FLUSH_PAGE, pages: int = FLUSH_PAGES
    ) -> int:
        """Flush due batches, up to ``limit`` per transaction; returns how many were
        claimed. When a full page shows a backlog, ``pages`` more run at once: one folds
        (CPU here) while another waits on the database, and ``SKIP LOCKED`` gives them
        disjoint batches (SQLite's write lock runs them one after the other)."""
        now = now or utcnow()
        first = await self._flush_due_page(now, limit)
        if first < limit:  # the usual poll: nothing (or little) due, one transaction
            return first
        counts = await asyncio.gather(*(self._flush_due_page(now, limit) for _ in range(pages)))
        return first + sum(counts)

    async def _flush_due_page(self, now: datetime, limit: int) -> int:
        """One page in bulk: one query for all its items, one for the latest items'
        commands, then ``SendingService.write_many`` and one close statement per kind —
        a round trip per table for the page, not per batch."""
        async with self._db.begin() as conn:
            rows = await store.claim_due(conn, now, limit)
            written = await self._flush_page(conn, rows, now)
        await self._sending.notify(written)
        return len(rows)

    async def _flush_page(
        self, conn: AsyncConnection, batches: list[Batch], now: datetime
    ) -> Written:
        items = await store.fold_items(conn, [b.id for b in batches])
        latest = {
            bid: max(its, key=lambda i: (as_utc(i.created_at), i.id)) for bid, its in items.items()
        }
        details = await store.item_details(conn, [i.id for i in latest.values()])
        folded: list[tuple[Batch, SendCommand]] = []
        dropped: list[str] = []
        for batch in batches:
            its = items.get(batch.id)
            if not its:
                dropped.append(batch.id)
                continue
            data, command = details[latest[batch.id].id]
            folded.append((batch, self._folded_command(batch, its, data, command)))
        planner = self._sending.planner
        known = await planner.recipients(batch.user_id for batch, _ in folded)
        jobs = []
        for batch, cmd in folded:
            cmd, content = self._validated(cmd)
            plans = await planner.plan_for(
                known, cmd, [batch.user_id], content, now, allow_hold=False
            )
            jobs.append((cmd, plans))
        outs = await self._sending.write_many(conn, jobs, now)
        closed = [(batch.id, out.ids[0]) for (batch, _), out in zip(folded, outs, strict=True)]
        await store.close_many(conn, closed, dropped, now)
        merged = Written()
        for out in outs:
            merged.ids.extend(out.ids)
            merged.created.extend(out.created)
        if closed:
            log.info("%d batches flushed, %d dropped (empty)", len(closed), len(dropped))
        return merged

    def _folded_command(
        self,
        batch: Batch,
        items: list[store.FoldItem],
        latest_data: dict[str, Any],
        latest_command: dict[str, Any],
    ) -> SendCommand:
        """The send a batch becomes: its items folded ("Ana and 4 others started following
        you") on top of the latest item's command, with the fold's facts in ``data``."""
        locale = batch.locale or "en"
        folded = fold(
            [
                BatchItem(
                    notification_id=str(i.id),
                    title=i.title,
                    message=i.message,
                    created_at=as_utc(i.created_at),
                    actor=None
                    if i.actor_id is None and i.actor_name is None
                    else Actor(i.actor_id, i.actor_name),
                )
                for i in items
            ],
            locale,
            phrase=phrase_for(batch.type, locale),
        )
        base = SendCommand.from_json(latest_command, (batch.user_id,))
        data = {
            **latest_data,
            "batch_id": batch.id,
            "count": folded.count,
            "actors": [{"id": a.id, "name": a.name} for a in folded.actors],
            "batch_item_ids": [int(x) for x in folded.notification_ids],
            "first_at": folded.first_at.isoformat(),
            "last_at": folded.last_at.isoformat(),
        }
        return replace(
            base, title=folded.title, message=folded.message, data=data, template_key=None
        )

    def _validated(self, cmd: SendCommand) -> tuple[SendCommand, dict[str, Any]]:
        try:
            return cmd, self._sending.content_of(cmd)
        except ClarionError:  # e.g. the fold made the message longer than allowed
            cmd = replace(cmd, message=cmd.message[:4000])
            return cmd, self._sending.content_of(cmd)

    async def next_due(self) -> datetime | None:
        async with self._db.connect() as conn:
            value = await store.next_due(conn)
        return None if value is None else as_utc(value)

    async def _open(self, conn: AsyncConnection, batch_id: str) -> Batch:
        batch = await store.get(conn, batch_id, for_update=True)
        if batch is None:
            raise NotFound(f"no batch {batch_id!r}")
        if batch.status != HoldStatus.OPEN:
            raise Conflict(f"batch {batch_id!r} is {batch.status}")
        return batch
