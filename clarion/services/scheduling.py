"""Scheduled sends: stored per recipient by ``SendingService.send`` when a request has a
``scheduled_for``; listed, rescheduled and cancelled here; sent when due by
:meth:`SchedulingService.run_due` (the background loop), which writes the notification
with ``SendingService.write`` in the same transaction that marks the row ``sent`` — once,
whatever the number of workers, and nothing is lost by a restart.

At due time the send goes through the whole pipeline as if it had been posted then:
preferences, quiet hours, rate limits and batching apply at *that* moment.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from clarion.domain.holds import ScheduledSend
from clarion.domain.send_command import SendCommand
from clarion.domain.types import ScheduledStatus
from clarion.errors import ClarionError, Conflict, NotFound
from clarion.services.auth import Principal
from clarion.services.clock import as_utc, utcnow
from clarion.services.send_rows import Written
from clarion.services.sending import SendingService, check_schedule
from clarion.store import scheduled as store
from clarion.store.db import Database

log = logging.getLogger("clarion.scheduling")


def scheduled_json(send: ScheduledSend) -> dict[str, Any]:
    cmd = send.command
    return {
        "id": send.id,
        "user_id": send.user_id,
        "scheduled_for": as_utc(send.due_at).isoformat(),
        "status": send.status,
        "cancellation_key": send.cancellation_key,
        "type": cmd.get("type"),
        "title": cmd.get("title"),
        "priority": cmd.get("priority"),
        "channels": cmd.get("channels"),
        "notification_id": send.notification_id,
        "error": send.error,
        "created_at": as_utc(send.created_at).isoformat(),
    }


class SchedulingService:
    def __init__(self, db: Database, sending: SendingService) -> None:
        self._db = db
        self._sending = sending

    async def list(
        self,
        principal: Principal,
        user_id: str | None,
        *,
        status: ScheduledStatus,
        limit: int,
        cursor: str | None,
    ) -> dict[str, Any]:
        if not principal.is_server:
            user_id = principal.scope_user(user_id)
        async with self._db.connect() as conn:
            rows = await store.list_for(
                conn, user_id=user_id, status=status, limit=limit + 1, after=cursor
            )
        more = len(rows) > limit
        rows = rows[:limit]
        return {
            "items": [scheduled_json(r) for r in rows],
            "next_cursor": rows[-1].id if more else None,
        }

    async def get(self, send_id: str) -> dict[str, Any]:
        async with self._db.connect() as conn:
            row = await store.get(conn, send_id)
        if row is None:
            raise NotFound(f"no scheduled send {send_id!r}")
        return scheduled_json(row)

    async def reschedule(self, send_id: str, when: datetime) -> dict[str, Any]:
        now = utcnow()
        check_schedule(when, now)
        async with self._db.begin() as conn:
            row = await store.get(conn, send_id, for_update=True)
            if row is None:
                raise NotFound(f"no scheduled send {send_id!r}")
            if not await store.reschedule(conn, send_id, as_utc(when), now):
                raise Conflict(f"scheduled send {send_id!r} is already {row.status}")
            row = await store.get(conn, send_id)
        assert row is not None
        return scheduled_json(row)

    async def cancel(self, send_id: str) -> None:
        """Cancel one; cancelling a cancelled one again is fine, a sent one is a 409."""
        async with self._db.begin() as conn:
            row = await store.get(conn, send_id, for_update=True)
            if row is None:
                raise NotFound(f"no scheduled send {send_id!r}")
            if row.status == ScheduledStatus.CANCELLED:
                return
            if not await store.cancel(conn, send_id, utcnow()):
                raise Conflict(f"scheduled send {send_id!r} is already {row.status}")

    async def cancel_by_key(self, key: str) -> int:
        async with self._db.begin() as conn:
            return await store.cancel_by_key(conn, key, utcnow())

    async def run_due(self, now: datetime | None = None, *, limit: int = 100) -> int:
        """Send every due scheduled send (up to ``limit``); returns how many were handled."""
        now = now or utcnow()
        written = Written()
        async with self._db.begin() as conn:
            rows = await store.claim_due(conn, now, limit)
            for row in rows:
                cmd = SendCommand.from_json(row.command, (row.user_id,))
                try:
                    content = self._sending.content_of(cmd)
                    plans = await self._sending.planner.plan(cmd, [row.user_id], content, now)
                except ClarionError as exc:  # e.g. its template was deleted meanwhile
                    log.warning("scheduled send %s failed: %s", row.id, exc)
                    await store.set_status(
                        conn, row.id, now=now, status=ScheduledStatus.FAILED, error=str(exc)
                    )
                    continue
                one = await self._sending.write(conn, cmd, plans, now)
                await store.set_status(
                    conn,
                    row.id,
                    now=now,
                    status=ScheduledStatus.SENT,
                    notification_id=one.ids[0] if one.ids else None,
                )
                written.ids.extend(one.ids)
                written.created.extend(one.created)
        await self._sending.notify(written)
        return len(rows)

    async def next_due(self) -> datetime | None:
        async with self._db.connect() as conn:
            value = await store.next_due(conn)
        return None if value is None else as_utc(value)
