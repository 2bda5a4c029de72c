"""Users' notification preferences: stored as ``Preferences.to_json()``, validated by
``Preferences.from_json`` (every problem reported at once), defaults when none stored.

The send pipeline reads them with :meth:`PreferenceService.get_many` — one query for all
recipients of a send — and hands each to ``domain.preferences.decide``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from clarion.domain.preferences import Preferences
from clarion.errors import ValidationFailed
from clarion.services.clock import utcnow
from clarion.store import preferences as store
from clarion.store.db import Database

log = logging.getLogger("clarion.preferences")

DEFAULTS = Preferences()


def _parse_stored(user_id: str, document: Mapping[str, Any]) -> Preferences:
    """A stored document that no longer parses (say, a timezone dropped from tzdata) must
    not block that user's notifications: fall back to the defaults, loudly."""
    try:
        return Preferences.from_json(document)
    except ValidationFailed as exc:
        log.warning("stored preferences of %r are invalid (%s); using defaults", user_id, exc)
        return DEFAULTS


class PreferenceService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get_preferences(self, user_id: str) -> Preferences:
        """The user's preferences, or the defaults when none are stored."""
        async with self._db.connect() as conn:
            document = await store.get(conn, user_id)
        return DEFAULTS if document is None else _parse_stored(user_id, document)

    async def get_many(self, user_ids: Iterable[str]) -> dict[str, Preferences]:
        """Preferences of every user in ``user_ids`` (defaults for those with none), read
        in one query."""
        async with self._db.connect() as conn:
            return await self.read_many(conn, user_ids)

    async def read_many(
        self, conn: AsyncConnection, user_ids: Iterable[str]
    ) -> dict[str, Preferences]:
        """:meth:`get_many` on the caller's connection (the planner reads profiles and
        preferences on one connection)."""
        ids = list(dict.fromkeys(user_ids))
        return self.from_documents(ids, await store.get_many(conn, ids))

    @staticmethod
    def from_documents(
        user_ids: Iterable[str], documents: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, Preferences]:
        """Each user's preferences from their stored document (defaults without one)."""
        return {
            uid: _parse_stored(uid, documents[uid]) if uid in documents else DEFAULTS
            for uid in user_ids
        }

    async def put(self, user_id: str, document: Mapping[str, Any]) -> Preferences:
        """Replace the user's preferences; ``ValidationFailed`` (nothing stored) if invalid."""
        prefs = Preferences.from_json(document)
        async with self._db.begin() as conn:
            await store.put(conn, user_id, prefs.to_json(), utcnow())
        return prefs
