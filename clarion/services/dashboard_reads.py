"""What the dashboard's pages read beyond the API's services: notifications searched
across users, one notification's whole story, dead letters and retrying them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from clarion.errors import ClarionError, NotFound
from clarion.services.auth import Principal
from clarion.services.clock import as_utc
from clarion.services.deliveries import DeliveryService
from clarion.store import dashboard_reads as store
from clarion.store.db import Database

#: The server's own view: story pages read any user's notification.
_OPERATOR = Principal(kind="api_key", api_key_id="dashboard")


def _iso(value: Any) -> str | None:
    return None if value is None else as_utc(value).isoformat()


class DashboardReads:
    def __init__(self, db: Database, deliveries: DeliveryService) -> None:
        self._db = db
        self._deliveries = deliveries

    async def search(
        self, filters: Mapping[str, Any], before_id: int | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        async with self._db.connect() as conn:
            rows = await store.search_notifications(conn, filters, before_id, limit)
        return [{**dict(r), "created_at": _iso(r["created_at"])} for r in rows]

    async def story(self, notification_id: int) -> dict[str, Any]:
        """The notification, every event, every delivery with its attempts."""
        async with self._db.connect() as conn:
            row = await store.notification(conn, notification_id)
            if row is None:
                raise NotFound("no such notification")
            events = await store.events_of(conn, notification_id)
            origin = await store.origin_of(conn, row.user_id, notification_id)
        deliveries = await self._deliveries.for_notification(_OPERATOR, notification_id)
        note = {f.name: getattr(row, f.name) for f in fields(row)}
        for k in ("created_at", "seen_at", "read_at", "archived_at"):
            note[k] = _iso(note[k])
        rendered: dict[str, dict[str, str]] = {
            "in_app": {"title": row.title, "message": row.message}
        }
        content = row.content if isinstance(row.content, Mapping) else {}
        for part, text in (content.get("rendered") or {}).items():
            channel, _, field = str(part).partition(".")
            rendered.setdefault(channel, {})[field] = str(text)
        return {
            "notification": note,
            "origin": origin,
            "rendered": rendered,
            "events": [
                {
                    "at": _iso(e.created_at),
                    "type": e.type.value,
                    "channel": e.channel,
                    "provider": e.provider,
                    "reason": e.reason,
                    "latency_ms": e.latency_ms,
                    "variant": e.variant,
                }
                for e in events
            ],
            "deliveries": deliveries["deliveries"],
        }

    async def dead_letters(self, filters: Mapping[str, Any], limit: int = 100) -> list[Any]:
        async with self._db.connect() as conn:
            rows = await store.dead_letters(conn, filters, limit)
        return [{**dict(r), "updated_at": _iso(r["updated_at"])} for r in rows]

    async def retry(self, delivery_ids: list[str]) -> dict[str, list[Any]]:
        """Retry each through the delivery service; what happened to each. ``retried``:
        ``{"id", "before", "after"}`` per delivery, the delivery as it was (read just
        before) and as the retry left it, for the audit log."""
        done: list[dict[str, Any]] = []
        failed: list[tuple[str, str]] = []
        for delivery_id in delivery_ids:
            try:
                before = await self._deliveries.get(delivery_id)
                after = await self._deliveries.retry(delivery_id)
                done.append({"id": delivery_id, "before": before, "after": after})
            except ClarionError as exc:
                failed.append((delivery_id, exc.message))
        return {"retried": done, "failed": failed}

    async def users(
        self, prefix: str | None, after: str | None, limit: int = 50
    ) -> list[dict[str, Any]]:
        async with self._db.connect() as conn:
            rows = await store.users_page(conn, prefix, after, limit)
        return [{**dict(r), "created_at": _iso(r["created_at"])} for r in rows]

    async def workers(self) -> list[tuple[str, int]]:
        async with self._db.connect() as conn:
            return await store.workers_now(conn)
