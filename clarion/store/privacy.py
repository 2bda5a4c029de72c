"""A user's data, table by table, in bounded steps: what an export reads and an erasure
deletes (services/privacy.py drives them, one short transaction per step).

Every step touches at most ``limit`` rows of the table it walks, found through an index
on the user: notifications by ``ix_notifications_user_id_id`` (their deliveries and
attempts through ``notification_id`` and ``delivery_id``), events by
``ix_events_user_id_created_at``, batches and channel digests by their ``user_id``
indexes, scheduled sends by ``ix_scheduled_sends_user_id_due_at``. Deliveries carry the
user id too but no index on it: they are always reached through their notification (every
delivery belongs to a notification of the same user).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, delete, func, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from clarion.store.dialect import one_of
from clarion.store.schema import (
    batch_items,
    batches,
    channel_digests,
    channel_opt_outs,
    deliveries,
    delivery_attempts,
    events,
    notifications,
    preferences,
    push_subscriptions,
    scheduled_sends,
    users,
    webhook_endpoints,
)

# The tables holding a user's rows under a ``user_id`` column (batch items and delivery
# attempts hang off their batch and delivery). Tests check each of them after an erasure.
USER_TABLES: tuple[Table, ...] = (
    users,
    notifications,
    deliveries,
    events,
    push_subscriptions,
    channel_opt_outs,
    preferences,
    batches,
    channel_digests,
    scheduled_sends,
    webhook_endpoints,
)


# --- reads ------------------------------------------------------------------------------


async def profile(conn: AsyncConnection, user_id: str) -> RowMapping | None:
    row = (await conn.execute(select(users).where(users.c.user_id == user_id))).first()
    return None if row is None else row._mapping


async def small_tables(conn: AsyncConnection, user_id: str) -> dict[str, list[RowMapping]]:
    """The tables with a handful of rows per user, whole: preferences, opt-outs, push
    subscriptions, and the webhook endpoints that receive this user's notifications only
    (an operator's table, small)."""
    out: dict[str, list[RowMapping]] = {}
    for name, table, order in (
        ("preferences", preferences, preferences.c.user_id),
        ("channel_opt_outs", channel_opt_outs, channel_opt_outs.c.type),
        ("push_subscriptions", push_subscriptions, push_subscriptions.c.created_at),
        ("webhook_endpoints", webhook_endpoints, webhook_endpoints.c.created_at),
    ):
        stmt = select(table).where(table.c.user_id == user_id).order_by(order)
        out[name] = [r._mapping for r in await conn.execute(stmt)]
    return out


async def notifications_page(
    conn: AsyncConnection, user_id: str, after_id: int, limit: int
) -> list[RowMapping]:
    """The user's notifications with ids above ``after_id``, oldest first (keyset)."""
    stmt = (
        select(notifications)
        .where(notifications.c.user_id == user_id, notifications.c.id > after_id)
        .order_by(notifications.c.id)
        .limit(limit)
    )
    return [r._mapping for r in await conn.execute(stmt)]


async def deliveries_of(conn: AsyncConnection, notification_ids: Sequence[int]) -> list[RowMapping]:
    if not notification_ids:
        return []
    stmt = (
        select(deliveries)
        .where(one_of(conn, deliveries.c.notification_id, notification_ids))
        .order_by(deliveries.c.notification_id, deliveries.c.created_at, deliveries.c.id)
    )
    return [r._mapping for r in await conn.execute(stmt)]


async def attempts_of(conn: AsyncConnection, delivery_ids: Sequence[str]) -> list[RowMapping]:
    if not delivery_ids:
        return []
    stmt = (
        select(delivery_attempts)
        .where(one_of(conn, delivery_attempts.c.delivery_id, delivery_ids))
        .order_by(delivery_attempts.c.delivery_id, delivery_attempts.c.id)
    )
    return [r._mapping for r in await conn.execute(stmt)]


async def page_by_id(
    conn: AsyncConnection, table: Table, user_id: str, after: Any, limit: int
) -> list[RowMapping]:
    """A page of ``table``'s rows of the user, by primary key ``id`` above ``after``
    (``None``: from the start). For events, scheduled sends, batches, channel digests."""
    stmt = select(table).where(table.c.user_id == user_id)
    if after is not None:
        stmt = stmt.where(table.c.id > after)
    stmt = stmt.order_by(table.c.id).limit(limit)
    return [r._mapping for r in await conn.execute(stmt)]


async def batch_items_page(
    conn: AsyncConnection, batch_id: str, after_id: int, limit: int
) -> list[RowMapping]:
    stmt = (
        select(batch_items)
        .where(batch_items.c.batch_id == batch_id, batch_items.c.id > after_id)
        .order_by(batch_items.c.id)
        .limit(limit)
    )
    return [r._mapping for r in await conn.execute(stmt)]


async def holds_anything(conn: AsyncConnection, user_id: str) -> bool:
    """Whether any table holds a row of the user (an indexed probe per table; webhook
    endpoints, an operator's small table, are scanned)."""
    for table in (
        users,
        preferences,
        events,
        scheduled_sends,
        batches,
        channel_digests,
        channel_opt_outs,
        webhook_endpoints,
    ):
        stmt = select(table.c.user_id).where(table.c.user_id == user_id).limit(1)
        if (await conn.execute(stmt)).first() is not None:
            return True
    # Notifications and push subscriptions reference the users row: none without it.
    return False


# --- erasure steps ----------------------------------------------------------------------


async def erase_notifications(conn: AsyncConnection, user_id: str, limit: int) -> dict[str, int]:
    """Delete up to ``limit`` of the user's notifications with their deliveries and the
    deliveries' attempts (children first, so no cascade runs unbounded)."""
    ids = [
        r[0]
        for r in await conn.execute(
            select(notifications.c.id)
            .where(notifications.c.user_id == user_id)
            .order_by(notifications.c.id)
            .limit(limit)
        )
    ]
    if not ids:
        return {}
    delivery_ids = [
        r[0]
        for r in await conn.execute(
            select(deliveries.c.id).where(one_of(conn, deliveries.c.notification_id, ids))
        )
    ]
    attempts = 0
    if delivery_ids:
        attempts = await _deleted(
            conn,
            delete(delivery_attempts).where(
                one_of(conn, delivery_attempts.c.delivery_id, delivery_ids)
            ),
        )
        await conn.execute(delete(deliveries).where(one_of(conn, deliveries.c.id, delivery_ids)))
    count = await _deleted(conn, delete(notifications).where(one_of(conn, notifications.c.id, ids)))
    return {"notifications": count, "deliveries": len(delivery_ids), "delivery_attempts": attempts}


async def erase_batches(conn: AsyncConnection, user_id: str, limit: int) -> dict[str, int]:
    """Delete up to ``limit`` held items of the user's batches, or, once a batch has none
    left, up to ``limit`` of the batches themselves."""
    items = [
        r[0]
        for r in await conn.execute(
            select(batch_items.c.id)
            .join(batches, batches.c.id == batch_items.c.batch_id)
            .where(batches.c.user_id == user_id)
            .limit(limit)
        )
    ]
    if items:
        n = await _deleted(conn, delete(batch_items).where(one_of(conn, batch_items.c.id, items)))
        return {"batch_items": n}
    ids = [
        r[0]
        for r in await conn.execute(
            select(batches.c.id).where(batches.c.user_id == user_id).limit(limit)
        )
    ]
    if not ids:
        return {}
    return {"batches": await _deleted(conn, delete(batches).where(one_of(conn, batches.c.id, ids)))}


async def erase_by_user(
    conn: AsyncConnection, table: Table, user_id: str, limit: int
) -> dict[str, int]:
    """Delete up to ``limit`` rows of ``table`` (keyed by ``id``) of the user."""
    ids = [
        r[0]
        for r in await conn.execute(
            select(table.c.id).where(table.c.user_id == user_id).limit(limit)
        )
    ]
    if not ids:
        return {}
    return {table.name: await _deleted(conn, delete(table).where(one_of(conn, table.c.id, ids)))}


async def erase_small(conn: AsyncConnection, user_id: str) -> dict[str, int]:
    """The few rows per user: push subscriptions, preferences, opt-outs, and the webhook
    endpoints that receive this user's notifications only."""
    out: dict[str, int] = {}
    for table in (push_subscriptions, preferences, channel_opt_outs, webhook_endpoints):
        n = await _deleted(conn, delete(table).where(table.c.user_id == user_id))
        if n:
            out[table.name] = n
    return out


async def anonymise_events(
    conn: AsyncConnection, user_id: str, pseudonym: str, limit: int
) -> dict[str, int]:
    """Give up to ``limit`` of the user's events the pseudonym instead of the user id:
    counts by type, channel and day stay as they were."""
    ids = [
        r[0]
        for r in await conn.execute(
            select(events.c.id).where(events.c.user_id == user_id).limit(limit)
        )
    ]
    if not ids:
        return {}
    result = await conn.execute(
        update(events).where(one_of(conn, events.c.id, ids)).values(user_id=pseudonym)
    )
    return {"events": int(result.rowcount)}


async def erase_profile(conn: AsyncConnection, user_id: str) -> dict[str, int]:
    """The users row last: notifications written meanwhile by a concurrent send go with
    it (their foreign key cascades; there are at most a few)."""
    n = await _deleted(conn, delete(users).where(users.c.user_id == user_id))
    return {"users": n} if n else {}


async def count_rows(conn: AsyncConnection, table: Table, user_id: str) -> int:
    stmt = select(func.count()).select_from(table).where(table.c.user_id == user_id)
    return int((await conn.execute(stmt)).scalar_one())


async def _deleted(conn: AsyncConnection, stmt: Any) -> int:
    return int((await conn.execute(stmt)).rowcount)
