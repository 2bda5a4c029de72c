"""The outbox as a work queue: claim due deliveries under a lease, renew, complete.

One predicate says "due": ``status IN (scheduled, pending, failed, sending) AND
next_attempt_at <= now`` (``scheduled``: deferred by quiet hours), except ``scheduled``
rows held for a channel digest (``digest_id`` set), which only their digest releases.
Claiming a row sets ``next_attempt_at`` to the lease's end, so a lease that runs out
(its worker was SIGKILLed) simply makes the row due again, with no second query shape
and no sweeper process.

PostgreSQL claims with ``FOR UPDATE SKIP LOCKED`` so concurrent workers on many machines
each take different rows without waiting on one another. SQLite has one writer: the claim
is a single ``UPDATE ... WHERE id IN (SELECT ... LIMIT n) RETURNING`` run inside the
database's write transaction (``Database.begin`` takes the write lock at BEGIN).

Completion is guarded by ``leased_by`` and ``status = 'sending'``: a worker whose lease
expired and whose delivery another worker took over cannot overwrite the newer state.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Integer,
    Select,
    String,
    and_,
    bindparam,
    func,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from clarion.domain.deliveries import Delivery
from clarion.domain.notifications import Notification
from clarion.domain.types import DeliveryStatus, Priority
from clarion.store import bulk, direct_reads
from clarion.store.db import Database
from clarion.store.dialect import one_of, one_of_param
from clarion.store.schema import deliveries, notifications

# ``scheduled``: deferred by quiet hours to ``next_attempt_at``.
CLAIMABLE = (
    DeliveryStatus.SCHEDULED,
    DeliveryStatus.PENDING,
    DeliveryStatus.FAILED,
    DeliveryStatus.SENDING,
)
# Every value ``deliveries.priority`` takes (``Priority.rank``), highest first.
PRIORITY_RANKS = tuple(sorted({p.rank for p in Priority}, reverse=True))


def _claimable() -> Any:
    # A ``scheduled`` row held for a channel digest (``digest_id``) is released by the
    # digest (services/channel_digests.py), never claimed on its own.
    return and_(
        deliveries.c.status.in_(CLAIMABLE),
        or_(deliveries.c.status != DeliveryStatus.SCHEDULED, deliveries.c.digest_id.is_(None)),
    )


def _due(now: Any) -> Any:
    return and_(_claimable(), deliveries.c.next_attempt_at <= now)


def _pick_pg(now: Any, limit: Any) -> Select[Any]:
    """The ids to claim on PostgreSQL: one ordered index range per (status, priority).

    ``ORDER BY priority DESC, next_attempt_at ... FOR UPDATE SKIP LOCKED LIMIT n`` over
    the whole outbox cannot stop early (rows may be skipped while locking), so PostgreSQL
    sorted every due row on every claim: ~85 ms, spilling to disk, with 100,000 pending.
    Each branch here walks ``ix_deliveries_due`` (status, priority, next_attempt_at) in
    order and stops after ``limit`` rows; the few branch results are then ordered. Rows a
    branch locks but the final LIMIT drops are unlocked when the statement commits."""
    branches = []
    for status in CLAIMABLE:
        for rank in PRIORITY_RANKS:
            cond = [
                deliveries.c.status == status,
                deliveries.c.priority == rank,
                deliveries.c.next_attempt_at <= now,
            ]
            if status == DeliveryStatus.SCHEDULED:
                cond.append(deliveries.c.digest_id.is_(None))  # held for a digest
            branch = (
                select(deliveries.c.id, deliveries.c.priority, deliveries.c.next_attempt_at)
                .where(*cond)
                .order_by(deliveries.c.next_attempt_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
                .subquery()
            )
            branches.append(select(branch))
    due = union_all(*branches).subquery("due")
    return select(due.c.id).order_by(due.c.priority.desc(), due.c.next_attempt_at).limit(limit)


@functools.cache
def _claim_stmt(dialect: str) -> Any:
    """Built once per dialect, values bound at execution: SQLAlchemy derives a statement's
    cache key by walking it on every execution of a new object, ~10 ms for this one."""
    now = bindparam("c_now", type_=deliveries.c.next_attempt_at.type)
    until = bindparam("c_until", type_=deliveries.c.lease_until.type)
    limit = bindparam("c_limit", type_=Integer())
    lease = (
        update(deliveries)
        .values(
            status=DeliveryStatus.SENDING,
            lease_until=until,
            next_attempt_at=until,
            leased_by=bindparam("c_worker", type_=deliveries.c.leased_by.type),
            attempts=deliveries.c.attempts + 1,
            updated_at=now,
        )
        .returning(*deliveries.c)
    )
    if dialect == "postgresql":
        picked = _pick_pg(now, limit).cte("picked")
        return lease.where(deliveries.c.id == picked.c.id)
    # SQLite: one writer at a time, so no row locks to skip; its planner sorts the few
    # due rows of an embedded deployment.
    pick = (
        select(deliveries.c.id)
        .where(_due(now))
        .order_by(deliveries.c.priority.desc(), deliveries.c.next_attempt_at)
        .limit(limit)
    )
    return lease.where(deliveries.c.id.in_(pick.scalar_subquery()))


async def claim(
    conn: AsyncConnection, *, worker: str, now: datetime, lease_until: datetime, limit: int
) -> list[Delivery]:
    """Take up to ``limit`` due deliveries, highest priority first, oldest due first.

    Each claim counts as an attempt (``attempts + 1``), so a delivery that kills its worker
    every time still runs out of attempts instead of looping forever.
    """
    params = {"c_now": now, "c_until": lease_until, "c_limit": limit, "c_worker": worker}
    result = await conn.execute(_claim_stmt(conn.dialect.name), params)
    rows = [Delivery.from_row(r._mapping) for r in result]
    # RETURNING does not keep the subquery's order.
    rows.sort(key=lambda d: (-d.priority, d.created_at, d.id))
    return rows


_DIRECT: dict[str, tuple[str, tuple[Any, ...]]] = {}


def _direct(db: Database, name: str, stmt: Any) -> tuple[str, tuple[Any, ...]]:
    """``stmt``'s SQL text for the driver and its parameters in positional order: a name
    (bound at execution) or, for a value the statement holds itself (the claim's statuses
    and priorities), ``(value,)``. Compiled once per statement."""
    hit = _DIRECT.get(name)
    if hit is None:
        compiled: Any = stmt.compile(dialect=db.engine.dialect)
        sql, order = direct_reads.compile_sql(db, stmt)
        fixed = compiled.params
        args = tuple(k if fixed.get(k) is None else (_plain(fixed[k]),) for k in order)
        hit = _DIRECT[name] = (sql, args)
    return hit


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, StrEnum) else value


async def claim_direct(
    db: Database,
    driver: Any,
    *,
    worker: str,
    now: datetime,
    lease_until: datetime,
    limit: int,
) -> tuple[list[Delivery], dict[int, Notification]]:
    """:func:`claim` and :func:`notifications_by_id` on PostgreSQL through the driver (an
    asyncpg connection from :func:`clarion.store.direct_reads.driver`), the same
    statements compiled once: SQLAlchemy's execution and its wrapping of every returned
    row were the largest part of a claim's CPU (the worker claims hundreds of rows at a
    time). The claim commits on its own (autocommit), as it does through SQLAlchemy."""
    sql, args = _direct(db, "claim", _claim_stmt("postgresql"))
    params = {"c_now": now, "c_until": lease_until, "c_limit": limit, "c_worker": worker}
    values = [a[0] if isinstance(a, tuple) else params[a] for a in args]
    rows = [Delivery.from_row(r) for r in await driver.fetch(sql, *values)]
    if not rows:
        return [], {}
    rows.sort(key=lambda d: (-d.priority, d.created_at, d.id))  # as claim() does
    sql, _ = _direct(db, "notifications", _notifications_stmt("postgresql"))
    wanted = list({r.notification_id for r in rows})
    notes = {int(r["id"]): Notification.from_row(r) for r in await driver.fetch(sql, wanted)}
    return rows, notes


async def renew(
    conn: AsyncConnection, *, worker: str, ids: Sequence[str], lease_until: datetime
) -> int:
    """Extend the leases this worker still holds (a slow send must not be taken over)."""
    if not ids:
        return 0
    mine = select(deliveries.c.id).where(
        one_of(conn, deliveries.c.id, ids),
        deliveries.c.leased_by == worker,
        deliveries.c.status == DeliveryStatus.SENDING,
    )
    if conn.dialect.name == "postgresql":
        # Rows being recorded right now are locked by the recorder: skip them rather than
        # wait (and risk a deadlock between the two transactions' lock orders).
        mine = mine.with_for_update(skip_locked=True)
    stmt = (
        update(deliveries)
        .where(deliveries.c.id.in_(mine.scalar_subquery()))
        .values(lease_until=lease_until, next_attempt_at=lease_until)
    )
    result = await conn.execute(stmt)
    return int(result.rowcount or 0)


async def finish(
    conn: AsyncConnection, *, delivery_id: str, worker: str, values: Mapping[str, Any]
) -> bool:
    """Write the outcome if this worker still holds the lease; False if it lost it."""
    stmt = (
        update(deliveries)
        .where(
            deliveries.c.id == delivery_id,
            deliveries.c.leased_by == worker,
            deliveries.c.status == DeliveryStatus.SENDING,
        )
        .values(**values, lease_until=None, leased_by=None)
    )
    result = await conn.execute(stmt)
    return bool(result.rowcount)


async def finish_many(
    conn: AsyncConnection, *, worker: str, items: Sequence[tuple[str, Mapping[str, Any]]]
) -> set[str]:
    """Write many outcomes, each only if this worker still holds its lease; returns the
    ids written (the others were lost to another worker).

    PostgreSQL: one ``UPDATE ... FROM unnest(...)`` for the whole batch, whatever values
    each row gets (delivered, retried with its own ``next_attempt_at``, dead, a webhook's
    ``target``), its arrays encoded by asyncpg in C (:func:`_finish_unnest`).
    SQLite: results that set the same values (every ``delivered`` of a batch, the same
    ``dead`` reason, ...) share one ``UPDATE ... WHERE id IN (...) RETURNING id``; a
    statement per result was the worker's main database cost there.
    """
    if not items:
        return set()
    driver = await bulk.driver_in_transaction(conn)
    if driver is not None:
        return await _finish_unnest(driver, worker, items)
    groups: dict[tuple[tuple[str, Any], ...], list[str]] = {}
    for delivery_id, values in items:
        groups.setdefault(tuple(sorted(values.items())), []).append(delivery_id)
    written: set[str] = set()
    for key, ids in groups.items():
        ids.sort()  # a stable order to lock rows in
        stmt = _finish_stmt(conn.dialect.name, tuple(k for k, _ in key))
        params = {f"f_{k}": v for k, v in key}
        params.update(f_ids=ids, f_worker=worker)
        written.update(r[0] for r in await conn.execute(stmt, params))
    return written


async def _finish_unnest(
    driver: Any, worker: str, items: Sequence[tuple[str, Mapping[str, Any]]]
) -> set[str]:
    """finish_many on PostgreSQL, in one statement. A column every item sets is assigned
    from its array; a column only some items set (a retry's ``next_attempt_at``, a
    webhook's ``target``) keeps the row's value where the item has none, so such values
    must not be ``None``."""
    ordered = sorted(items, key=lambda item: item[0])  # a stable order to lock rows in
    every = set(ordered[0][1])
    some: set[str] = set()
    for _, values in ordered:
        every &= values.keys()
        some |= values.keys()
    always = tuple(sorted(every))
    sometimes = tuple(sorted(some - every))
    arrays: list[list[Any]] = [[delivery_id for delivery_id, _ in ordered]]
    arrays.extend([values[k] for _, values in ordered] for k in always)
    for k in sometimes:
        if any(k in values and values[k] is None for _, values in ordered):
            raise ValueError(f"finish_many: {k} set to None by some results only")
        arrays.append([values.get(k) for _, values in ordered])
    rows = await driver.fetch(_finish_sql(always, sometimes), *arrays, worker)
    return {r[0] for r in rows}


@functools.cache
def _finish_sql(always: tuple[str, ...], sometimes: tuple[str, ...]) -> str:
    """The text of :func:`_finish_unnest`'s statement for one shape of values: the same
    text for every batch of that shape, so asyncpg prepares it once per connection."""
    pg = postgresql.dialect()  # type: ignore[no-untyped-call]
    names = ("id", *always, *sometimes)
    casts = ", ".join(
        f"${i}::{deliveries.c[name].type.compile(dialect=pg)}[]" for i, name in enumerate(names, 1)
    )
    assign = [f"{k} = v.{k}" for k in always]
    assign += [f"{k} = coalesce(v.{k}, d.{k})" for k in sometimes]
    assign += ["lease_until = NULL", "leased_by = NULL"]
    return (
        f"UPDATE {deliveries.name} AS d SET {', '.join(assign)} "
        f"FROM unnest({casts}) AS v({', '.join(names)}) "
        f"WHERE d.id = v.id AND d.leased_by = ${len(names) + 1}::varchar "
        f"AND d.status = '{DeliveryStatus.SENDING.value}' RETURNING d.id"
    )


@functools.cache
def _finish_stmt(dialect: str, keys: tuple[str, ...]) -> Any:
    """finish_many's statement for one set of columns, built once (see ``_claim_stmt``)."""
    return (
        update(deliveries)
        .where(
            one_of_param(dialect, deliveries.c.id, "f_ids"),
            deliveries.c.leased_by == bindparam("f_worker", type_=String()),
            deliveries.c.status == DeliveryStatus.SENDING,
        )
        .values(
            **{k: bindparam(f"f_{k}", type_=deliveries.c[k].type) for k in keys},
            lease_until=None,
            leased_by=None,
        )
        .returning(deliveries.c.id)
    )


async def release(conn: AsyncConnection, *, worker: str, ids: Sequence[str], now: datetime) -> int:
    """Hand back claimed rows that were never started (shutdown): due again at once."""
    if not ids:
        return 0
    stmt = (
        update(deliveries)
        .where(
            deliveries.c.id.in_(list(ids)),
            deliveries.c.leased_by == worker,
            deliveries.c.status == DeliveryStatus.SENDING,
        )
        .values(
            status=DeliveryStatus.PENDING,
            next_attempt_at=now,
            lease_until=None,
            leased_by=None,
            attempts=deliveries.c.attempts - 1,
        )
    )
    result = await conn.execute(stmt)
    return int(result.rowcount or 0)


async def requeue(conn: AsyncConnection, delivery_id: str, now: datetime) -> bool:
    """A dead or failed delivery back to ``pending`` with a fresh attempt budget."""
    stmt = (
        update(deliveries)
        .where(
            deliveries.c.id == delivery_id,
            deliveries.c.status.in_((DeliveryStatus.DEAD, DeliveryStatus.FAILED)),
        )
        .values(
            status=DeliveryStatus.PENDING,
            attempts=0,
            next_attempt_at=now,
            reason=None,
            lease_until=None,
            leased_by=None,
            updated_at=now,
        )
    )
    result = await conn.execute(stmt)
    return bool(result.rowcount)


async def existing(conn: AsyncConnection, ids: Sequence[str]) -> set[str]:
    """Which of these deliveries still exist."""
    if not ids:
        return set()
    stmt = select(deliveries.c.id).where(one_of(conn, deliveries.c.id, ids))
    return {r[0] for r in await conn.execute(stmt)}


async def get(conn: AsyncConnection, delivery_id: str) -> Delivery | None:
    row = (await conn.execute(select(deliveries).where(deliveries.c.id == delivery_id))).first()
    return None if row is None else Delivery.from_row(row._mapping)


async def insert_siblings(conn: AsyncConnection, rows: Sequence[Delivery]) -> None:
    """New deliveries beside a claimed one (a webhook's other endpoints). Columns left
    ``None`` are not sent: SQL NULL, not a JSON ``null`` in ``content``."""
    if rows:
        columns = [c.name for c in deliveries.c]
        values = [{k: getattr(d, k) for k in columns if getattr(d, k) is not None} for d in rows]
        await conn.execute(deliveries.insert(), values)


async def set_targets(
    conn: AsyncConnection, worker: str, targets: Sequence[tuple[str, str]]
) -> None:
    """Many ``(delivery id, target)`` in one executemany (webhook fan-out at claim), on
    rows this worker still holds."""
    if not targets:
        return
    stmt = (
        update(deliveries)
        .where(
            deliveries.c.id == bindparam("b_id"),
            deliveries.c.leased_by == worker,
            deliveries.c.status == DeliveryStatus.SENDING,
        )
        .values(target=bindparam("b_target"))
    )
    await conn.execute(stmt, [{"b_id": i, "b_target": t} for i, t in targets])


async def set_target(conn: AsyncConnection, delivery_id: str, target: str) -> None:
    await conn.execute(
        update(deliveries).where(deliveries.c.id == delivery_id).values(target=target)
    )


async def backlog_due(conn: AsyncConnection, now: datetime) -> int:
    """Deliveries waiting to be claimed now (the backlog gauge)."""
    stmt = (
        select(func.count())
        .select_from(deliveries)
        .where(
            deliveries.c.status.in_((DeliveryStatus.PENDING, DeliveryStatus.FAILED)),
            deliveries.c.next_attempt_at <= now,
        )
    )
    return int((await conn.execute(stmt)).scalar_one())


async def next_due(conn: AsyncConnection) -> datetime | None:
    """When the earliest claimable delivery becomes due (to sleep exactly that long)."""
    stmt = select(func.min(deliveries.c.next_attempt_at)).where(_claimable())
    value: datetime | None = (await conn.execute(stmt)).scalar_one_or_none()
    return value


async def notifications_by_id(conn: AsyncConnection, ids: Sequence[int]) -> dict[int, Notification]:
    wanted = list(set(ids))
    if not wanted:
        return {}
    rows = await conn.execute(_notifications_stmt(conn.dialect.name), {"n_ids": wanted})
    return {int(r.id): Notification.from_row(r._mapping) for r in rows}


@functools.cache
def _notifications_stmt(dialect: str) -> Any:
    """Built once (see ``_claim_stmt``): the worker runs it on every claim."""
    return select(notifications).where(one_of_param(dialect, notifications.c.id, "n_ids"))
