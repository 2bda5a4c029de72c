"""Notification rows: insert, keyset listing, and state changes of the inbox.

The read/seen state of a row depends on its user's watermarks (``domain/inbox_state.py``).
A state change reads the row as a :class:`~clarion.domain.notifications.Notification`
(:func:`get`); the reads that answer JSON (:func:`read_page`, :func:`newer_than`,
:func:`get_row`) return rows as mappings, which the service encodes directly: on the hot
inbox page a frozen dataclass per row cost about as much as encoding the row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    JSON,
    BindParameter,
    Select,
    Text,
    and_,
    bindparam,
    cast,
    delete,
    not_,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from clarion.domain import jsonlimits
from clarion.domain.inbox_state import InboxMarks
from clarion.domain.notifications import Notification
from clarion.store import bulk, direct_reads
from clarion.store import users as user_store
from clarion.store.db import Database
from clarion.store.schema import Timestamp, notifications, users

n = notifications
ReadFilter = Literal["unread", "read", "all"]
ArchivedFilter = Literal["false", "true", "all"]


async def insert(conn: AsyncConnection, rows: Sequence[Mapping[Any, Any]]) -> list[int]:
    """Insert notification rows (inside a transaction); returns their ids in the order
    given."""
    return await bulk.insert_with_ids(conn, n, rows)


async def get(
    conn: AsyncConnection, notification_id: int, *, for_update: bool = False
) -> Notification | None:
    row = await get_row(conn, notification_id, for_update=for_update)
    return None if row is None else Notification.from_row(row)


async def get_row(
    conn: AsyncConnection, notification_id: int, *, for_update: bool = False
) -> RowMapping | None:
    """One notification's row as a mapping, for a JSON answer."""
    stmt = select(n).where(n.c.id == notification_id)
    if for_update:
        stmt = stmt.with_for_update()
    row = (await conn.execute(stmt)).first()
    return None if row is None else row._mapping


async def owner_of(conn: AsyncConnection, notification_id: int) -> str | None:
    return (
        await conn.execute(select(n.c.user_id).where(n.c.id == notification_id))
    ).scalar_one_or_none()


def _read_condition(read_watermark: int | BindParameter[int]) -> ColumnElement[bool]:
    return or_(n.c.read_at.is_not(None), and_(n.c.id <= read_watermark, not_(n.c.forced_unread)))


def _unread_condition(read_watermark: int | BindParameter[int]) -> ColumnElement[bool]:
    # Written so that PostgreSQL can range-scan (user_id, id) above the watermark and pick
    # the few forced-unread rows below it from their partial index.
    return and_(n.c.read_at.is_(None), or_(n.c.id > read_watermark, n.c.forced_unread))


def _page_select(
    user_id: Any,
    read_watermark: Any,
    *,
    status: ReadFilter,
    archived: ArchivedFilter,
    type_: Any,
    before_id: Any,
    limit: Any,
    columns: Sequence[Any] = (n,),
) -> Select[Any]:
    """The page statement; each value is a literal or a bind parameter (see ``_PAGE_SQL``).
    ``type_`` and ``before_id`` of ``None`` leave their condition out."""
    conds: list[ColumnElement[bool]] = [n.c.user_id == user_id, n.c.inbox]
    if status == "unread":
        conds.append(_unread_condition(read_watermark))
    elif status == "read":
        conds.append(_read_condition(read_watermark))
    if archived == "false":
        conds.append(n.c.archived_at.is_(None))
    elif archived == "true":
        conds.append(n.c.archived_at.is_not(None))
    if type_ is not None:
        conds.append(n.c.type == type_)
    if before_id is not None:
        conds.append(n.c.id < before_id)
    return select(*columns).where(*conds).order_by(n.c.id.desc()).limit(limit)


def page_query(
    user_id: str,
    marks: InboxMarks,
    *,
    status: ReadFilter,
    archived: ArchivedFilter,
    type_: str | None,
    before_id: int | None,
    limit: int,
) -> Select[Any]:
    """One page, newest first, strictly older than ``before_id`` (keyset pagination)."""
    return _page_select(
        user_id,
        marks.read_watermark,
        status=status,
        archived=archived,
        type_=type_,
        before_id=before_id,
        limit=limit,
    )


# (status, archived, has type, has cursor) -> PostgreSQL text and parameter order: at most
# 36 shapes, each compiled once per process (see clarion.store.direct_reads).
_PAGE_SQL: dict[tuple[str, str, bool, bool], tuple[str, tuple[str, ...]]] = {}


async def list_page(
    conn: AsyncConnection,
    user_id: str,
    marks: InboxMarks,
    *,
    status: ReadFilter,
    archived: ArchivedFilter,
    type_: str | None,
    before_id: int | None,
    limit: int,
) -> list[RowMapping]:
    stmt = page_query(
        user_id,
        marks,
        status=status,
        archived=archived,
        type_=type_,
        before_id=before_id,
        limit=limit,
    )
    return [r._mapping for r in await conn.execute(stmt)]


async def read_page(
    db: Database,
    user_id: str,
    *,
    status: ReadFilter,
    archived: ArchivedFilter,
    type_: str | None,
    before_id: int | None,
    limit: int,
) -> tuple[InboxMarks | None, Sequence[Mapping[Any, Any]]]:
    """The user's marks and one page of rows (``(None, [])`` for an unknown user), on a
    connection of its own: through the driver on PostgreSQL (see ``store.direct_reads``), rows
    as mappings by column name whichever path read them."""
    async with direct_reads.driver(db) as driver:
        if driver is None:
            async with db.connect() as conn:
                marks = await user_store.read_marks(conn, user_id)
                if marks is None:
                    return None, []
                return marks, await list_page(
                    conn,
                    user_id,
                    marks,
                    status=status,
                    archived=archived,
                    type_=type_,
                    before_id=before_id,
                    limit=limit,
                )
        shape = (status, archived, type_ is not None, before_id is not None)
        values: dict[str, Any] = {"uid": user_id, "type": type_, "before": before_id, "lim": limit}
        if status == "all":
            cached = _PAGE_SQL.get(shape)
            if cached is None:
                cached = _PAGE_SQL[shape] = direct_reads.compile_sql(db, _marks_and_page(shape))
            sql, order = cached
            records = await driver.fetch(sql, *(values[k] for k in order))
            if not records:
                return None, []
            marks = InboxMarks(*(records[0][m] for m in _MARKS))
            return marks, _decoded([r for r in records if r["id"] is not None])
        # A read/unread filter depends on the watermark: as a parameter PostgreSQL plans
        # with its value (a range scan above it, the forced-unread rows from their partial
        # index); read from the joined row it would walk every row below it instead.
        marks = await user_store.fetch_marks(db, driver, user_id)
        if marks is None:
            return None, []
        cached = _PAGE_SQL.get(shape)
        if cached is None:
            stmt = _page_select(
                bindparam("uid"),
                bindparam("rw"),
                status=status,
                archived=archived,
                type_=bindparam("type") if type_ is not None else None,
                before_id=bindparam("before") if before_id is not None else None,
                limit=bindparam("lim"),
                columns=_TEXT_JSON_COLUMNS,
            )
            cached = _PAGE_SQL[shape] = direct_reads.compile_sql(db, stmt)
        sql, order = cached
        values["rw"] = marks.read_watermark
        records = await driver.fetch(sql, *(values[k] for k in order))
        return marks, _decoded(records)


_MARKS = ("m_unread", "m_unseen", "m_rw", "m_sw", "m_rat", "m_sat")


def _marks_and_page(shape: tuple[str, str, bool, bool]) -> Select[Any]:
    """The user's marks and one page of every status in ONE statement (one round trip,
    not two): the page is a LATERAL subquery, outer-joined
    so that a user with no matching notification still returns their marks (one row of
    NULL notification columns). No user, no row."""
    status, archived, has_type, has_before = shape
    assert status == "all", "a read/unread page needs the watermark as a parameter"
    page = _page_select(
        bindparam("uid"),
        None,
        status=status,  # type: ignore[arg-type]
        archived=archived,  # type: ignore[arg-type]
        type_=bindparam("type") if has_type else None,
        before_id=bindparam("before") if has_before else None,
        limit=bindparam("lim"),
        columns=_TEXT_JSON_COLUMNS,
    ).lateral("p")
    marks = [
        users.c.unread_count,
        users.c.unseen_count,
        users.c.read_watermark,
        users.c.seen_watermark,
        users.c.read_all_at,
        users.c.seen_all_at,
    ]
    return (
        select(*(c.label(name) for c, name in zip(marks, _MARKS, strict=True)), *page.c)
        .select_from(users.outerjoin(page, true()))
        .where(users.c.user_id == bindparam("uid"))
        .order_by(page.c.id.desc())
    )


# The page's JSON columns come as text and are decoded with orjson: the driver's codec
# (the stdlib json) was a tenth of a page's CPU, three documents per row.
_JSON_COLUMNS = tuple(c.name for c in n.columns if isinstance(c.type, JSON))
_TEXT_JSON_COLUMNS = tuple(
    cast(c, Text).label(c.name) if c.name in _JSON_COLUMNS else c for c in n.columns
)


def _decoded(records: Sequence[Any]) -> list[dict[str, Any]]:
    rows = [dict(r.items()) for r in records]
    slots = [(row, name) for row in rows for name in _JSON_COLUMNS if row[name] is not None]
    # orjson, with the checks for documents stored before the JSON limits (an integer
    # beyond 64 bits, deep nesting: read tolerantly, domain/jsonlimits) made once a page.
    values = jsonlimits.loads_stored_many([row[name] for row, name in slots])
    for (row, name), value in zip(slots, values, strict=True):
        row[name] = value
    return rows


async def newer_than(
    conn: AsyncConnection, user_id: str, after_id: int, limit: int
) -> list[RowMapping]:
    """Rows after a cursor, oldest first: what a reconnecting client missed."""
    stmt = (
        select(n)
        .where(n.c.user_id == user_id, n.c.inbox, n.c.id > after_id)
        .order_by(n.c.id.asc())
        .limit(limit)
    )
    return [r._mapping for r in await conn.execute(stmt)]


async def update_row(conn: AsyncConnection, notification_id: int, **values: Any) -> None:
    await conn.execute(update(n).where(n.c.id == notification_id).values(**values))


async def delete_row(conn: AsyncConnection, notification_id: int) -> None:
    await conn.execute(delete(n).where(n.c.id == notification_id))


async def max_id(conn: AsyncConnection, user_id: str) -> int:
    # Ordered as the (user_id, id) index is: with a bare max(id) PostgreSQL may walk the
    # primary key backwards until it meets this user's newest row, the whole table for a
    # user who has had nothing new for a long time.
    value = (
        await conn.execute(
            select(n.c.id)
            .where(n.c.user_id == user_id, n.c.inbox)
            .order_by(n.c.user_id.desc(), n.c.id.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    return int(value or 0)


async def clear_forced_unread(conn: AsyncConnection, user_id: str) -> None:
    await conn.execute(
        update(n).where(n.c.user_id == user_id, n.c.forced_unread).values(forced_unread=False)
    )


# PostgreSQL: the newest inbox id, the forced-unread flags and the user's watermarks in ONE
# statement (its snapshot is taken after the caller locked the user row, so every
# notification committed before the lock is seen). SQLite cannot modify rows in a WITH.
_MARK_ALL_READ_PG = text(
    """
    WITH top AS (
        SELECT coalesce((SELECT id FROM notifications
                         WHERE user_id = :uid AND inbox
                         ORDER BY user_id DESC, id DESC LIMIT 1), 0) AS id
    ), cleared AS (
        UPDATE notifications SET forced_unread = false
        WHERE user_id = :uid AND forced_unread
    )
    UPDATE users SET
        read_watermark = greatest(users.read_watermark, top.id),
        seen_watermark = greatest(users.seen_watermark, top.id),
        read_all_at = :now, seen_all_at = :now, unread_count = 0, unseen_count = 0
    FROM top
    WHERE users.user_id = :uid
    RETURNING top.id
    """
).bindparams(bindparam("now", type_=Timestamp))


async def mark_all_read(
    conn: AsyncConnection, user_id: str, marks: InboxMarks, now: datetime
) -> int:
    """Move the user's read and seen watermarks to their newest inbox notification, clear
    the forced-unread flags and zero the counters; returns that newest id. The caller
    holds the user's row lock (``users.lock_marks``) in the same transaction."""
    if conn.dialect.name == "postgresql":
        top = (await conn.execute(_MARK_ALL_READ_PG, {"uid": user_id, "now": now})).scalar_one()
        return int(top)
    top = await max_id(conn, user_id)
    await clear_forced_unread(conn, user_id)
    await user_store.set_marks(
        conn,
        user_id,
        read_watermark=max(top, marks.read_watermark),
        seen_watermark=max(top, marks.seen_watermark),
        read_all_at=now,
        seen_all_at=now,
        unread_count=0,
        unseen_count=0,
    )
    return top
