"""Webhook endpoints: where ``webhook`` deliveries go."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from clarion.domain.recipients import WebhookEndpoint
from clarion.store.dialect import one_of, one_of_param
from clarion.store.schema import webhook_endpoints


async def add_endpoint(conn: AsyncConnection, endpoint: WebhookEndpoint) -> None:
    values = {c.name: getattr(endpoint, c.name) for c in webhook_endpoints.c}
    await conn.execute(webhook_endpoints.insert().values(**values))


async def endpoint(conn: AsyncConnection, endpoint_id: str) -> WebhookEndpoint | None:
    stmt = select(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)
    row = (await conn.execute(stmt)).first()
    return None if row is None else WebhookEndpoint.from_row(row._mapping)


async def endpoints_by_id(conn: AsyncConnection, ids: Iterable[str]) -> dict[str, WebhookEndpoint]:
    wanted = list(set(ids))
    if not wanted:
        return {}
    stmt = select(webhook_endpoints).where(one_of(conn, webhook_endpoints.c.id, wanted))
    return {r.id: WebhookEndpoint.from_row(r._mapping) for r in await conn.execute(stmt)}


async def all_endpoints(conn: AsyncConnection) -> list[WebhookEndpoint]:
    stmt = select(webhook_endpoints).order_by(
        webhook_endpoints.c.created_at, webhook_endpoints.c.id
    )
    return [WebhookEndpoint.from_row(r._mapping) for r in await conn.execute(stmt)]


async def enabled_endpoints_for(conn: AsyncConnection, user_id: str) -> list[WebhookEndpoint]:
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
    return [WebhookEndpoint.from_row(r._mapping) for r in await conn.execute(stmt)]


async def enabled_endpoints_for_users(
    conn: AsyncConnection, user_ids: Iterable[str]
) -> dict[str, list[WebhookEndpoint]]:
    """``enabled_endpoints_for`` for many users in one query (one per claimed batch
    instead of one per delivery); every user gets a list, in endpoint order."""
    wanted = sorted(set(user_ids))
    out: dict[str, list[WebhookEndpoint]] = {u: [] for u in wanted}
    if not wanted:
        return out
    result = await conn.execute(_enabled_for_users(conn.dialect.name), {"e_users": wanted})
    for row in result:
        endpoint = WebhookEndpoint.from_row(row._mapping)
        for user in wanted if endpoint.user_id is None else (endpoint.user_id,):
            out[user].append(endpoint)
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
