"""Batches (digests) and their items.

Adding and flushing serialise on the batch row: ``add`` locks the open batch
``FOR UPDATE`` before inserting its item; the flusher claims due open batches
``FOR UPDATE SKIP LOCKED`` (PostgreSQL) and reads the items under that lock, so an item
is either in the fold or lands in a new batch opened after the flush commits — never both,
never neither. On SQLite every writer holds the database write lock (``Database.begin``),
which gives the same order.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from clarion.store.dialect import insert_ignore
from clarion.store.schema import batch_items, batches

b = batches


def _lock(stmt: Any, conn: AsyncConnection, *, skip_locked: bool = False) -> Any:
    if conn.dialect.name == "postgresql":
        return stmt.with_for_update(skip_locked=skip_locked)
    return stmt


async def open_for_update(
    conn: AsyncConnection, user_id: str, type_: str, group_key: str
) -> RowMapping | None:
    stmt = select(b).where(
        b.c.user_id == user_id, b.c.type == type_, b.c.group_key == group_key, b.c.status == "open"
    )
    row = (await conn.execute(_lock(stmt, conn))).first()
    return None if row is None else row._mapping


async def open_or_create(conn: AsyncConnection, values: Mapping[str, Any]) -> RowMapping:
    """The open batch of (user, type, group_key), locked; created from ``values`` if none.

    Two first items racing both try the insert; the unique partial index lets one win and
    the other reads the winner's row (after it commits, on PostgreSQL)."""
    key = (values["user_id"], values["type"], values["group_key"])
    row = await open_for_update(conn, *key)
    if row is not None:
        return row
    await conn.execute(
        insert_ignore(conn, b),
        {**values, "id": str(uuid.uuid4()), "status": "open", "item_count": 0},
    )
    row = await open_for_update(conn, *key)
    assert row is not None
    return row


async def add_item(
    conn: AsyncConnection, batch_id: str, item: Mapping[str, Any], *, flush_at: datetime | None
) -> None:
    await conn.execute(batch_items.insert(), {**item, "batch_id": batch_id})
    await conn.execute(
        update(b).where(b.c.id == batch_id).values(item_count=b.c.item_count + 1, flush_at=flush_at)
    )


async def claim_due(conn: AsyncConnection, now: datetime, limit: int) -> list[RowMapping]:
    """Open batches due at ``now``, locked; other flushers skip them (PostgreSQL)."""
    stmt = (
        select(b)
        .where(b.c.status == "open", b.c.flush_at <= now)
        .order_by(b.c.flush_at)
        .limit(limit)
    )
    return [r._mapping for r in await conn.execute(_lock(stmt, conn, skip_locked=True))]


async def get(
    conn: AsyncConnection, batch_id: str, *, for_update: bool = False
) -> RowMapping | None:
    stmt = select(b).where(b.c.id == batch_id)
    if for_update:
        stmt = _lock(stmt, conn)
    row = (await conn.execute(stmt)).first()
    return None if row is None else row._mapping


async def items(conn: AsyncConnection, batch_id: str) -> list[RowMapping]:
    stmt = select(batch_items).where(batch_items.c.batch_id == batch_id).order_by(batch_items.c.id)
    return [r._mapping for r in await conn.execute(stmt)]


async def close(
    conn: AsyncConnection,
    batch_id: str,
    *,
    status: str,
    now: datetime,
    notification_id: int | None = None,
) -> bool:
    """Mark an open batch flushed or dropped; False if it was not open any more."""
    result = await conn.execute(
        update(b)
        .where(b.c.id == batch_id, b.c.status == "open")
        .values(status=status, closed_at=now, notification_id=notification_id)
    )
    if notification_id is not None:
        await conn.execute(
            update(batch_items)
            .where(batch_items.c.batch_id == batch_id)
            .values(folded_into=notification_id)
        )
    return bool(result.rowcount)


async def list_open(
    conn: AsyncConnection, *, user_id: str | None, limit: int, after: str | None
) -> list[RowMapping]:
    stmt = select(b).where(b.c.status == "open")
    if user_id is not None:
        stmt = stmt.where(b.c.user_id == user_id)
    if after is not None:
        stmt = stmt.where(b.c.id > after)
    stmt = stmt.order_by(b.c.id).limit(limit)
    return [r._mapping for r in await conn.execute(stmt)]


async def next_due(conn: AsyncConnection) -> datetime | None:
    stmt = select(b.c.flush_at).where(b.c.status == "open", b.c.flush_at.is_not(None))
    stmt = stmt.order_by(b.c.flush_at).limit(1)
    value: datetime | None = (await conn.execute(stmt)).scalar_one_or_none()
    return value
