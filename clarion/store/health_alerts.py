"""Episodes of a low health score: at most one open at a time (a unique index), so one
alert per episode however many processes check."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncConnection

from clarion.store.dialect import insert_ignore
from clarion.store.schema import health_alerts


async def open_episode(
    conn: AsyncConnection, now: datetime, score: float, window: str | None
) -> bool:
    """Open an episode; ``True`` when this call opened it (``False``: one is open)."""
    row = {
        "started_at": now,
        "score": score,
        "lowest": score,
        "window": window,
        "open": True,
    }
    result = await conn.execute(insert_ignore(conn, health_alerts), row)
    return bool(result.rowcount)


async def note_low(conn: AsyncConnection, score: float) -> None:
    """Keep the lowest score of the open episode."""
    await conn.execute(
        update(health_alerts)
        .where(health_alerts.c.open.is_(True))
        .values(lowest=func.min(health_alerts.c.lowest, score))
        if conn.dialect.name == "sqlite"
        else update(health_alerts)
        .where(health_alerts.c.open.is_(True))
        .values(lowest=func.least(health_alerts.c.lowest, score))
    )


async def close_episode(conn: AsyncConnection, now: datetime) -> bool:
    result = await conn.execute(
        update(health_alerts).where(health_alerts.c.open.is_(True)).values(open=None, ended_at=now)
    )
    return bool(result.rowcount)
