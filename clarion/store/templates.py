"""Stored template rows, returned as ``StoredTemplate``: ``{locale: {part: body}}`` bodies,
versioned on every update."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from clarion.domain.rendering import StoredTemplate
from clarion.store.schema import templates

t = templates


async def insert(conn: AsyncConnection, values: Mapping[str, Any], now: datetime) -> StoredTemplate:
    """Insert a new template; a duplicate key surfaces as ``Conflict`` from ``Database.begin``."""
    await conn.execute(t.insert().values(**values, version=1, created_at=now, updated_at=now))
    row = await get(conn, str(values["key"]))
    assert row is not None
    return row


async def get(conn: AsyncConnection, key: str) -> StoredTemplate | None:
    row = (await conn.execute(select(t).where(t.c.key == key))).first()
    return None if row is None else StoredTemplate.from_row(row._mapping)


async def list_all(conn: AsyncConnection, *, limit: int, after: str | None) -> list[StoredTemplate]:
    """Keyset page ordered by key."""
    stmt = select(t).order_by(t.c.key).limit(limit)
    if after is not None:
        stmt = stmt.where(t.c.key > after)
    return [StoredTemplate.from_row(r._mapping) for r in await conn.execute(stmt)]


async def replace(
    conn: AsyncConnection, key: str, values: Mapping[str, Any], now: datetime
) -> StoredTemplate | None:
    """Overwrite a template's content and bump its version; None when it does not exist."""
    result = await conn.execute(
        update(t).where(t.c.key == key).values(**values, version=t.c.version + 1, updated_at=now)
    )
    if result.rowcount == 0:
        return None
    return await get(conn, key)


async def remove(conn: AsyncConnection, key: str) -> bool:
    result = await conn.execute(delete(t).where(t.c.key == key))
    return bool(result.rowcount)
