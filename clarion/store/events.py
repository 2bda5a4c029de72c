"""Append-only facts of notifications' lives (docs/analytics.md, "Events"), and the raw
reads of them: one user's, an export's pages, the live counters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from clarion.domain.events import Event
from clarion.store import bulk
from clarion.store.schema import events

#: The columns an export carries, in order (``txid`` is bookkeeping, not a fact).
EXPORTED = tuple(str(c.name) for c in events.columns if c.name != "txid")


async def append(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Append events (inside a transaction)."""
    await bulk.insert(conn, events, rows)


async def for_user(
    conn: AsyncConnection, user_id: str, start: datetime, end: datetime
) -> list[Event]:
    stmt = (
        select(events)
        .where(events.c.user_id == user_id, events.c.created_at >= start, events.c.created_at < end)
        .order_by(events.c.created_at)
    )
    return [Event.from_row(r._mapping) for r in await conn.execute(stmt)]


async def page(
    conn: AsyncConnection,
    start: datetime,
    end: datetime,
    filters: Mapping[str, Any],
    after: tuple[datetime, int] | None,
    limit: int,
) -> list[Any]:
    """Up to ``limit`` events of ``[start, end)`` after ``after`` (the last page's final
    ``(created_at, id)``), in time order, as rows in :data:`EXPORTED` order; ``filters``
    name columns (``type``, ``channel``, ``ntype``, ``user_id``)."""
    cond = [events.c.created_at >= start, events.c.created_at < end]
    if after is not None:
        cond.append(tuple_(events.c.created_at, events.c.id) > tuple_(*after))
    cond += [events.c[k] == v for k, v in filters.items() if v is not None]
    cols = [events.c[name] for name in EXPORTED]
    stmt = select(*cols).where(*cond).order_by(events.c.created_at, events.c.id).limit(limit)
    return list(await conn.execute(stmt))


async def counts_after(conn: AsyncConnection, after_id: int | None) -> tuple[int, dict[str, int]]:
    """Events by type with ids above ``after_id`` (none when ``None``), and the highest
    id seen (the next call's ``after_id``)."""
    top = int((await conn.execute(select(func.coalesce(func.max(events.c.id), 0)))).scalar_one())
    if after_id is None or top <= after_id:
        return top, {}
    stmt = (
        select(events.c.type, func.count())
        .where(events.c.id > after_id, events.c.id <= top)
        .group_by(events.c.type)
    )
    return top, {str(t): int(n) for t, n in await conn.execute(stmt)}
