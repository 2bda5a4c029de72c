"""Channel digests (``rate_limit_overflow = "digest"``, docs/preferences.md): deliveries
held over a user's per-channel rate limit wait in the open ``channel_digests`` row of
(user, channel); :meth:`ChannelDigestService.flush_channel_digests` claims due rows
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the write lock on SQLite) and, in that
transaction, releases the most recent held delivery carrying the fold of all of them
(``deliveries.content``) and marks the others ``suppressed`` with reason ``batched`` and an
event naming the delivery that carried them. Not to be confused with batches
(services/batches.py), which fold notifications before they are written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from clarion.domain.deliveries import ChannelDigest
from clarion.domain.events import dimensions, event_row
from clarion.domain.folding import Actor, BatchItem
from clarion.domain.types import EventType, SuppressionReason
from clarion.services.batches import digest_content
from clarion.services.clock import as_utc, utcnow
from clarion.services.send_rows import actor_of
from clarion.store import channel_digests as digest_store
from clarion.store import events as event_store
from clarion.store import outbox
from clarion.store import users as user_store
from clarion.store.db import Database

log = logging.getLogger("clarion.channel_digests")


class ChannelDigestService:
    def __init__(self, db: Database) -> None:
        self._db = db
        #: Called after a release commits (the embedded worker's wake-up).
        self.release_callbacks: list[Callable[[], None]] = []

    async def flush_channel_digests(self, now: datetime | None = None, *, limit: int = 50) -> int:
        """Release every due channel digest (up to ``limit``): ONE delivery per digest
        carries the fold of everything held, the rest are ``batched`` into it — in one
        transaction under the digest rows' locks, so each is released exactly once."""
        now = now or utcnow()
        async with self._db.begin() as conn:
            rows = await digest_store.claim_due(conn, now, limit)
            for row in rows:
                await self._release(conn, row, now)
        if rows:
            for wake in self.release_callbacks:
                wake()
        return len(rows)

    async def _release(self, conn: AsyncConnection, digest: ChannelDigest, now: datetime) -> None:
        held = await digest_store.held(conn, digest.id)
        if not held:
            await digest_store.close(conn, digest.id, now, None)
            return
        notes = await outbox.notifications_by_id(conn, [h.notification_id for h in held])
        profile = await user_store.get(conn, digest.user_id)
        locale = (profile.locale if profile is not None else None) or "en"
        items, types = [], set()
        for h in held:
            n = notes.get(h.notification_id)
            if n is None:  # deleted meanwhile: cascades remove its delivery too
                continue
            actor = actor_of(n.data)
            types.add(n.type)
            items.append(
                BatchItem(
                    notification_id=str(n.id),
                    title=n.title,
                    message=n.message or "",
                    created_at=as_utc(n.created_at),
                    actor=None if actor is None else Actor(**actor),
                    data=n.data,
                )
            )
        leader = held[-1]  # the most recent: its notification is the latest item
        others = [h.id for h in held[:-1]]
        content = None
        if len(items) > 1:
            content = {
                **digest_content(items, types, locale),
                "channel_digest_id": digest.id,
                "delivery_ids": [h.id for h in held],
            }
        await digest_store.release(conn, leader.id, others, content, now)
        await digest_store.close(conn, digest.id, now, leader.id)
        await event_store.append(
            conn,
            [
                event_row(
                    EventType.SUPPRESSED,
                    now,
                    user_id=h.user_id,
                    notification_id=h.notification_id,
                    dims=dimensions(notes.get(h.notification_id)),
                    channel=h.channel,
                    reason=SuppressionReason.BATCHED,
                    data={
                        "delivery_id": h.id,
                        "digest_delivery_id": leader.id,
                        "channel_digest_id": digest.id,
                    },
                )
                for h in held[:-1]
            ],
        )
        log.info(
            "channel digest %s (%s/%s) released: %d held -> delivery %s",
            digest.id,
            digest.user_id,
            digest.channel,
            len(held),
            leader.id,
        )
