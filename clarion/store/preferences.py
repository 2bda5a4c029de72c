"""Per-user preference documents (``Preferences.to_json()``); no row means the defaults."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from clarion.store.dialect import insert_ignore, one_of
from clarion.store.schema import preferences

p = preferences


async def get(conn: AsyncConnection, user_id: str) -> Mapping[str, Any] | None:
    value = (
        await conn.execute(select(p.c.document).where(p.c.user_id == user_id))
    ).scalar_one_or_none()
    return None if value is None else dict(value)


async def get_many(conn: AsyncConnection, user_ids: Iterable[str]) -> dict[str, Mapping[str, Any]]:
    """The stored documents of several users in one query; users without one are absent."""
    ids = list(dict.fromkeys(user_ids))
    if not ids:
        return {}
    rows = await conn.execute(
        select(p.c.user_id, p.c.document).where(one_of(conn, p.c.user_id, ids))
    )
    return {r.user_id: dict(r.document) for r in rows}


async def put(
    conn: AsyncConnection, user_id: str, document: Mapping[str, Any], now: datetime
) -> None:
    """Insert or replace: insert-if-absent then update works the same on both backends and
    never fails on a concurrent first write."""
    await conn.execute(
        insert_ignore(conn, p), [{"user_id": user_id, "document": {}, "updated_at": now}]
    )
    await conn.execute(
        update(p).where(p.c.user_id == user_id).values(document=dict(document), updated_at=now)
    )
