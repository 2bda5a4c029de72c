"""Idempotency records, scoped to the API key that used them.

A record is claimed (``status_code`` NULL) before the request runs and completed with the
response in the request's own transaction, so a replay returns exactly what was committed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from clarion.domain.idempotency import IdempotencyRecord
from clarion.store.dialect import insert_ignore
from clarion.store.schema import idempotency_keys as t


async def claim(
    conn: AsyncConnection, api_key_id: str, key: str, request_hash: str, now: datetime
) -> bool:
    """True when this request now owns the key; False when a record exists."""
    result = await conn.execute(
        insert_ignore(conn, t).values(
            api_key_id=api_key_id, key=key, request_hash=request_hash, created_at=now
        )
    )
    return bool(result.rowcount)


async def get(conn: AsyncConnection, api_key_id: str, key: str) -> IdempotencyRecord | None:
    row = (
        await conn.execute(select(t).where(t.c.api_key_id == api_key_id, t.c.key == key))
    ).first()
    return None if row is None else IdempotencyRecord.from_row(row._mapping)


async def complete(
    conn: AsyncConnection, api_key_id: str, key: str, status_code: int, response: Any
) -> None:
    await conn.execute(
        update(t)
        .where(t.c.api_key_id == api_key_id, t.c.key == key)
        .values(status_code=status_code, response=response)
    )


async def release(conn: AsyncConnection, api_key_id: str, key: str) -> None:
    await conn.execute(delete(t).where(t.c.api_key_id == api_key_id, t.c.key == key))


async def take_over(
    conn: AsyncConnection,
    api_key_id: str,
    key: str,
    request_hash: str,
    stale_before: datetime,
    now: datetime,
) -> bool:
    """Take an in-progress record whose owner died (older than ``stale_before``)."""
    result = await conn.execute(
        update(t)
        .where(
            t.c.api_key_id == api_key_id,
            t.c.key == key,
            t.c.status_code.is_(None),
            t.c.created_at < stale_before,
        )
        .values(request_hash=request_hash, created_at=now)
    )
    return bool(result.rowcount)


async def purge(conn: AsyncConnection, older_than: datetime) -> int:
    result = await conn.execute(delete(t).where(t.c.created_at < older_than))
    return result.rowcount
