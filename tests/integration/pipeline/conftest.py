"""Helpers for the send pipeline tests (both backends, real services, no mocks)."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from clarion.services.container import Services
from clarion.store.schema import events


async def post(authed: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"user_id": "u1", "type": "follow", "title": "Ana followed you"}
    payload.update(body)
    r = await authed.post("/api/v1/notifications", json=payload)
    assert r.status_code == 202, r.text
    out: dict[str, Any] = r.json()
    return out


async def deliveries(authed: httpx.AsyncClient, nid: int) -> dict[str, dict[str, Any]]:
    r = await authed.get(f"/api/v1/notifications/{nid}/deliveries")
    assert r.status_code == 200, r.text
    return {d["channel"]: d for d in r.json()["deliveries"]}


async def suppressed_events(services: Services, kind: str = "suppressed") -> list[dict[str, Any]]:
    """The events of ``kind`` (``suppressed`` or ``held``), oldest first."""
    async with services.db.connect() as conn:
        rows = await conn.execute(select(events).where(events.c.type == kind).order_by(events.c.id))
        return [dict(r._mapping) for r in rows]
