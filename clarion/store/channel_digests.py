"""Channel digests: deliveries held over a user's per-channel rate limit, and their release.

Holding and releasing serialise on the digest row, like batches: a send locks the open
(user, channel) row ``FOR UPDATE`` before inserting its held delivery; the releaser claims
due open rows ``FOR UPDATE SKIP LOCKED`` (PostgreSQL) and reads the held deliveries under
that lock, so a held delivery is either in the fold or waits in a digest opened after the
release commits — never both, never neither. SQLite: every writer holds the write lock.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from clarion.domain.deliveries import ChannelDigest, Delivery
from clarion.domain.types import DeliveryStatus, HoldStatus, SuppressionReason
from clarion.store.dialect import insert_ignore, row_locked
from clarion.store.schema import channel_digests, deliveries

cd = channel_digests


async def _open(conn: AsyncConnection, user_id: str, channel: str) -> ChannelDigest | None:
    stmt = select(cd).where(
        cd.c.user_id == user_id, cd.c.channel == channel, cd.c.status == HoldStatus.OPEN
    )
    row = (await conn.execute(row_locked(stmt, conn))).first()
    return None if row is None else ChannelDigest.from_row(row._mapping)


async def hold(
    conn: AsyncConnection, user_id: str, channel: str, due_at: datetime, now: datetime
) -> ChannelDigest:
    """The open digest of (user, channel), locked and counted one more; created (due at
    ``due_at``) if none is open. The value returned is as read, before that count."""
    digest = await _open(conn, user_id, channel)
    if digest is None:
        await conn.execute(
            insert_ignore(conn, cd),
            {
                "id": str(uuid.uuid4()),
                "user_id": user_id,
                "channel": channel,
                "status": HoldStatus.OPEN,
                "opened_at": now,
                "due_at": due_at,
                "item_count": 0,
            },
        )
        digest = await _open(conn, user_id, channel)
        assert digest is not None
    await conn.execute(
        update(cd).where(cd.c.id == digest.id).values(item_count=cd.c.item_count + 1)
    )
    return digest


async def claim_due(conn: AsyncConnection, now: datetime, limit: int) -> list[ChannelDigest]:
    """Open digests due at ``now``, locked; other releasers skip them (PostgreSQL)."""
    stmt = (
        select(cd)
        .where(cd.c.status == HoldStatus.OPEN, cd.c.due_at <= now)
        .order_by(cd.c.due_at)
        .limit(limit)
    )
    rows = await conn.execute(row_locked(stmt, conn, skip_locked=True))
    return [ChannelDigest.from_row(r._mapping) for r in rows]


async def held(conn: AsyncConnection, digest_id: str) -> list[Delivery]:
    """The deliveries still held in a digest (locked on PostgreSQL), oldest first."""
    d = deliveries
    stmt = (
        select(d)
        .where(d.c.digest_id == digest_id, d.c.status == DeliveryStatus.SCHEDULED)
        .order_by(d.c.created_at, d.c.id)
    )
    return [Delivery.from_row(r._mapping) for r in await conn.execute(row_locked(stmt, conn))]


async def release(
    conn: AsyncConnection,
    leader: str,
    others: Sequence[str],
    content: Mapping[str, Any] | None,
    now: datetime,
) -> None:
    """The leader goes out now (carrying ``content``); the others are ``batched`` into it."""
    d = deliveries
    await conn.execute(
        update(d)
        .where(d.c.id == leader)
        .values(
            status=DeliveryStatus.PENDING,
            reason=None,
            next_attempt_at=now,
            content=content,
            updated_at=now,
        )
    )
    if others:
        await conn.execute(
            update(d)
            .where(d.c.id.in_(list(others)))
            .values(
                status=DeliveryStatus.SUPPRESSED,
                reason=SuppressionReason.BATCHED,
                updated_at=now,
            )
        )


async def close(
    conn: AsyncConnection, digest_id: str, now: datetime, delivery_id: str | None
) -> None:
    await conn.execute(
        update(cd)
        .where(cd.c.id == digest_id)
        .values(status=HoldStatus.FLUSHED, closed_at=now, delivery_id=delivery_id)
    )


async def get(conn: AsyncConnection, digest_id: str) -> ChannelDigest | None:
    row = (await conn.execute(select(cd).where(cd.c.id == digest_id))).first()
    return None if row is None else ChannelDigest.from_row(row._mapping)
