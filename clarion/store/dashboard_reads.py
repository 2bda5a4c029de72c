"""Reads the operator dashboard needs that no API route makes: notifications searched
across users, dead letters across notifications, one notification's events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from clarion.domain.events import Event
from clarion.domain.notifications import Notification
from clarion.domain.types import DeliveryStatus
from clarion.store.schema import (
    batch_items,
    batches,
    deliveries,
    events,
    notifications,
    scheduled_sends,
    users,
)


async def search_notifications(
    conn: AsyncConnection, filters: Mapping[str, Any], before_id: int | None, limit: int
) -> list[RowMapping]:
    """Newest first. ``filters``: ``user_id``, ``type``, ``channel`` (among the
    notification's channels), ``status`` (a delivery status on any of its deliveries),
    ``start``/``end`` (created_at)."""
    n = notifications.c
    cond: list[Any] = []
    if before_id is not None:
        cond.append(n.id < before_id)
    if filters.get("user_id"):
        cond.append(n.user_id == filters["user_id"])
    if filters.get("type"):
        cond.append(n.type == filters["type"])
    if filters.get("start") is not None:
        cond.append(n.created_at >= filters["start"])
    if filters.get("end") is not None:
        cond.append(n.created_at < filters["end"])
    channel, status = filters.get("channel"), filters.get("status")
    if status or (channel and channel != "in_app"):
        d = deliveries.c
        sub = select(d.notification_id)
        if status:
            sub = sub.where(d.status == status)
        if channel:
            sub = sub.where(d.channel == channel)
        cond.append(n.id.in_(sub))
    cols = [n.id, n.user_id, n.type, n.title, n.channels, n.created_at, n.read_at, n.variant]
    stmt = select(*cols).where(*cond).order_by(n.id.desc()).limit(limit)
    return [r._mapping for r in await conn.execute(stmt)]


async def notification(conn: AsyncConnection, notification_id: int) -> Notification | None:
    stmt = select(notifications).where(notifications.c.id == notification_id)
    row = (await conn.execute(stmt)).first()
    return Notification.from_row(row._mapping) if row is not None else None


async def events_of(conn: AsyncConnection, notification_id: int) -> list[Event]:
    stmt = (
        select(events)
        .where(events.c.notification_id == notification_id)
        .order_by(events.c.created_at, events.c.id)
    )
    return [Event.from_row(r._mapping) for r in await conn.execute(stmt)]


async def dead_letters(
    conn: AsyncConnection, filters: Mapping[str, Any], limit: int
) -> list[RowMapping]:
    """Dead deliveries, newest change first; ``filters``: ``channel``, ``user_id``,
    ``reason`` (substring of the last error)."""
    d = deliveries.c
    cond: list[Any] = [d.status == DeliveryStatus.DEAD.value]
    if filters.get("channel"):
        cond.append(d.channel == filters["channel"])
    if filters.get("user_id"):
        cond.append(d.user_id == filters["user_id"])
    if filters.get("reason"):
        cond.append(d.last_error.contains(filters["reason"], autoescape=True))
    cols = [d.id, d.notification_id, d.user_id, d.channel, d.attempts, d.last_error, d.updated_at]
    # both descending: one backward walk of the dead rows' (updated_at, id) index
    stmt = select(*cols).where(*cond).order_by(d.updated_at.desc(), d.id.desc()).limit(limit)
    return [r._mapping for r in await conn.execute(stmt)]


async def workers_now(conn: AsyncConnection) -> list[tuple[str, int]]:
    """Workers holding leases now (deliveries ``sending``), with how many each holds."""
    d = deliveries.c
    stmt = (
        select(d.leased_by, func.count())
        .where(d.status == DeliveryStatus.SENDING.value, d.leased_by.is_not(None))
        .group_by(d.leased_by)
        .order_by(d.leased_by)
    )
    return [(str(w), int(n)) for w, n in await conn.execute(stmt)]


async def origin_of(conn: AsyncConnection, user_id: str, notification_id: int) -> dict[str, Any]:
    """The batch this notification folds (and its items' titles) and the scheduled send
    that wrote it, if any (found through the user's own rows: both are indexed by user)."""
    b, s = batches.c, scheduled_sends.c
    stmt = select(b.id, b.type, b.rule, b.opened_at, b.closed_at, b.item_count).where(
        b.user_id == user_id, b.notification_id == notification_id
    )
    batch = (await conn.execute(stmt)).first()
    items: list[str] = []
    if batch is not None:
        rows = await conn.execute(
            select(batch_items.c.title)
            .where(batch_items.c.batch_id == batch.id)
            .order_by(batch_items.c.id)
            .limit(50)
        )
        items = [str(r[0]) for r in rows]
    stmt2 = select(s.id, s.due_at, s.status, s.cancellation_key).where(
        s.user_id == user_id, s.notification_id == notification_id
    )
    scheduled = (await conn.execute(stmt2)).first()
    return {
        "batch": None if batch is None else {**dict(batch._mapping), "items": items},
        "scheduled": None if scheduled is None else dict(scheduled._mapping),
    }


def _after_prefix(prefix: str) -> str | None:
    """The least string above every string that starts with ``prefix`` in code-point
    order (None: no such bound)."""
    for i in range(len(prefix) - 1, -1, -1):
        code = ord(prefix[i]) + 1
        if 0xD800 <= code <= 0xDFFF:  # surrogates never occur in stored text
            code = 0xE000
        if code <= 0x10FFFF:
            return prefix[:i] + chr(code)
    return None


async def users_page(
    conn: AsyncConnection, prefix: str | None, after: str | None, limit: int
) -> list[RowMapping]:
    """Users by id, ``after`` the last one of the previous page, ids starting with
    ``prefix``. The prefix is a range on the primary key (an index range scan, not a
    scan of every user): exact where text sorts by code point (C, C.UTF-8, SQLite); the
    LIKE keeps the answer right under another collation."""
    u = users.c
    cond: list[Any] = []
    if prefix:
        cond += [u.user_id >= prefix, u.user_id.startswith(prefix, autoescape=True)]
        upper = _after_prefix(prefix)
        if upper is not None:
            cond.append(u.user_id < upper)
    if after:
        cond.append(u.user_id > after)
    cols = [u.user_id, u.email, u.name, u.unread_count, u.unseen_count, u.created_at]
    stmt = select(*cols).where(*cond).order_by(u.user_id).limit(limit)
    return [r._mapping for r in await conn.execute(stmt)]
