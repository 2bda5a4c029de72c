"""Delivery rows: the outbox written in the notification's own transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from clarion.domain.deliveries import Delivery
from clarion.domain.types import DeliveryStatus
from clarion.store import bulk
from clarion.store.schema import deliveries


async def insert(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert delivery rows (inside a transaction)."""
    await bulk.insert(conn, deliveries, rows)


async def for_notification(conn: AsyncConnection, notification_id: int) -> list[Delivery]:
    stmt = (
        select(deliveries)
        .where(deliveries.c.notification_id == notification_id)
        .order_by(deliveries.c.channel, deliveries.c.id)
    )
    return [Delivery.from_row(r._mapping) for r in await conn.execute(stmt)]


#: The statuses system status counts: work still open, and the dead awaiting a look.
#: Delivered, suppressed and cancelled rows are most of the table and are left out, so
#: the count walks the status index instead of every delivery ever made (analytics
#: counts those).
OPEN = (
    DeliveryStatus.SCHEDULED,
    DeliveryStatus.PENDING,
    DeliveryStatus.SENDING,
    DeliveryStatus.FAILED,
    DeliveryStatus.DEAD,
)


async def backlog(conn: AsyncConnection) -> dict[str, int]:
    """Deliveries by open status (:data:`OPEN`), for system status."""
    stmt = (
        select(deliveries.c.status, func.count())
        .where(deliveries.c.status.in_([s.value for s in OPEN]))
        .group_by(deliveries.c.status)
    )
    return {status: int(count) for status, count in await conn.execute(stmt)}


async def oldest_due(conn: AsyncConnection, now: datetime) -> datetime | None:
    """When the longest-waiting due delivery (pending, or failed and due again) became
    due; ``None`` when nothing is waiting. The outbox's backlog age is ``now`` minus this."""
    stmt = select(func.min(deliveries.c.next_attempt_at)).where(
        deliveries.c.status.in_([DeliveryStatus.PENDING, DeliveryStatus.FAILED]),
        deliveries.c.next_attempt_at <= now,
    )
    oldest: datetime | None = (await conn.execute(stmt)).scalar()
    return oldest
