"""Accepting notifications: recipients -> rows, in ONE transaction with the outbox.

``POST /notifications`` ends here. The notification rows, one delivery row per non-inbox
channel (the outbox the workers drain), the unread counters and the ``accepted`` events
commit together, so an accepted notification can never be half-written; listeners (live
inbox pushes, worker wake-ups) hear about it only after the commit.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from clarion.domain.content import validate_content
from clarion.domain.types import ChannelName, EventType, Priority, TemplateKind
from clarion.errors import ValidationFailed
from clarion.metrics import NOTIFICATIONS_ACCEPTED
from clarion.services.clock import utcnow
from clarion.services.idempotency import IdempotencyRequest, IdempotencyService
from clarion.services.inbox import InboxListener, notification_json
from clarion.store import deliveries as delivery_store
from clarion.store import events as event_store
from clarion.store import idempotency as idem_store
from clarion.store import inbox as inbox_store
from clarion.store import users as user_store
from clarion.store.db import Database
from clarion.store.users import InboxMarks

log = logging.getLogger("clarion.sending")
_FRESH = InboxMarks(0, 0, 0, 0, None, None)


@dataclass(frozen=True)
class SendCommand:
    user_ids: tuple[str, ...]
    type: str
    title: str
    message: str = ""
    template: TemplateKind = TemplateKind.SIMPLE
    priority: Priority = Priority.NORMAL
    channels: tuple[ChannelName, ...] = (ChannelName.IN_APP,)
    media: Mapping[str, Any] | None = None
    actions: Sequence[Mapping[str, Any]] | None = None
    content: Mapping[str, Any] | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    group_key: str | None = None


@dataclass(frozen=True)
class Accepted:
    status_code: int
    body: dict[str, Any]
    replayed: bool = False


class SendingService:
    def __init__(
        self, db: Database, idempotency: IdempotencyService, *, max_recipients: int
    ) -> None:
        self._db = db
        self._idem = idempotency
        self._max_recipients = max_recipients
        self.listeners: list[InboxListener] = []

    async def send(
        self, cmd: SendCommand, idempotency: IdempotencyRequest | None = None
    ) -> Accepted:
        user_ids = list(dict.fromkeys(cmd.user_ids))  # de-duplicated, order kept
        if not user_ids:
            raise ValidationFailed("no recipients", [{"field": "user_ids"}])
        if len(user_ids) > self._max_recipients:
            raise ValidationFailed(
                f"at most {self._max_recipients} recipients per request",
                [{"field": "user_ids", "problem": "too_many"}],
            )
        content = validate_content(
            cmd.template,
            title=cmd.title,
            message=cmd.message,
            media=cmd.media,
            actions=cmd.actions,
            extra=cmd.content,
        )
        if idempotency is not None:
            replay = await self._idem.begin(idempotency)
            if replay is not None:
                return Accepted(replay.status_code, replay.body, replayed=True)
        try:
            body, created = await self._commit(cmd, user_ids, content, idempotency)
        except BaseException:
            if idempotency is not None:
                await self._idem.release(idempotency)
            raise
        NOTIFICATIONS_ACCEPTED.labels(cmd.type).inc(len(created))
        for listener in self.listeners:
            try:
                await listener.notifications_created(created)
            except Exception:  # hints only: clients resume from the database
                log.exception("listener failed after commit")
        return Accepted(202, body)

    async def _commit(
        self,
        cmd: SendCommand,
        user_ids: list[str],
        content: dict[str, Any],
        idempotency: IdempotencyRequest | None,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        now = utcnow()
        inbox = ChannelName.IN_APP in cmd.channels
        channels = [str(c) for c in cmd.channels]
        rows = [
            {
                "user_id": uid,
                "type": cmd.type,
                "title": cmd.title,
                "message": cmd.message,
                "template": str(cmd.template),
                "priority": str(cmd.priority),
                "channels": channels,
                "content": content,
                "data": dict(cmd.data),
                "group_key": cmd.group_key,
                "created_at": now,
                "forced_unread": False,
                "inbox": inbox,
            }
            for uid in user_ids
        ]
        async with self._db.begin() as conn:
            await user_store.ensure(conn, sorted(user_ids), now)
            if inbox:
                # Lock the users (by counting) BEFORE the ids are drawn: a concurrent
                # mark-all-read then cannot move the watermark past an id not yet committed.
                await user_store.add_counts(conn, {u: (1, 1) for u in user_ids})
            ids = await inbox_store.insert(conn, rows)
            await delivery_store.insert(
                conn,
                [
                    {
                        "id": str(uuid.uuid4()),
                        "notification_id": nid,
                        "user_id": row["user_id"],
                        "channel": ch,
                        "status": "pending",
                        "priority": cmd.priority.rank,
                        "attempts": 0,
                        "next_attempt_at": now,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for nid, row in zip(ids, rows, strict=True)
                    for ch in channels
                    if ch != ChannelName.IN_APP
                ],
            )
            await event_store.append(
                conn,
                [
                    {
                        "type": EventType.ACCEPTED,
                        "notification_id": nid,
                        "user_id": row["user_id"],
                        "channel": None,
                        "data": {"type": cmd.type},
                        "created_at": now,
                    }
                    for nid, row in zip(ids, rows, strict=True)
                ],
            )
            body: dict[str, Any] = {"ids": ids, "accepted": len(ids)}
            if idempotency is not None:
                await idem_store.complete(conn, idempotency.api_key_id, idempotency.key, 202, body)
        created = [
            notification_json(
                {**row, "id": nid, "seen_at": None, "read_at": None, "archived_at": None}, _FRESH
            )
            for nid, row in zip(ids, rows, strict=True)
        ]
        return body, created
