"""Server API keys: only a SHA-256 of the key is stored, with its scopes and its own rate
limit, returned as ``ApiKey`` values."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from clarion.domain.access import ApiKey
from clarion.store.schema import api_keys


async def insert(
    conn: AsyncConnection,
    *,
    id: str,
    name: str,
    prefix: str,
    key_hash: str,
    now: datetime,
    scopes: str,
    rate_limit: str | None,
) -> None:
    """``scopes``: space-separated scope names; ``rate_limit``: limits syntax, or ``None``
    for the configured default."""
    await conn.execute(
        api_keys.insert().values(
            id=id,
            name=name,
            prefix=prefix,
            key_hash=key_hash,
            created_at=now,
            scopes=scopes,
            rate_limit=rate_limit,
        )
    )


async def by_hash(conn: AsyncConnection, key_hash: str) -> ApiKey | None:
    row = (await conn.execute(select(api_keys).where(api_keys.c.key_hash == key_hash))).first()
    return None if row is None else ApiKey.from_row(row._mapping)


async def all_keys(conn: AsyncConnection) -> list[ApiKey]:
    rows = await conn.execute(select(api_keys).order_by(api_keys.c.created_at))
    return [ApiKey.from_row(r._mapping) for r in rows]


async def count_active(conn: AsyncConnection) -> int:
    rows = await conn.execute(select(api_keys.c.id).where(api_keys.c.revoked_at.is_(None)))
    return len(rows.all())


async def revoke(conn: AsyncConnection, key_id_or_prefix: str, now: datetime) -> int:
    result = await conn.execute(
        update(api_keys)
        .where(
            (api_keys.c.id == key_id_or_prefix) | (api_keys.c.prefix == key_id_or_prefix),
            api_keys.c.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    return result.rowcount
