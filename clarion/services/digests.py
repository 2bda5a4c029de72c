"""Batches (digests): list, flush, drop, and the flush of due batches.

A flush folds the batch's items (``domain.folding.fold``) into ONE notification and
writes it with ``SendingService.write`` in the same transaction that marks the batch
``flushed``: with several flushers (each claims with ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, or under SQLite's write lock) a batch flushes exactly once, and a crash
before the commit leaves it open for the next try. Nothing is held in memory.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from clarion.domain.folding import Actor, BatchItem, fold, phrase_for
from clarion.errors import ClarionError, Conflict, NotFound
from clarion.services.auth import Principal
from clarion.services.clock import as_utc, utcnow
from clarion.services.sending import SendCommand, SendingService, Written
from clarion.store import batches as store
from clarion.store.db import Database

log = logging.getLogger("clarion.digests")


def batch_json(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "key": row["key"],
        "user_id": row["user_id"],
        "type": row["type"],
        "group_key": row["group_key"] or None,
        "status": row["status"],
        "rule": row["rule"],
        "item_count": row["item_count"],
        "opened_at": as_utc(row["opened_at"]).isoformat(),
        "flush_at": None if row["flush_at"] is None else as_utc(row["flush_at"]).isoformat(),
        "notification_id": row["notification_id"],
    }


class DigestService:
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
            "next_cursor": rows[-1]["id"] if more else None,
        }

    async def flush(self, batch_id: str) -> dict[str, Any]:
        """Flush one open batch now (``404`` unknown, ``409`` no longer open)."""
        now = utcnow()
        async with self._db.begin() as conn:
            row = await self._open(conn, batch_id)
            written = await self._flush(conn, row, now)
            after = await store.get(conn, batch_id)
        await self._sending.notify(written)
        assert after is not None
        return batch_json(after)

    async def drop(self, batch_id: str) -> None:
        """Discard an open batch and its items."""
        async with self._db.begin() as conn:
            await self._open(conn, batch_id)
            await store.close(conn, batch_id, status="dropped", now=utcnow())

    async def flush_due(self, now: datetime | None = None, *, limit: int = 50) -> int:
        """Flush every due batch (up to ``limit``); returns how many were flushed."""
        now = now or utcnow()
        written = Written()
        async with self._db.begin() as conn:
            rows = await store.claim_due(conn, now, limit)
            for row in rows:
                one = await self._flush(conn, row, now)
                written.ids.extend(one.ids)
                written.created.extend(one.created)
        await self._sending.notify(written)
        return len(rows)

    async def next_due(self) -> datetime | None:
        async with self._db.connect() as conn:
            value = await store.next_due(conn)
        return None if value is None else as_utc(value)

    async def _open(self, conn: AsyncConnection, batch_id: str) -> Any:
        row = await store.get(conn, batch_id, for_update=True)
        if row is None:
            raise NotFound(f"no batch {batch_id!r}")
        if row["status"] != "open":
            raise Conflict(f"batch {batch_id!r} is {row['status']}")
        return row

    async def _flush(self, conn: AsyncConnection, row: Any, now: datetime) -> Written:
        items = await store.items(conn, row["id"])
        if not items:
            await store.close(conn, row["id"], status="dropped", now=now)
            return Written()
        locale = row["locale"] or "en"
        folded = fold(
            [
                BatchItem(
                    notification_id=str(i["id"]),
                    title=i["title"],
                    message=i["message"],
                    created_at=as_utc(i["created_at"]),
                    actor=None if not i["actor"] else Actor(**i["actor"]),
                    data=i["data"] or {},
                )
                for i in items
            ],
            locale,
            phrase=phrase_for(row["type"], locale),
        )
        latest = max(items, key=lambda i: (as_utc(i["created_at"]), i["id"]))
        base = SendCommand.from_json(latest["command"], (row["user_id"],))
        data = {
            **(latest["data"] or {}),
            "batch_id": row["id"],
            "count": folded.count,
            "actors": [{"id": a.id, "name": a.name} for a in folded.actors],
            "batch_item_ids": [int(x) for x in folded.notification_ids],
            "first_at": folded.first_at.isoformat(),
            "last_at": folded.last_at.isoformat(),
        }
        cmd = replace(
            base, title=folded.title, message=folded.message, data=data, template_key=None
        )
        try:
            content = self._sending.content_of(cmd)
        except ClarionError:  # e.g. the fold made the message longer than allowed
            cmd = replace(cmd, message=cmd.message[:4000])
            content = self._sending.content_of(cmd)
        plans = await self._sending.planner.plan(
            cmd, [row["user_id"]], content, now, allow_hold=False
        )
        written = await self._sending.write(conn, cmd, plans, now)
        await store.close(
            conn, row["id"], status="flushed", now=now, notification_id=written.ids[0]
        )
        log.info(
            "batch %s flushed: %d items -> notification %s", row["id"], folded.count, written.ids[0]
        )
        return written
