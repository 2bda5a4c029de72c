"""``Idempotency-Key`` handling: the same key and body replays the first response and
creates nothing; the same key with another body is refused; a duplicate that arrives while
the first is still running gets 409. Keys are scoped to the API key that used them and
expire after ``idempotency_ttl_seconds``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson

from clarion.errors import IdempotencyInProgress, IdempotencyKeyReused, ValidationFailed
from clarion.services.clock import as_utc, utcnow
from clarion.store import idempotency as store
from clarion.store.db import Database

# An in-progress record older than this belonged to a process that died mid-request.
STALE_AFTER = timedelta(seconds=60)
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

    async def begin(self, req: IdempotencyRequest) -> Replay | None:
        """Claim the key, or return the stored response to replay."""
        now = utcnow()
        async with self._db.begin() as conn:
            if await store.claim(conn, req.api_key_id, req.key, req.request_hash, now):
                return None
            row = await store.get(conn, req.api_key_id, req.key)
            if row is None:  # released between our insert and read: claim again
                await store.claim(conn, req.api_key_id, req.key, req.request_hash, now)
                return None
            if as_utc(row["created_at"]) < now - self._ttl:
                await store.release(conn, req.api_key_id, req.key)
                await store.claim(conn, req.api_key_id, req.key, req.request_hash, now)
                return None
            if row["request_hash"] != req.request_hash:
                raise IdempotencyKeyReused(
                    "this Idempotency-Key was used with a different request body"
                )
            if row["status_code"] is None:
                if await store.take_over(
                    conn, req.api_key_id, req.key, req.request_hash, now - STALE_AFTER, now
                ):
                    return None
                raise IdempotencyInProgress(
                    "a request with this Idempotency-Key is still being processed"
                )
            return Replay(int(row["status_code"]), row["response"])

    async def release(self, req: IdempotencyRequest) -> None:
        """The request failed: free the key so that a retry can run."""
        async with self._db.begin() as conn:
            await store.release(conn, req.api_key_id, req.key)

    async def purge_expired(self) -> int:
        async with self._db.begin() as conn:
            return await store.purge(conn, utcnow() - self._ttl)
