"""Web push subscriptions: a browser's endpoint and keys, per user."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from clarion.domain.recipients import WebPushSubscription
from clarion.store.schema import push_subscriptions


async def upsert_subscription(
    conn: AsyncConnection, sub: WebPushSubscription
) -> WebPushSubscription:
    """One row per (user, endpoint): a browser re-subscribing refreshes its keys."""
    await conn.execute(
        delete(push_subscriptions).where(
            push_subscriptions.c.user_id == sub.user_id,
            push_subscriptions.c.endpoint == sub.endpoint,
        )
    )
    values = {c.name: getattr(sub, c.name) for c in push_subscriptions.c}
    await conn.execute(push_subscriptions.insert().values(**values))
    row = (
        await conn.execute(select(push_subscriptions).where(push_subscriptions.c.id == sub.id))
    ).one()
    return WebPushSubscription.from_row(row._mapping)


async def subscriptions_for(
    conn: AsyncConnection, user_ids: Iterable[str]
) -> dict[str, list[WebPushSubscription]]:
    wanted = list(set(user_ids))
    out: dict[str, list[WebPushSubscription]] = {u: [] for u in wanted}
    if not wanted:
        return out
    stmt = (
        select(push_subscriptions)
        .where(push_subscriptions.c.user_id.in_(wanted))
        .order_by(push_subscriptions.c.created_at, push_subscriptions.c.id)
    )
    for row in await conn.execute(stmt):
        out[row.user_id].append(WebPushSubscription.from_row(row._mapping))
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
