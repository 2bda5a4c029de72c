"""``Idempotency-Key`` handling: the same key and body replays the first response and
creates nothing; the same key with another body is refused. Keys are scoped to the API key
that used them and expire after ``idempotency_ttl_seconds``.

The key is claimed INSIDE the transaction that writes the send (:meth:`claim_in`), never
on its own: a crash or a database outage before that commit leaves no record behind, so a
retry runs at once instead of finding a claim whose owner is gone. Two sends racing with
the same key both reach the database; the second one's claim waits for the first one's
transaction (PostgreSQL's unique index; SQLite has one writer), then finds its answer and
replays it. :meth:`lookup` is only a read before the send queues, so that a replay does
not wait behind other sends.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from clarion.domain.idempotency import IdempotencyRecord
from clarion.errors import IdempotencyInProgress, IdempotencyKeyReused, ValidationFailed
from clarion.services.clock import as_utc, utcnow
from clarion.store import idempotency as store
from clarion.store.db import Database

# Records with no response (``status_code`` NULL) are claims committed apart from their
# send, which only earlier versions made; one this old belonged to a request that is gone
# (crashed, or its database went away) and is taken over. Younger ones may still belong to
# a running request of an older node during a rolling upgrade: 409 with Retry-After.
STALE_AFTER = timedelta(seconds=5)
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class IdempotencyRequest:
    api_key_id: str
    key: str
    request_hash: str

    @classmethod
    def build(cls, api_key_id: str, key: str, body: Any) -> IdempotencyRequest:
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            raise ValidationFailed(
                f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} printable characters",
                [{"field": "Idempotency-Key"}],
            )
        canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
        return cls(api_key_id, key, hashlib.sha256(canonical).hexdigest())


@dataclass(frozen=True)
class Replay:
    status_code: int
    body: Any


class IdempotencyService:
    def __init__(self, db: Database, ttl_seconds: int) -> None:
        self._db = db
        self._ttl = timedelta(seconds=ttl_seconds)

    async def lookup(self, req: IdempotencyRequest) -> Replay | None:
        """Before the send is queued: the stored response to replay, if there is one.
        Claims nothing (see :meth:`claim_in`); refuses a reused key or a live claim."""
        async with self._db.connect() as conn:
            row = await store.get(conn, req.api_key_id, req.key)
        if row is None:
            return None
        return self._judge(row, req, utcnow(), take_over=True)

    async def claim_in(self, conn: AsyncConnection, req: IdempotencyRequest, now: datetime) -> bool:
        """Inside the send's transaction: True when this send now owns the key (it must
        :func:`~clarion.store.idempotency.complete` it before committing); False when a
        send holding the key committed first, or does so in this same transaction: the
        caller answers with :meth:`answer_in` after its own writes."""
        if await store.claim(conn, req.api_key_id, req.key, req.request_hash, now):
            return True
        row = await store.get(conn, req.api_key_id, req.key)
        if row is None:  # purged between our insert and read: claim again
            return await store.claim(conn, req.api_key_id, req.key, req.request_hash, now)
        if self._expired(row, now):
            await store.release(conn, req.api_key_id, req.key)
            return await store.claim(conn, req.api_key_id, req.key, req.request_hash, now)
        if row.status_code is None and row.request_hash == req.request_hash:
            # A claim left by an older node (see STALE_AFTER); a claim made in this same
            # transaction is younger than that and stays with its send.
            return await store.take_over(
                conn, req.api_key_id, req.key, req.request_hash, now - STALE_AFTER, now
            )
        return False

    async def answer_in(
        self, conn: AsyncConnection, req: IdempotencyRequest, now: datetime
    ) -> Replay:
        """For a send whose :meth:`claim_in` lost: the response of the send that owns the
        key (committed, or completed earlier in this transaction), or the refusal."""
        row = await store.get(conn, req.api_key_id, req.key)
        if row is None:  # cannot happen: the claim lost to a row; answer as if in progress
            raise IdempotencyInProgress(
                "a request with this Idempotency-Key is still being processed", retry_after=1
            )
        replay = self._judge(row, req, now, take_over=False)
        assert replay is not None
        return replay

    def _expired(self, row: IdempotencyRecord, now: datetime) -> bool:
        return as_utc(row.created_at) < now - self._ttl

    def _judge(
        self, row: IdempotencyRecord, req: IdempotencyRequest, now: datetime, *, take_over: bool
    ) -> Replay | None:
        """The answer a stored record gives: a replay, a refusal, or ``None`` when this
        request may run (the record expired, or is a claim stale enough to take over)."""
        if self._expired(row, now):
            return None
        if row.request_hash != req.request_hash:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was used with a different request body"
            )
        if row.status_code is None:
            stale_at = as_utc(row.created_at) + STALE_AFTER
            if take_over and stale_at <= now:
                return None
            raise IdempotencyInProgress(
                "a request with this Idempotency-Key is still being processed",
                retry_after=max(1, math.ceil((stale_at - now).total_seconds())),
            )
        return Replay(row.status_code, row.response)

    async def purge_expired(self) -> int:
        async with self._db.begin() as conn:
            return await store.purge(conn, utcnow() - self._ttl)
