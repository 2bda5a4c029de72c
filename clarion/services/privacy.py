"""A user's data: export everything Clarion holds about one user, or erase it.

Both walk the user's rows in bounded steps (``CLARION_PRIVACY_BATCH_SIZE`` rows, 1,000 by
default), each in a short transaction or read of its own, so a user with 200,000
notifications never holds one long transaction, and sends to other users (and on SQLite,
every writer) wait at most one step. Neither publishes anything to live clients.

Erasure deletes the user's profile, notifications with their deliveries and attempts,
push subscriptions, preferences, channel opt-outs, scheduled sends, batches with their
items, channel digests and the webhook endpoints that receive this user's notifications
only; events are kept for aggregate counts with the user id replaced by a pseudonym,
``erased:<32 hex digits>``: an HMAC of the user id under a key derived from the secret key.
The same user always gets the same pseudonym (counts of distinct users stay right, and a
second erasure changes nothing), and it cannot be turned back into the id without the
secret key. Erasing is idempotent: a user with nothing left is a no-op.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from clarion.domain.inbox_state import NO_MARKS, InboxMarks
from clarion.errors import NotFound
from clarion.services.clock import as_utc, utcnow
from clarion.services.inbox import notification_json
from clarion.store import privacy as store
from clarion.store import users as user_store
from clarion.store.db import Database
from clarion.store.schema import batches, channel_digests, events, scheduled_sends

log = logging.getLogger("clarion.privacy")

PSEUDONYM_PREFIX = "erased:"
_PSEUDONYM_CONTEXT = b"clarion erased-user pseudonym\x00"

# Never exported: an operator's signing secret is not data about the user.
_HIDDEN = {"webhook_endpoints": frozenset({"secret"})}


@dataclass(frozen=True)
class Erasure:
    """What one erasure did: rows per table (events: anonymised), and the transactions it
    took (one per bounded step)."""

    user_id: str
    pseudonym: str
    rows: Mapping[str, int] = field(default_factory=dict)
    transactions: int = 0


class PrivacyService:
    def __init__(self, db: Database, secret: str, batch_size: int) -> None:
        self._db = db
        self._key = hashlib.sha256(_PSEUDONYM_CONTEXT + secret.encode()).digest()
        self._batch_size = batch_size

    def pseudonym(self, user_id: str) -> str:
        digest = hmac.new(self._key, user_id.encode(), hashlib.sha256).hexdigest()
        return PSEUDONYM_PREFIX + digest[:32]

    # --- erasure ------------------------------------------------------------------------
    async def erase(self, user_id: str, *, batch_size: int | None = None) -> Erasure:
        """Erase everything held about ``user_id`` (see the module's docstring). Each step
        is a transaction of at most ``batch_size`` rows of one table; a step that finds
        nothing ends that table's loop."""
        limit = batch_size or self._batch_size
        pseudonym = self.pseudonym(user_id)
        rows: Counter[str] = Counter()
        transactions = 0

        async def step(work: Callable[[AsyncConnection], Awaitable[dict[str, int]]]) -> bool:
            nonlocal transactions
            async with self._db.begin() as conn:
                done = await work(conn)
            transactions += 1
            rows.update(done)
            return bool(done)

        # What sends reach first goes first: push and webhook targets, then future sends.
        await step(lambda c: store.erase_small(c, user_id))
        while await step(lambda c: store.erase_by_user(c, scheduled_sends, user_id, limit)):
            pass
        while await step(lambda c: store.erase_batches(c, user_id, limit)):
            pass
        while await step(lambda c: store.erase_by_user(c, channel_digests, user_id, limit)):
            pass
        while await step(lambda c: store.erase_notifications(c, user_id, limit)):
            pass
        while await step(lambda c: store.anonymise_events(c, user_id, pseudonym, limit)):
            pass
        await step(lambda c: store.erase_profile(c, user_id))
        result = Erasure(user_id, pseudonym, dict(rows), transactions)
        # The log names the pseudonym, not the erased id.
        log.info("erased user %s: %s in %d transactions", pseudonym, dict(rows), transactions)
        return result

    async def held(self, user_id: str) -> dict[str, Any] | None:
        """What an erasure is about to remove, for the audit log's "before": which profile
        fields were set and the inbox counts, not their values (the audit log outlives
        the erasure and must not keep the contact details it erased). None: no profile."""
        async with self._db.connect() as conn:
            profile = await user_store.get(conn, user_id)
        if profile is None:
            return None
        fields = ("email", "phone", "name", "locale", "timezone")
        return {
            "user_id": user_id,
            "fields_set": [f for f in fields if getattr(profile, f)],
            "data_keys": sorted(profile.data),
            "created_at": as_utc(profile.created_at).isoformat(),
        }

    # --- export -------------------------------------------------------------------------
    async def export(self, user_id: str, *, batch_size: int | None = None) -> AsyncIterator[bytes]:
        """Everything held about ``user_id`` as one JSON document, in pieces: the small
        parts first, then notifications (each with its deliveries and their attempts),
        then events, read page by page. :class:`NotFound` (before any piece) when no table
        holds anything of the user.

        Rows are exported as mappings, every column of each table: the export promises
        all that is held, so a column added later is in it without a change here."""
        limit = batch_size or self._batch_size
        async with self._db.connect() as conn:
            if not await store.holds_anything(conn, user_id):
                raise NotFound(f"Clarion holds no data about user {user_id!r}")
            profile = await store.profile(conn, user_id)
            marks = await user_store.read_marks(conn, user_id) or NO_MARKS
            small = await store.small_tables(conn, user_id)
        return self._pieces(user_id, profile, marks, small, limit)

    async def export_document(self, user_id: str, *, batch_size: int | None = None) -> Any:
        """:meth:`export` parsed whole (the CLI and tests; the API streams it)."""
        pieces = [p async for p in await self.export(user_id, batch_size=batch_size)]
        return orjson.loads(b"".join(pieces))

    async def _pieces(
        self,
        user_id: str,
        profile: Mapping[Any, Any] | None,
        marks: InboxMarks,
        small: Mapping[str, list[Any]],
        limit: int,
    ) -> AsyncIterator[bytes]:
        prefs = small["preferences"]
        head = {
            "user_id": user_id,
            "exported_at": utcnow().isoformat(),
            "profile": None if profile is None else _plain("users", profile),
            "preferences": prefs[0]["document"] if prefs else None,
            "channel_opt_outs": [_plain("channel_opt_outs", r) for r in small["channel_opt_outs"]],
            "push_subscriptions": [
                _plain("push_subscriptions", r) for r in small["push_subscriptions"]
            ],
            "webhook_endpoints": [
                _plain("webhook_endpoints", r) for r in small["webhook_endpoints"]
            ],
        }
        # The head without its closing brace; each list follows as ``, "name": [...]``.
        yield orjson.dumps(head)[:-1]
        yield b', "scheduled_sends": ['
        async for piece in self._table(scheduled_sends, user_id, limit):
            yield piece
        yield b'], "batches": ['
        async for piece in self._batches(user_id, limit):
            yield piece
        yield b'], "channel_digests": ['
        async for piece in self._table(channel_digests, user_id, limit):
            yield piece
        yield b'], "notifications": ['
        async for piece in self._notifications(user_id, marks, limit):
            yield piece
        yield b'], "events": ['
        async for piece in self._table(events, user_id, limit):
            yield piece
        yield b"]}"

    async def _table(self, table: Any, user_id: str, limit: int) -> AsyncIterator[bytes]:
        after = None
        first = True
        while True:
            async with self._db.connect() as conn:
                page = await store.page_by_id(conn, table, user_id, after, limit)
            if not page:
                return
            yield _items([_plain(table.name, r) for r in page], first)
            first = False
            after = page[-1]["id"]

    async def _batches(self, user_id: str, limit: int) -> AsyncIterator[bytes]:
        after = None
        first = True
        while True:
            async with self._db.connect() as conn:
                page = await store.page_by_id(conn, batches, user_id, after, limit)
            if not page:
                return
            for batch in page:
                # One batch at a time, its items page by page: ``{...batch, "items": [``.
                yield (b"" if first else b",") + orjson.dumps(_plain("batches", batch))[:-1]
                yield b', "items": ['
                first = False
                item_after, first_item = 0, True
                while True:
                    async with self._db.connect() as conn:
                        items = await store.batch_items_page(conn, batch["id"], item_after, limit)
                    if not items:
                        break
                    yield _items([_plain("batch_items", i) for i in items], first_item)
                    first_item = False
                    item_after = items[-1]["id"]
                yield b"]}"
            after = page[-1]["id"]

    async def _notifications(
        self, user_id: str, marks: InboxMarks, limit: int
    ) -> AsyncIterator[bytes]:
        after = 0
        first = True
        while True:
            async with self._db.connect() as conn:
                page = await store.notifications_page(conn, user_id, after, limit)
                if not page:
                    return
                sent = await store.deliveries_of(conn, [r["id"] for r in page])
                tried = await store.attempts_of(conn, [d["id"] for d in sent])
            attempts: dict[str, list[dict[str, Any]]] = {}
            for a in tried:
                attempts.setdefault(a["delivery_id"], []).append(_plain("delivery_attempts", a))
            by_note: dict[int, list[dict[str, Any]]] = {}
            for d in sent:
                row = _plain("deliveries", d)
                row["attempts"] = attempts.get(d["id"], [])
                by_note.setdefault(d["notification_id"], []).append(row)
            docs = [
                {**notification_json(r, marks), "deliveries": by_note.get(r["id"], [])}
                for r in page
            ]
            yield _items(docs, first)
            first = False
            after = page[-1]["id"]


def _items(docs: list[Any], first: bool) -> bytes:
    """JSON array members, with the comma that separates them from earlier ones."""
    body = orjson.dumps(docs)[1:-1]
    return body if first else b"," + body


def _plain(table: str, row: Mapping[Any, Any]) -> dict[str, Any]:
    """A row as JSON-ready values: every column but the hidden ones, times in UTC."""
    hidden = _HIDDEN.get(table, frozenset())
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key in hidden:
            continue
        out[str(key)] = as_utc(value).isoformat() if isinstance(value, datetime) else value
    return out
