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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from clarion.domain.holds import Batch, HeldItem
from clarion.domain.types import HoldStatus
from clarion.store import bulk
from clarion.store.dialect import insert_ignore, one_of, row_locked
from clarion.store.schema import batch_items, batches

b = batches


async def open_for_update(
    conn: AsyncConnection, user_id: str, type_: str, group_key: str
) -> Batch | None:
    """The open batch of (user, type, group_key), locked (``open_or_create``)."""
    stmt = select(b).where(
        b.c.user_id == user_id,
        b.c.type == type_,
        b.c.group_key == group_key,
        b.c.status == HoldStatus.OPEN,
    )
    row = (await conn.execute(row_locked(stmt, conn))).first()
    return None if row is None else Batch.from_row(row._mapping)


async def open_or_create(conn: AsyncConnection, values: Mapping[str, Any]) -> Batch:
    """The open batch of (user, type, group_key), locked; created from ``values`` if none.

    Two first items racing both try the insert; the unique partial index lets one win and
    the other reads the winner's row (after it commits, on PostgreSQL)."""
    key = (values["user_id"], values["type"], values["group_key"])
    batch = await open_for_update(conn, *key)
    if batch is not None:
        return batch
    await conn.execute(
        insert_ignore(conn, b),
        {**values, "id": str(uuid.uuid4()), "status": HoldStatus.OPEN, "item_count": 0},
    )
    batch = await open_for_update(conn, *key)
    assert batch is not None
    return batch


async def add_item(
    conn: AsyncConnection, batch_id: str, item: Mapping[str, Any], *, flush_at: datetime | None
) -> None:
    await conn.execute(batch_items.insert(), {**item, "batch_id": batch_id})
    await conn.execute(
        update(b).where(b.c.id == batch_id).values(item_count=b.c.item_count + 1, flush_at=flush_at)
    )


async def claim_due(conn: AsyncConnection, now: datetime, limit: int) -> list[Batch]:
    """Open batches due at ``now``, locked; other flushers skip them (PostgreSQL)."""
    stmt = (
        select(b)
        .where(b.c.status == HoldStatus.OPEN, b.c.flush_at <= now)
        .order_by(b.c.flush_at)
        .limit(limit)
    )
    rows = await conn.execute(row_locked(stmt, conn, skip_locked=True))
    return [Batch.from_row(r._mapping) for r in rows]


async def get(conn: AsyncConnection, batch_id: str, *, for_update: bool = False) -> Batch | None:
    stmt = select(b).where(b.c.id == batch_id)
    if for_update:
        stmt = row_locked(stmt, conn)
    row = (await conn.execute(stmt)).first()
    return None if row is None else Batch.from_row(row._mapping)


async def items(conn: AsyncConnection, batch_id: str) -> list[HeldItem]:
    stmt = select(batch_items).where(batch_items.c.batch_id == batch_id).order_by(batch_items.c.id)
    return [HeldItem.from_row(r._mapping) for r in await conn.execute(stmt)]


@dataclass(frozen=True, slots=True)
class FoldItem:
    """The columns of a batch item that folding reads. The actor comes out as two text
    columns and ``data``/``command`` are read only for each batch's latest item: decoding
    JSON for every item of a page of batches was most of the CPU of a flush."""

    id: int
    title: str
    message: str
    actor_id: str | None
    actor_name: str | None
    created_at: datetime


_FOLD_ITEMS_PG = (
    "SELECT batch_id, id, title, message, actor->>'id', actor->>'name', created_at"
    " FROM batch_items WHERE batch_id = ANY($1::varchar[])"
)


async def fold_items(conn: AsyncConnection, batch_ids: Sequence[str]) -> dict[str, list[FoldItem]]:
    """The items of several batches in one query, per batch in id order (oldest first)."""
    out: dict[str, list[FoldItem]] = {}
    if not batch_ids:
        return out
    driver = await bulk.driver_in_transaction(conn)
    if driver is not None:
        # Tens of thousands of rows per page: asyncpg's records as they come, without
        # SQLAlchemy's per-row result processing (a third of a flush's CPU).
        for r in await driver.fetch(_FOLD_ITEMS_PG, list(batch_ids)):
            out.setdefault(r[0], []).append(FoldItem(r[1], r[2], r[3], r[4], r[5], r[6]))
    else:
        i = batch_items.c
        stmt = select(
            i.batch_id,
            i.id,
            i.title,
            i.message,
            i.actor["id"].as_string(),
            i.actor["name"].as_string(),
            i.created_at,
        ).where(one_of(conn, i.batch_id, batch_ids))
        for batch_id, *fields in await conn.execute(stmt):
            out.setdefault(batch_id, []).append(FoldItem(*fields))
    # Sorted here, not by the database: PostgreSQL would sort the whole page (tens of
    # thousands of rows by a text key) where each batch's short list is cheap to sort.
    for items in out.values():
        items.sort(key=lambda item: item.id)
    return out


async def item_details(
    conn: AsyncConnection, item_ids: Sequence[int]
) -> dict[int, tuple[dict[str, Any], dict[str, Any]]]:
    """``(data, command)`` of the given items, by id."""
    if not item_ids:
        return {}
    i = batch_items.c
    rows = await conn.execute(select(i.id, i.data, i.command).where(one_of(conn, i.id, item_ids)))
    return {int(r.id): (r.data or {}, r.command) for r in rows}


async def close_many(
    conn: AsyncConnection, flushed: Sequence[tuple[str, int]], dropped: Sequence[str], now: datetime
) -> None:
    """Close a page of claimed batches: each ``(batch_id, notification_id)`` flushed, each
    of ``dropped`` dropped. One statement per kind for all of them. The items are not
    touched: every item of a flushed batch was folded into the batch's notification."""
    if flushed:
        params = [{"bid": bid, "nid": nid} for bid, nid in flushed]
        await conn.execute(
            update(b)
            .where(b.c.id == bindparam("bid"), b.c.status == HoldStatus.OPEN)
            .values(status=HoldStatus.FLUSHED, closed_at=now, notification_id=bindparam("nid")),
            params,
        )
    if dropped:
        await conn.execute(
            update(b)
            .where(b.c.id.in_(dropped), b.c.status == HoldStatus.OPEN)
            .values(status=HoldStatus.DROPPED, closed_at=now)
        )


async def close(conn: AsyncConnection, batch_id: str, *, status: HoldStatus, now: datetime) -> bool:
    """Mark an open batch closed with ``status`` (dropped); False if it was not open."""
    result = await conn.execute(
        update(b)
        .where(b.c.id == batch_id, b.c.status == HoldStatus.OPEN)
        .values(status=status, closed_at=now)
    )
    return bool(result.rowcount)


async def list_open(
    conn: AsyncConnection, *, user_id: str | None, limit: int, after: str | None
) -> list[Batch]:
    stmt = select(b).where(b.c.status == HoldStatus.OPEN)
    if user_id is not None:
        stmt = stmt.where(b.c.user_id == user_id)
    if after is not None:
        stmt = stmt.where(b.c.id > after)
    stmt = stmt.order_by(b.c.id).limit(limit)
    return [Batch.from_row(r._mapping) for r in await conn.execute(stmt)]


async def next_due(conn: AsyncConnection) -> datetime | None:
    stmt = select(b.c.flush_at).where(b.c.status == HoldStatus.OPEN, b.c.flush_at.is_not(None))
    stmt = stmt.order_by(b.c.flush_at).limit(1)
    value: datetime | None = (await conn.execute(stmt)).scalar_one_or_none()
    return value
