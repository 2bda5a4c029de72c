"""Conversions (docs/analytics.md, "Conversions"): the application tells Clarion that a
notification led to the outcome it was sent for (a purchase, a sign-in, a reply).

Reported for a notification, a conversion is recorded once per (notification, name):
repeating the call changes nothing, so an application may retry it freely. Reported for
a user, it is credited to the latest notification the user was sent within
``CLARION_CONVERSION_WINDOW_HOURS``; with none in the window it is kept uncredited (the
user converted without a notification: what an experiment's holdout group measures).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from clarion.domain.conversions import Conversion
from clarion.domain.events import dimensions, elapsed_ms, event_row
from clarion.domain.notifications import Notification
from clarion.domain.types import EventType
from clarion.errors import NotFound
from clarion.services.clock import as_utc, utcnow
from clarion.store import conversions as store
from clarion.store import events as event_store
from clarion.store import experiments as experiment_store
from clarion.store import inbox as inbox_store
from clarion.store.db import Database

DEFAULT_NAME = "conversion"


class ConversionService:
    def __init__(self, db: Database, *, window_hours: float) -> None:
        self._db = db
        self.window = timedelta(hours=window_hours)

    async def for_notification(
        self, notification_id: int, name: str | None, value: float | None
    ) -> tuple[dict[str, Any], bool]:
        """Record it; returns the conversion and whether it is new."""
        async with self._db.begin() as conn:
            note = await inbox_store.get(conn, notification_id)
            if note is None:
                raise NotFound("no such notification")
            return await self._record(conn, note, note.user_id, name, value)

    async def for_user(
        self, user_id: str, name: str | None, value: float | None
    ) -> tuple[dict[str, Any], bool]:
        now = utcnow()
        async with self._db.begin() as conn:
            note = await store.latest_notification(conn, user_id, now - self.window)
            return await self._record(conn, note, user_id, name, value)

    async def _record(
        self,
        conn: Any,
        note: Notification | None,
        user_id: str,
        name: str | None,
        value: float | None,
    ) -> tuple[dict[str, Any], bool]:
        now = utcnow()
        name = name or DEFAULT_NAME
        nid = None if note is None else note.id
        made = Conversion(nid, user_id, name, value, now)
        new = await store.record(conn, made)
        if not new and nid is not None:
            kept = await store.existing(conn, nid, name)
            assert kept is not None
            return _json(kept), False
        dims = dimensions(note)
        if note is None:
            # Credited to no notification: to the user's latest experiment assignment
            # (a holdout user converting is what measures the lift over sending nothing).
            latest = await experiment_store.latest_assignment(conn, user_id)
            if latest is not None:
                dims = {**dims, "experiment": latest.experiment_id, "variant": latest.variant}
        await event_store.append(
            conn,
            [
                event_row(
                    EventType.CONVERTED,
                    now,
                    user_id=user_id,
                    notification_id=nid,
                    dims=dims,
                    latency_ms=None if note is None else elapsed_ms(note.created_at, now),
                    value=value,
                    data={"name": name},
                )
            ],
        )
        return _json(made), True


def _json(c: Conversion) -> dict[str, Any]:
    return {
        "notification_id": c.notification_id,
        "user_id": c.user_id,
        "name": c.name,
        "value": c.value,
        "created_at": as_utc(c.created_at).isoformat(),
        "attributed": c.attributed,
    }
