"""Scheduled sends: one row per recipient, claimed when due.

The claim locks due rows ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (several workers take
different rows) and relies on the database write lock on SQLite; the caller writes the
notification and marks the row ``sent`` in the same transaction, so a row goes out once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from clarion.domain.holds import ScheduledSend
from clarion.domain.types import ScheduledStatus
from clarion.store.schema import scheduled_sends

s = scheduled_sends


async def insert(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    if rows:
        await conn.execute(s.insert(), list(rows))


async def claim_due(conn: AsyncConnection, now: datetime, limit: int) -> list[ScheduledSend]:
    stmt = (
        select(s)
        .where(s.c.status == ScheduledStatus.SCHEDULED, s.c.due_at <= now)
        .order_by(s.c.due_at)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return [ScheduledSend.from_row(r._mapping) for r in await conn.execute(stmt)]


async def get(
    conn: AsyncConnection, send_id: str, *, for_update: bool = False
) -> ScheduledSend | None:
    stmt = select(s).where(s.c.id == send_id)
    if for_update and conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    row = (await conn.execute(stmt)).first()
    return None if row is None else ScheduledSend.from_row(row._mapping)


async def set_status(conn: AsyncConnection, send_id: str, *, now: datetime, **values: Any) -> None:
    await conn.execute(update(s).where(s.c.id == send_id).values(**values, updated_at=now))


async def reschedule(conn: AsyncConnection, send_id: str, due_at: datetime, now: datetime) -> bool:
    result = await conn.execute(
        update(s)
        .where(s.c.id == send_id, s.c.status == ScheduledStatus.SCHEDULED)
        .values(due_at=due_at, updated_at=now)
    )
    return bool(result.rowcount)


async def cancel(conn: AsyncConnection, send_id: str, now: datetime) -> bool:
    result = await conn.execute(
        update(s)
        .where(s.c.id == send_id, s.c.status == ScheduledStatus.SCHEDULED)
        .values(status=ScheduledStatus.CANCELLED, updated_at=now)
    )
    return bool(result.rowcount)


async def cancel_by_key(conn: AsyncConnection, key: str, now: datetime) -> int:
    result = await conn.execute(
        update(s)
        .where(s.c.cancellation_key == key, s.c.status == ScheduledStatus.SCHEDULED)
        .values(status=ScheduledStatus.CANCELLED, updated_at=now)
    )
    return int(result.rowcount or 0)


async def list_for(
    conn: AsyncConnection,
    *,
    user_id: str | None,
    status: ScheduledStatus,
    limit: int,
    after: str | None,
) -> list[ScheduledSend]:
    stmt = select(s).where(s.c.status == status)
    if user_id is not None:
        stmt = stmt.where(s.c.user_id == user_id)
    if after is not None:
        stmt = stmt.where(s.c.id > after)
    rows = await conn.execute(stmt.order_by(s.c.id).limit(limit))
    return [ScheduledSend.from_row(r._mapping) for r in rows]


async def next_due(conn: AsyncConnection) -> datetime | None:
    stmt = select(s.c.due_at).where(s.c.status == ScheduledStatus.SCHEDULED)
    stmt = stmt.order_by(s.c.due_at).limit(1)
    value: datetime | None = (await conn.execute(stmt)).scalar_one_or_none()
    return value
