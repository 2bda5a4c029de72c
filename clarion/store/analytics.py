"""The statements of analytics: following the events table, adding rollup increments and
expiring raw events (reading the rollups: store/rollup_reads.py).

Following exactly once (docs/analytics.md, "How rollups are kept"). A follower keeps a
cursor and, in one transaction, reads the next events after it, adds their increments to
the rollups and moves the cursor — so each event is counted once, whatever crashes.

* SQLite has one writer at a time (``Database.begin``), so event ids become visible in
  order: the cursor is the last id folded.
* On PostgreSQL ids come from a sequence and transactions commit in any order: an event
  with a smaller id can become visible after a bigger one was folded. Each event therefore
  carries the id of the transaction that wrote it (``txid``), and the follower takes only
  events of transactions older than the oldest one still running
  (``pg_snapshot_xmin``): all of those have finished, so nothing can appear behind the
  cursor ``(txid, id)`` later.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, literal, select, text, tuple_, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from clarion.domain.rollup import Increments
from clarion.store import bulk
from clarion.store.dialect import insert_ignore, row_locked, upsert
from clarion.store.schema import (
    analytics_cursor,
    event_counts_daily,
    event_counts_hourly,
    event_totals_daily,
    event_totals_hourly,
    event_types_daily,
    event_types_hourly,
    events,
    latency_channels_daily,
    latency_channels_hourly,
    latency_daily,
    latency_hourly,
)

FOLLOWER = "rollups"

_FOLLOWED = (
    events.c.id,
    events.c.txid,
    events.c.type,
    events.c.notification_id,
    events.c.created_at,
    events.c.ntype,
    events.c.channel,
    events.c.template,
    events.c.template_key,
    events.c.provider,
    events.c.reason,
    events.c.variant,
    events.c.experiment,
    events.c.user_id,
    events.c.latency_ms,
    events.c.value,
)


async def horizon(conn: AsyncConnection) -> int | None:
    """PostgreSQL: a transaction id below which every transaction that may have written
    events in this database has finished: events of those are final. ``None`` on SQLite.

    Call first in the transaction (before it writes and takes an id of its own). Only
    this database's writers matter (transaction ids are server-wide, and a long report
    in another database must not hold the rollups back): the lowest id among this
    database's running transactions that have one, and its prepared transactions, else
    the next id to be given out. Should another role's sessions be hidden from
    ``pg_stat_activity``, the server-wide oldest running transaction is used instead."""
    if conn.dialect.name != "postgresql":
        return None
    snap = (
        await conn.execute(
            text(
                "SELECT pg_snapshot_xmax(s)::text::bigint, pg_snapshot_xmin(s)::text::bigint "
                "FROM pg_current_snapshot() AS s"
            )
        )
    ).one()
    following, oldest_anywhere = int(snap[0]), int(snap[1])
    # Read after the snapshot: a writer with an id below ``following`` that is still
    # running is listed here (an id is in the process array before its first write).
    mine = (await conn.execute(_WRITERS)).one()
    if mine[0]:  # hidden sessions: be safe, as if they were all writers
        return oldest_anywhere
    ids = [int(x) for x in (mine[1], mine[2]) if x is not None]
    return min([following, *(_widened(i, following) for i in ids)])


#: This database's running and prepared transactions that have an id (32-bit ``xid``).
_WRITERS = text(
    "SELECT"
    " (SELECT coalesce(bool_or(query = '<insufficient privilege>'), false)"
    "  FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()),"
    " (SELECT min(backend_xid::text::bigint) FROM pg_stat_activity"
    "  WHERE datname = current_database() AND pid <> pg_backend_pid()),"
    " (SELECT min(transaction::text::bigint) FROM pg_prepared_xacts"
    "  WHERE database = current_database())"
)


def _widened(xid32: int, near: int) -> int:
    """A 32-bit transaction id as the 64-bit id (``xid8``) of the same epoch as ``near``,
    the next id to be given out: a running transaction's id is at most 2^31 behind it."""
    full = (near >> 32 << 32) | xid32
    return full - (1 << 32) if full > near else full


async def lock_cursor(conn: AsyncConnection, now: datetime) -> tuple[int, int] | None:
    """The follower's cursor ``(txid, event id)``, locked; ``None`` when another follower
    holds it now (PostgreSQL; it will do the work)."""
    row = {"name": FOLLOWER, "txid": 0, "event_id": 0, "updated_at": now}
    await conn.execute(insert_ignore(conn, analytics_cursor), row)
    stmt = select(analytics_cursor.c.txid, analytics_cursor.c.event_id).where(
        analytics_cursor.c.name == FOLLOWER
    )
    got = (await conn.execute(row_locked(stmt, conn, skip_locked=True))).first()
    return None if got is None else (int(got.txid), int(got.event_id))


async def save_cursor(conn: AsyncConnection, txid: int, event_id: int, now: datetime) -> None:
    await conn.execute(
        update(analytics_cursor)
        .where(analytics_cursor.c.name == FOLLOWER)
        .values(txid=txid, event_id=event_id, updated_at=now)
    )


async def cursor_lag(conn: AsyncConnection) -> int:
    """Events written and not yet folded (an estimate on PostgreSQL: by id)."""
    cur = select(analytics_cursor.c.event_id).where(analytics_cursor.c.name == FOLLOWER)
    at = (await conn.execute(cur)).scalar()
    top = (await conn.execute(select(func.max(events.c.id)))).scalar()
    return max(0, int(top or 0) - int(at or 0))


async def next_events(
    conn: AsyncConnection, cursor: tuple[int, int], before_txid: int | None, limit: int
) -> list[RowMapping]:
    """Up to ``limit`` events after ``cursor``, in the follower's order."""
    txid, event_id = cursor
    if before_txid is None:  # SQLite: ids are visible in order
        stmt = select(*_FOLLOWED).where(events.c.id > event_id).order_by(events.c.id)
    else:
        stmt = (
            select(*_FOLLOWED)
            .where(
                events.c.txid.is_not(None),
                tuple_(events.c.txid, events.c.id) > tuple_(literal(txid), literal(event_id)),
                events.c.txid < before_txid,
            )
            .order_by(events.c.txid, events.c.id)
        )
    return [r._mapping for r in await conn.execute(stmt.limit(limit))]


async def unfolded(conn: AsyncConnection, cursor: tuple[int, int]) -> bool:
    """Whether events were written after ``cursor`` (folded or not yet foldable)."""
    txid, event_id = cursor
    if conn.dialect.name != "postgresql":
        stmt = select(events.c.id).where(events.c.id > event_id).limit(1)
    else:
        stmt = (
            select(events.c.id)
            .where(
                events.c.txid.is_not(None),
                tuple_(events.c.txid, events.c.id) > tuple_(literal(txid), literal(event_id)),
            )
            .limit(1)
        )
    return (await conn.execute(stmt)).first() is not None


async def read_cursor(conn: AsyncConnection) -> tuple[int, int]:
    stmt = select(analytics_cursor.c.txid, analytics_cursor.c.event_id).where(
        analytics_cursor.c.name == FOLLOWER
    )
    got = (await conn.execute(stmt)).first()
    return (0, 0) if got is None else (int(got.txid), int(got.event_id))


def _count_upsert(conn: AsyncConnection, table: Any) -> Any:
    stmt = upsert(conn, table)
    keys = [c.name for c in table.primary_key.columns]
    return stmt.on_conflict_do_update(
        index_elements=keys,
        set_={
            "count": table.c.count + stmt.excluded.count,
            "value_sum": table.c.value_sum + stmt.excluded.value_sum,
        },
    )


def _latency_upsert(conn: AsyncConnection, table: Any) -> Any:
    stmt = upsert(conn, table)
    keys = [c.name for c in table.primary_key.columns]
    return stmt.on_conflict_do_update(
        index_elements=keys, set_={"count": table.c.count + stmt.excluded.count}
    )


_STATEMENTS: dict[tuple[str, str], Any] = {}


def _statement(conn: AsyncConnection, table: Any, build: Any) -> Any:
    """One upsert construct per (dialect, table): bulk.insert caches its SQL by identity."""
    key = (conn.dialect.name, table.name)
    stmt = _STATEMENTS.get(key)
    if stmt is None:
        stmt = _STATEMENTS[key] = build(conn, table)
    return stmt


async def add_increments(conn: AsyncConnection, inc: Increments) -> None:
    """Add a page's increments to the rollup tables, full and narrow. Rows go in key
    order, so two followers' upserts (never at once, but a test may run two) lock rows in
    the same order."""
    counts: list[tuple[Any, dict[Any, list[float]]]] = [
        (event_counts_hourly, inc.hourly),
        (event_counts_daily, inc.daily),
        (event_totals_hourly, inc.totals(daily=False)),
        (event_totals_daily, inc.totals(daily=True)),
        (event_types_hourly, inc.types(daily=False)),
        (event_types_daily, inc.types(daily=True)),
    ]
    for table, sums in counts:
        keys = [c.name for c in table.primary_key.columns]
        rows = [
            {**dict(zip(keys, key, strict=True)), "count": int(c), "value_sum": v}
            for key, (c, v) in sorted(sums.items())
        ]
        if rows:
            await bulk.insert(conn, table, rows, _statement(conn, table, _count_upsert))
    latency: list[tuple[Any, dict[Any, int]]] = [
        (latency_hourly, inc.latency_hourly),
        (latency_daily, inc.latency_daily),
        (latency_channels_hourly, inc.latency_channels(daily=False)),
        (latency_channels_daily, inc.latency_channels(daily=True)),
    ]
    for table, hist in latency:
        keys = [c.name for c in table.primary_key.columns]
        rows = [
            {**dict(zip(keys, key, strict=True)), "count": n} for key, n in sorted(hist.items())
        ]
        if rows:
            await bulk.insert(conn, table, rows, _statement(conn, table, _latency_upsert))


async def expire_events(conn: AsyncConnection, before: datetime, limit: int) -> int:
    """Delete up to ``limit`` raw events older than ``before`` (their rollups stay)."""
    oldest = (
        select(events.c.id)
        .where(events.c.created_at < before)
        .order_by(events.c.created_at)
        .limit(limit)
    )
    ids = [r[0] for r in await conn.execute(oldest)]
    if not ids:
        return 0
    await conn.execute(delete(events).where(events.c.id.in_(ids)))
    return len(ids)
