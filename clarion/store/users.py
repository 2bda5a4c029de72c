"""User rows: profiles, and the per-user counters and watermarks of the inbox."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, Select, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from clarion.domain.inbox_state import InboxMarks as InboxMarks  # the send path reads it here
from clarion.domain.recipients import Profile
from clarion.store import bulk, direct_reads
from clarion.store.db import Database
from clarion.store.dialect import insert_ignore, one_of, upsert
from clarion.store.schema import preferences, users

PROFILE_FIELDS = ("email", "phone", "locale", "timezone", "name", "data")


async def ensure(conn: AsyncConnection, user_ids: Iterable[str], now: datetime) -> None:
    """Create the users that do not exist yet (first use creates a user)."""
    empty: dict[str, Any] = {}  # one object: encoded once for all rows
    rows = [{"user_id": u, "data": empty, "created_at": now, "updated_at": now} for u in user_ids]
    await bulk.insert(conn, users, rows, insert_ignore(conn, users))


_COUNTING_UPSERT: dict[str, Any] = {}


def _counting_upsert(conn: AsyncConnection) -> Any:
    """INSERT ... ON CONFLICT DO UPDATE adding the deltas, built once per dialect: a
    statement rebuilt per call (``excluded`` makes new column objects) is compiled anew
    every time instead of coming from SQLAlchemy's cache."""
    name = conn.dialect.name
    stmt = _COUNTING_UPSERT.get(name)
    if stmt is None:
        base = upsert(conn, users)
        stmt = base.on_conflict_do_update(
            index_elements=[users.c.user_id],
            set_={
                "unread_count": users.c.unread_count + base.excluded.unread_count,
                "unseen_count": users.c.unseen_count + base.excluded.unseen_count,
            },
        )
        _COUNTING_UPSERT[name] = stmt
    return stmt


async def ensure_counted(
    conn: AsyncConnection, deltas: Mapping[str, tuple[int, int]], now: datetime
) -> None:
    """Create missing users and add (unread, unseen) deltas in ONE statement per kind: an
    upsert for users whose counts move, an insert-or-ignore for the others. Rows go in
    user_id order, so two sends locking several users can never deadlock each other; the
    counting upsert also takes each user's row lock, which sending relies on (see
    ``SendingService.write``)."""
    moving = sorted(u for u, (du, ds) in deltas.items() if du or ds)
    still = sorted(u for u, (du, ds) in deltas.items() if not (du or ds))
    if moving:
        empty: dict[str, Any] = {}
        rows = [
            {
                "user_id": u,
                "data": empty,
                "unread_count": deltas[u][0],
                "unseen_count": deltas[u][1],
                "created_at": now,
                "updated_at": now,
            }
            for u in moving
        ]
        await bulk.insert(conn, users, rows, _counting_upsert(conn))
    if still:
        await ensure(conn, still, now)


async def get(conn: AsyncConnection, user_id: str) -> Profile | None:
    row = (await conn.execute(select(users).where(users.c.user_id == user_id))).first()
    return None if row is None else Profile.from_row(row._mapping)


async def profiles(conn: AsyncConnection, user_ids: Iterable[str]) -> dict[str, Profile]:
    """Users' profiles by id, absent for users never seen: the send path's planner and the
    worker's contacts read them here."""
    ids = list(user_ids)
    if not ids:
        return {}
    # One array parameter, not an IN list of one placeholder per id: the statement text
    # (and the plan PostgreSQL caches for it) is the same for every length. An IN list of
    # 1,000 placeholders planned while the table was small stayed a sequential scan
    # comparing each row with every id: 3-4 s per 1,000-recipient send at 60,000 users.
    rows = await conn.execute(select(users).where(one_of(conn, users.c.user_id, ids)))
    return {r.user_id: Profile.from_row(r._mapping) for r in rows}


# A profile's columns (``Profile.from_row``) and the preference document, for every id
# given, whether it has a users row, a preferences row, both or neither: one statement.
_RECIPIENTS_SQL = (
    "SELECT ids.user_id AS uid, "
    + ", ".join(f"u.{c}" for c in ("user_id", *PROFILE_FIELDS, "created_at", "updated_at"))
    + ", p.document FROM unnest($1::varchar[]) AS ids(user_id)"
    f" LEFT JOIN {users.name} AS u ON u.user_id = ids.user_id"
    f" LEFT JOIN {preferences.name} AS p ON p.user_id = ids.user_id"
)


async def recipients_fast(
    db: Database, user_ids: Sequence[str]
) -> tuple[dict[str, Profile], dict[str, Mapping[str, Any]]] | None:
    """:func:`profiles` and the stored preference documents of ``user_ids``
    (``store.preferences.get_many``) in ONE prepared statement through the driver on
    PostgreSQL (see ``store.direct_reads``): the planning reads of every group commit.
    ``None`` elsewhere: the caller reads through SQLAlchemy. Outside any transaction, as
    the reads of ``Database.connect()``; one statement is one snapshot for both."""
    async with direct_reads.driver(db) as driver:
        if driver is None:
            return None
        if not user_ids:
            return {}, {}
        records = await driver.fetch(_RECIPIENTS_SQL, list(user_ids))
    profiles: dict[str, Profile] = {}
    documents: dict[str, Mapping[str, Any]] = {}
    for r in records:
        if r["user_id"] is not None:
            profiles[r["user_id"]] = Profile.from_row(r)
        if r["document"] is not None:
            documents[r["uid"]] = dict(r["document"])
    return profiles, documents


async def upsert_profile(
    conn: AsyncConnection, user_id: str, profile: Mapping[str, Any], now: datetime
) -> Profile:
    await ensure(conn, [user_id], now)
    values = {k: profile[k] for k in PROFILE_FIELDS if k in profile}
    values["updated_at"] = now
    await conn.execute(update(users).where(users.c.user_id == user_id).values(**values))
    row = await get(conn, user_id)
    assert row is not None
    return row


def _marks_query(user_id: str | BindParameter[str]) -> Select[Any]:
    return select(
        users.c.unread_count,
        users.c.unseen_count,
        users.c.read_watermark,
        users.c.seen_watermark,
        users.c.read_all_at,
        users.c.seen_all_at,
    ).where(users.c.user_id == user_id)


async def lock_marks(conn: AsyncConnection, user_id: str) -> InboxMarks | None:
    """Read the counters under a row lock: every inbox change of one user is serialised
    here, which keeps the counters exact under concurrent requests (SQLite serialises all
    writers anyway; ``FOR UPDATE`` is a no-op there)."""
    row = (await conn.execute(_marks_query(user_id).with_for_update())).first()
    return None if row is None else InboxMarks(*row)


async def read_marks(conn: AsyncConnection, user_id: str) -> InboxMarks | None:
    row = (await conn.execute(_marks_query(user_id))).first()
    return None if row is None else InboxMarks(*row)


_MARKS_SQL: dict[str, str] = {}


async def read_marks_fast(db: Database, user_id: str) -> InboxMarks | None:
    """:func:`read_marks` on a connection of its own: every count and every page asks for
    the marks, so on PostgreSQL this runs through the driver (see ``store.direct_reads``)."""
    async with direct_reads.driver(db) as driver:
        if driver is None:
            async with db.connect() as conn:
                return await read_marks(conn, user_id)
        return await fetch_marks(db, driver, user_id)


async def fetch_marks(db: Database, driver: Any, user_id: str) -> InboxMarks | None:
    """:func:`read_marks` on an asyncpg connection from
    :func:`clarion.store.direct_reads.driver`."""
    sql = _MARKS_SQL.get("pg")
    if sql is None:
        sql = _MARKS_SQL["pg"] = direct_reads.compile_sql(db, _marks_query(bindparam("uid")))[0]
    record = await driver.fetchrow(sql, user_id)
    return None if record is None else InboxMarks(*record)


async def add_counts(conn: AsyncConnection, deltas: Mapping[str, tuple[int, int]]) -> None:
    """Apply (unread, unseen) deltas. Rows are touched in user_id order so that two
    transactions locking several users can never deadlock each other."""
    params = [
        {"uid": uid, "du": du, "ds": ds} for uid, (du, ds) in sorted(deltas.items()) if du or ds
    ]
    if not params:
        return
    stmt = (
        update(users)
        .where(users.c.user_id == bindparam("uid"))
        .values(
            unread_count=users.c.unread_count + bindparam("du"),
            unseen_count=users.c.unseen_count + bindparam("ds"),
        )
    )
    await conn.execute(stmt, params)


async def set_marks(conn: AsyncConnection, user_id: str, **values: Any) -> None:
    await conn.execute(update(users).where(users.c.user_id == user_id).values(**values))


async def counts_many(conn: AsyncConnection, user_ids: Iterable[str]) -> dict[str, tuple[int, int]]:
    ids = list(user_ids)
    if not ids:
        return {}
    rows = await conn.execute(
        select(users.c.user_id, users.c.unread_count, users.c.unseen_count).where(
            users.c.user_id.in_(ids)
        )
    )
    return {uid: (unread, unseen) for uid, unread, unseen in rows}
