"""Conversions the application reports: one per (notification, name)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from clarion.domain.conversions import Conversion
from clarion.domain.notifications import Notification
from clarion.store.dialect import insert_ignore
from clarion.store.schema import conversions, notifications


async def record(conn: AsyncConnection, conversion: Conversion) -> bool:
    """Insert a conversion; ``False`` when the notification already has one of that name."""
    row = {
        "notification_id": conversion.notification_id,
        "user_id": conversion.user_id,
        "name": conversion.name,
        "value": conversion.value,
        "created_at": conversion.created_at,
    }
    result = await conn.execute(insert_ignore(conn, conversions), row)
    return bool(result.rowcount)


async def existing(conn: AsyncConnection, notification_id: int, name: str) -> Conversion | None:
    stmt = select(conversions).where(
        conversions.c.notification_id == notification_id, conversions.c.name == name
    )
    row = (await conn.execute(stmt)).first()
    return None if row is None else Conversion.from_row(row._mapping)


async def latest_notification(
    conn: AsyncConnection, user_id: str, since: datetime
) -> Notification | None:
    """The user's most recent notification created at or after ``since``."""
    stmt = (
        select(notifications)
        .where(notifications.c.user_id == user_id)
        .order_by(notifications.c.id.desc())
        .limit(1)
    )
    row = (await conn.execute(stmt)).first()
    if row is None:
        return None
    created = row.created_at
    if created.tzinfo is None:  # SQLite hands back naive UTC
        since = since.replace(tzinfo=None)
    return Notification.from_row(row._mapping) if created >= since else None
