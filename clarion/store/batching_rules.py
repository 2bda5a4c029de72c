"""Operator batching rules, one row per notification type (``BatchRule.to_json()``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from clarion.store.dialect import insert_ignore
from clarion.store.schema import batching_rules

b = batching_rules


async def all_rules(conn: AsyncConnection) -> list[Mapping[str, Any]]:
    rows = await conn.execute(select(b.c.rule).order_by(b.c.type))
    return [dict(r.rule) for r in rows]


async def replace_all(
    conn: AsyncConnection, rules: Sequence[Mapping[str, Any]], now: datetime
) -> None:
    """Swap the whole set in the caller's transaction: readers see the old or the new set."""
    await conn.execute(delete(b))
    if rules:
        await conn.execute(
            b.insert(),
            [{"type": r["type"], "rule": dict(r), "updated_at": now} for r in rules],
        )


async def put(conn: AsyncConnection, rule: Mapping[str, Any], now: datetime) -> None:
    type_ = rule["type"]
    await conn.execute(
        insert_ignore(conn, b), [{"type": type_, "rule": dict(rule), "updated_at": now}]
    )
    await conn.execute(update(b).where(b.c.type == type_).values(rule=dict(rule), updated_at=now))


async def remove(conn: AsyncConnection, type_: str) -> bool:
    result = await conn.execute(delete(b).where(b.c.type == type_))
    return bool(result.rowcount)
