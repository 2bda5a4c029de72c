"""The in-app inbox: listing, counts, and every state change of a notification.

Each change runs in one transaction that first locks the user's row (see
``store.users.lock_marks``), decides from the row's effective state whether the counters
move, and writes the row, the counters and an event together. After commit, listeners
(the realtime hub) hear about it; they never see uncommitted state.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from clarion.domain import cursors
from clarion.domain.events import dimensions, elapsed_ms, event_row
from clarion.domain.inbox_state import NO_MARKS, InboxMarks, effective_times, is_read, is_seen
from clarion.domain.notifications import Notification
from clarion.domain.types import ChannelName, EventType
from clarion.errors import NotFound
from clarion.services.auth import Principal
from clarion.services.clock import as_utc, utcnow
from clarion.store import events as event_store
from clarion.store import inbox as store
from clarion.store import users as user_store
from clarion.store.db import Database

log = logging.getLogger("clarion.inbox")

Action = Literal["read", "unread", "seen", "archive", "unarchive"]


@dataclass(frozen=True)
class Counts:
    user_id: str
    unread: int
    unseen: int

    def to_json(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "unread": self.unread, "unseen": self.unseen}


class InboxListener(Protocol):
    """Told after commit; implementations must not raise (they are hints, the database
    is the truth)."""

    async def notifications_created(self, items: Sequence[dict[str, Any]]) -> None: ...

    async def notification_changed(
        self,
        user_id: str,
        change: str,
        notification: dict[str, Any] | None,
        notification_id: int | None,
        counts: Counts,
    ) -> None: ...


def _iso(value: datetime | None) -> str | None:
    return None if value is None else as_utc(value).isoformat()


def notification_json(row: Mapping[Any, Any], marks: InboxMarks) -> dict[str, Any]:
    """A notification as the API shows it, from its row as a mapping (the inbox's reads
    encode rows directly; see ``store/inbox.py``)."""
    seen_at, read_at = effective_times(
        row["id"], row["seen_at"], row["read_at"], row["forced_unread"], marks
    )
    content = row["content"] or {}
    return {
        "id": row["id"],
        "user_id": row["user_id"],
        "type": row["type"],
        "title": row["title"],
        "message": row["message"],
        "template": row["template"],
        "priority": row["priority"],
        "channels": row["channels"],
        "media": content.get("media"),
        "actions": content.get("actions"),
        "content": content,
        "data": row["data"],
        "group_key": row["group_key"],
        "created_at": _iso(row["created_at"]),
        "seen_at": _iso(seen_at),
        "read_at": _iso(read_at),
        "archived_at": _iso(row["archived_at"]),
        "status": "read" if read_at is not None else "unread",
    }


def encode_cursor(notification_id: int) -> str:
    return cursors.encode("n", notification_id)


def decode_cursor(cursor: str) -> int:
    return cursors.decode_id(cursor)


class InboxService:
    def __init__(self, db: Database) -> None:
        self._db = db
        self.listeners: list[InboxListener] = []

    async def counts(self, user_id: str) -> Counts:
        marks = await user_store.read_marks_fast(self._db, user_id) or NO_MARKS
        return Counts(user_id, marks.unread, marks.unseen)

    async def counts_many(self, user_ids: Sequence[str]) -> dict[str, Counts]:
        async with self._db.connect() as conn:
            rows = await user_store.counts_many(conn, user_ids)
        return {u: Counts(u, *rows.get(u, (0, 0))) for u in user_ids}

    async def page(
        self,
        user_id: str,
        *,
        status: store.ReadFilter = "all",
        archived: store.ArchivedFilter = "false",
        type_: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        before = decode_cursor(cursor) if cursor else None
        marks, rows = await store.read_page(
            self._db,
            user_id,
            status=status,
            archived=archived,
            type_=type_,
            before_id=before,
            limit=limit + 1,
        )
        if marks is None:
            return {"items": [], "next_cursor": None}
        more = len(rows) > limit
        rows = rows[:limit]
        return {
            "items": [notification_json(r, marks) for r in rows],
            "next_cursor": encode_cursor(rows[-1]["id"]) if more else None,
        }

    async def since(self, user_id: str, after_id: int, limit: int = 500) -> list[dict[str, Any]]:
        """Everything after a cursor, oldest first (resume after a reconnect)."""
        async with self._db.connect() as conn:
            marks = await user_store.read_marks(conn, user_id) or NO_MARKS
            rows = await store.newer_than(conn, user_id, after_id, limit)
        return [notification_json(r, marks) for r in rows]

    async def get(self, principal: Principal, notification_id: int) -> dict[str, Any]:
        async with self._db.connect() as conn:
            row = await store.get_row(conn, notification_id)
            if row is None:
                raise NotFound("no such notification")
            owner = str(row["user_id"])
            principal.check_owner(owner)
            marks = await user_store.read_marks(conn, owner) or NO_MARKS
        return notification_json(row, marks)

    async def apply(
        self, principal: Principal, notification_id: int, action: Action
    ) -> dict[str, Any]:
        """read / unread / seen / archive / unarchive; idempotent (repeating changes nothing)."""
        now = utcnow()
        async with self._db.begin() as conn:
            owner, marks, note = await _locked(conn, principal, notification_id)
            values, du, ds, event = _transition(note, marks, action, now)
            if values:
                await store.update_row(conn, notification_id, **values)
            counted = note.inbox and (note.archived_at is None or action == "unarchive")
            if counted and (du or ds):
                await user_store.add_counts(conn, {owner: (du, ds)})
            if event is not None:
                # Seen and read carry how long after acceptance they came (the inbox
                # copy is delivered when the send is accepted).
                timed = event in (EventType.SEEN, EventType.READ)
                await event_store.append(
                    conn,
                    [
                        event_row(
                            event,
                            now,
                            user_id=owner,
                            notification_id=notification_id,
                            dims=dimensions(note),
                            channel=ChannelName.IN_APP,
                            latency_ms=elapsed_ms(note.created_at, now) if timed else None,
                        )
                    ],
                )
            new_marks = await user_store.read_marks(conn, owner)
            updated = await store.get_row(conn, notification_id)
        assert new_marks is not None and updated is not None
        result = notification_json(updated, new_marks)
        if event is not None and note.inbox:
            await self._changed(owner, action, result, notification_id, new_marks)
        return result

    async def read_all(self, user_id: str) -> Counts:
        """Mark every notification of a user read, in O(1) rows: the watermark moves."""
        now = utcnow()
        async with self._db.begin() as conn:
            marks = await user_store.lock_marks(conn, user_id)
            if marks is None:
                return Counts(user_id, 0, 0)
            top = await store.mark_all_read(conn, user_id, marks, now)
            # One event for all of them, its value the number read: a mark-all-read of
            # 200,000 must stay one row (docs/analytics.md, "Mark all read").
            await event_store.append(
                conn,
                [
                    event_row(
                        EventType.READ,
                        now,
                        user_id=user_id,
                        channel=ChannelName.IN_APP,
                        value=float(marks.unread),
                        data={"all": True, "up_to": top, "count": marks.unread},
                    )
                ],
            )
        counts = Counts(user_id, 0, 0)
        await self._notify_changed(user_id, "read_all", None, None, counts)
        return counts

    async def delete(self, principal: Principal, notification_id: int) -> None:
        now = utcnow()
        async with self._db.begin() as conn:
            owner, marks, note = await _locked(conn, principal, notification_id)
            if note.inbox and note.archived_at is None:
                du = -1 if not _read(note, marks) else 0
                ds = -1 if not _seen(note, marks) else 0
                await user_store.add_counts(conn, {owner: (du, ds)})
            await store.delete_row(conn, notification_id)
            await event_store.append(
                conn,
                [
                    event_row(
                        EventType.DELETED,
                        now,
                        user_id=owner,
                        notification_id=notification_id,
                        dims=dimensions(note),
                        channel=ChannelName.IN_APP,
                    )
                ],
            )
            new_marks = await user_store.read_marks(conn, owner)
        assert new_marks is not None
        if note.inbox:
            await self._changed(owner, "deleted", None, notification_id, new_marks)

    async def _changed(
        self,
        user_id: str,
        change: str,
        item: dict[str, Any] | None,
        notification_id: int,
        marks: InboxMarks,
    ) -> None:
        await self._notify_changed(
            user_id, change, item, notification_id, Counts(user_id, marks.unread, marks.unseen)
        )

    async def _notify_changed(
        self,
        user_id: str,
        change: str,
        item: dict[str, Any] | None,
        notification_id: int | None,
        counts: Counts,
    ) -> None:
        for listener in self.listeners:
            try:
                await listener.notification_changed(user_id, change, item, notification_id, counts)
            except Exception:  # a hint lost is recovered by the client's resume
                log.exception("inbox listener failed")


async def _locked(
    conn: AsyncConnection, principal: Principal, notification_id: int
) -> tuple[str, InboxMarks, Notification]:
    """The notification and its user's marks, both locked (user row first, as every
    inbox change does, so that they can never deadlock each other)."""
    owner = await store.owner_of(conn, notification_id)
    if owner is None:
        raise NotFound("no such notification")
    principal.check_owner(owner)
    marks = await user_store.lock_marks(conn, owner)
    row = await store.get(conn, notification_id, for_update=True)
    if marks is None or row is None:
        raise NotFound("no such notification")
    return owner, marks, row


def _read(note: Notification, marks: InboxMarks) -> bool:
    return is_read(note.id, note.read_at, note.forced_unread, marks)


def _seen(note: Notification, marks: InboxMarks) -> bool:
    return is_seen(note.id, note.seen_at, note.read_at, note.forced_unread, marks)


def _transition(
    note: Notification, marks: InboxMarks, action: Action, now: datetime
) -> tuple[dict[str, Any], int, int, EventType | None]:
    """(column values, unread delta, unseen delta, event) for one action on one row.

    Deltas are for a row that counts (in the inbox, not archived); ``archive`` and
    ``unarchive`` move a row out of and into the counts."""
    read, seen = _read(note, marks), _seen(note, marks)
    archived = note.archived_at is not None
    if action == "read":
        if read:
            return {}, 0, 0, None
        values: dict[str, Any] = {"read_at": now, "forced_unread": False}
        if note.seen_at is None:
            values["seen_at"] = now
        return values, -1, (0 if seen else -1), EventType.READ
    if action == "unread":
        if not read:
            return {}, 0, 0, None
        return (
            {"read_at": None, "forced_unread": note.id <= marks.read_watermark},
            1,
            0,
            EventType.UNREAD,
        )
    if action == "seen":
        if seen:
            return {}, 0, 0, None
        return {"seen_at": now}, 0, -1, EventType.SEEN
    if action == "archive":
        if archived:
            return {}, 0, 0, None
        return {"archived_at": now}, (0 if read else -1), (0 if seen else -1), EventType.ARCHIVED
    if not archived:  # unarchive
        return {}, 0, 0, None
    return {"archived_at": None}, (0 if read else 1), (0 if seen else 1), EventType.UNARCHIVED
