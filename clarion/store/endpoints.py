"""Where deliveries go and what happened to them: webhook endpoints, push subscriptions,
channel opt-outs (one-click unsubscribe) and the attempt log."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, tuple_, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from clarion.store.dialect import insert_ignore, one_of, one_of_param
from clarion.store.schema import (
    channel_opt_outs,
    delivery_attempts,
    push_subscriptions,
    webhook_endpoints,
)

# --- attempts -----------------------------------------------------------------------------


async def add_attempts(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    if rows:
        await conn.execute(delivery_attempts.insert(), list(rows))


async def attempts_for(
    conn: AsyncConnection, delivery_ids: Sequence[str]
) -> dict[str, list[RowMapping]]:
    out: dict[str, list[RowMapping]] = {d: [] for d in delivery_ids}
    if not delivery_ids:
        return out
    stmt = (
        select(delivery_attempts)
        .where(delivery_attempts.c.delivery_id.in_(list(delivery_ids)))
        .order_by(delivery_attempts.c.delivery_id, delivery_attempts.c.id)
    )
    for row in await conn.execute(stmt):
        out[row.delivery_id].append(row._mapping)
    return out


# --- webhook endpoints ----------------------------------------------------------------------


async def add_endpoint(conn: AsyncConnection, values: Mapping[str, Any]) -> None:
    await conn.execute(webhook_endpoints.insert().values(**values))


async def endpoint(conn: AsyncConnection, endpoint_id: str) -> RowMapping | None:
    stmt = select(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)
    row = (await conn.execute(stmt)).first()
    return None if row is None else row._mapping


async def endpoints_by_id(conn: AsyncConnection, ids: Iterable[str]) -> dict[str, RowMapping]:
    wanted = list(set(ids))
    if not wanted:
        return {}
    stmt = select(webhook_endpoints).where(one_of(conn, webhook_endpoints.c.id, wanted))
    return {r.id: r._mapping for r in await conn.execute(stmt)}


async def all_endpoints(conn: AsyncConnection) -> list[RowMapping]:
    stmt = select(webhook_endpoints).order_by(
        webhook_endpoints.c.created_at, webhook_endpoints.c.id
    )
    return [r._mapping for r in await conn.execute(stmt)]


async def enabled_endpoints_for(conn: AsyncConnection, user_id: str) -> list[RowMapping]:
    """Enabled endpoints for every user or this one; the type filter is applied by the
    caller (a JSON list does not index portably)."""
    stmt = (
        select(webhook_endpoints)
        .where(
            webhook_endpoints.c.enabled.is_(True),
            (webhook_endpoints.c.user_id.is_(None)) | (webhook_endpoints.c.user_id == user_id),
        )
        .order_by(webhook_endpoints.c.created_at, webhook_endpoints.c.id)
    )
    return [r._mapping for r in await conn.execute(stmt)]


async def enabled_endpoints_for_users(
    conn: AsyncConnection, user_ids: Iterable[str]
) -> dict[str, list[RowMapping]]:
    """``enabled_endpoints_for`` for many users in one query (one per claimed batch
    instead of one per delivery); every user gets a list, in endpoint order."""
    wanted = sorted(set(user_ids))
    out: dict[str, list[RowMapping]] = {u: [] for u in wanted}
    if not wanted:
        return out
    result = await conn.execute(_enabled_for_users(conn.dialect.name), {"e_users": wanted})
    for row in result:
        owner = row.user_id
        for user in wanted if owner is None else (owner,):
            out[user].append(row._mapping)
    return out


@functools.cache
def _enabled_for_users(dialect: str) -> Any:
    """Built once, users bound at execution: the worker runs it on every claim (a new
    statement object costs SQLAlchemy a cache-key walk per execution)."""
    return (
        select(webhook_endpoints)
        .where(
            webhook_endpoints.c.enabled.is_(True),
            (webhook_endpoints.c.user_id.is_(None))
            | one_of_param(dialect, webhook_endpoints.c.user_id, "e_users"),
        )
        .order_by(webhook_endpoints.c.created_at, webhook_endpoints.c.id)
    )


async def delete_endpoint(conn: AsyncConnection, endpoint_id: str) -> bool:
    result = await conn.execute(
        delete(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)
    )
    return bool(result.rowcount)


async def disable_endpoint(
    conn: AsyncConnection, endpoint_id: str, reason: str, now: datetime
) -> None:
    await conn.execute(
        update(webhook_endpoints)
        .where(webhook_endpoints.c.id == endpoint_id)
        .values(enabled=False, disabled_reason=reason[:200], updated_at=now)
    )


# --- push subscriptions ---------------------------------------------------------------------


async def upsert_subscription(conn: AsyncConnection, values: Mapping[str, Any]) -> RowMapping:
    """One row per (user, endpoint): a browser re-subscribing refreshes its keys."""
    await conn.execute(
        delete(push_subscriptions).where(
            push_subscriptions.c.user_id == values["user_id"],
            push_subscriptions.c.endpoint == values["endpoint"],
        )
    )
    await conn.execute(push_subscriptions.insert().values(**values))
    row = (
        await conn.execute(
            select(push_subscriptions).where(push_subscriptions.c.id == values["id"])
        )
    ).one()
    return row._mapping


async def subscriptions_for(
    conn: AsyncConnection, user_ids: Iterable[str]
) -> dict[str, list[RowMapping]]:
    wanted = list(set(user_ids))
    out: dict[str, list[RowMapping]] = {u: [] for u in wanted}
    if not wanted:
        return out
    stmt = (
        select(push_subscriptions)
        .where(push_subscriptions.c.user_id.in_(wanted))
        .order_by(push_subscriptions.c.created_at, push_subscriptions.c.id)
    )
    for row in await conn.execute(stmt):
        out[row.user_id].append(row._mapping)
    return out


async def delete_subscription(conn: AsyncConnection, user_id: str, subscription_id: str) -> bool:
    result = await conn.execute(
        delete(push_subscriptions).where(
            push_subscriptions.c.user_id == user_id, push_subscriptions.c.id == subscription_id
        )
    )
    return bool(result.rowcount)


async def delete_subscriptions_by_endpoint(
    conn: AsyncConnection, user_id: str, endpoints: Sequence[str]
) -> int:
    if not endpoints:
        return 0
    result = await conn.execute(
        delete(push_subscriptions).where(
            push_subscriptions.c.user_id == user_id,
            push_subscriptions.c.endpoint.in_(list(endpoints)),
        )
    )
    return int(result.rowcount or 0)


# --- opt-outs -------------------------------------------------------------------------------


async def add_opt_out(
    conn: AsyncConnection, user_id: str, type: str, channel: str, now: datetime
) -> None:
    row = {"user_id": user_id, "type": type, "channel": channel, "created_at": now}
    await conn.execute(insert_ignore(conn, channel_opt_outs), [row])


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
