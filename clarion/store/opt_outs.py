"""Channel opt-outs: what a one-click unsubscribe link turned off, per user, type and channel."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from clarion.store.dialect import insert_ignore
from clarion.store.schema import (
    channel_opt_outs,
)


async def add_opt_out(
    conn: AsyncConnection, user_id: str, type: str, channel: str, now: datetime
) -> bool:
    """Record the opt-out; ``True`` when it is new (``False``: already opted out)."""
    row = {"user_id": user_id, "type": type, "channel": channel, "created_at": now}
    result = await conn.execute(insert_ignore(conn, channel_opt_outs), row)
    return bool(result.rowcount)


async def opted_out(
    conn: AsyncConnection, keys: Iterable[tuple[str, str, str]]
) -> set[tuple[str, str, str]]:
    """Which of these (user_id, type, channel) triples are opted out."""
    wanted = list(set(keys))
    if not wanted:
        return set()
    stmt = select(
        channel_opt_outs.c.user_id, channel_opt_outs.c.type, channel_opt_outs.c.channel
    ).where(
        tuple_(channel_opt_outs.c.user_id, channel_opt_outs.c.type, channel_opt_outs.c.channel).in_(
            wanted
        )
    )
    return {(r[0], r[1], r[2]) for r in await conn.execute(stmt)}
