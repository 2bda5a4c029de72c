"""The attempt log: one row per call made to a provider for a delivery."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from clarion.domain.deliveries import DeliveryAttempt
from clarion.store import bulk
from clarion.store.schema import delivery_attempts


async def add_attempts(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    """One row per attempt of a recorded batch, in one statement on PostgreSQL
    (store.bulk): an executemany ran one INSERT per row there."""
    await bulk.insert(conn, delivery_attempts, rows)


async def attempts_for(
    conn: AsyncConnection, delivery_ids: Sequence[str]
) -> dict[str, list[DeliveryAttempt]]:
    out: dict[str, list[DeliveryAttempt]] = {d: [] for d in delivery_ids}
    if not delivery_ids:
        return out
    stmt = (
        select(delivery_attempts)
        .where(delivery_attempts.c.delivery_id.in_(list(delivery_ids)))
        .order_by(delivery_attempts.c.delivery_id, delivery_attempts.c.id)
    )
    for row in await conn.execute(stmt):
        out[row.delivery_id].append(DeliveryAttempt.from_row(row._mapping))
    return out
