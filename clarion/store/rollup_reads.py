"""Reading the rollups: counts, histograms and series over a time range.

Each read takes the narrowest rollup that holds every dimension it groups or filters by
(domain/rollup.py): the totals (event, channel, provider, reason) and the latency per
channel hold tens of rows per bucket, the full rollups thousands, so the dashboard, the
health score and unfiltered trends read the narrow ones and a read filtered by type or
variant the full ones. The per-type counts keep only part of the channel and the reason
(``domain.rollup.type_key``) and are read only when asked for (``per_type``).

Each read takes a connection of its own from ``db``. On PostgreSQL it goes through the
driver (store/direct_reads.py) with its SQL compiled once per shape (the tables, pieces
and dimensions; the times and filter values are parameters): building, compiling and
wrapping a Core statement and its rows costs more CPU than these small reads themselves,
and the dashboard and the health score make several of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, and_, any_, bindparam, case, func, literal_column, select, union_all
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql import CompoundSelect, Select

from clarion.domain.rollup import COUNT_DIMS, LATENCY_CHANNEL_DIMS, LATENCY_DIMS, TOTAL_DIMS
from clarion.store import direct_reads
from clarion.store.db import Database
from clarion.store.schema import (
    event_counts_daily,
    event_counts_hourly,
    event_totals_daily,
    event_totals_hourly,
    event_types_daily,
    event_types_hourly,
    latency_channels_daily,
    latency_channels_hourly,
    latency_daily,
    latency_hourly,
)

#: What a read runs: one SELECT, or the UNION ALL of its pieces.
Statement = Select[Any] | CompoundSelect[Any]
Grains = Mapping[str, Table]
#: Count rollups, narrowest first: (dimensions, table per grain).
_COUNTS: tuple[tuple[tuple[str, ...], Grains], ...] = (
    (TOTAL_DIMS, {"hour": event_totals_hourly, "day": event_totals_daily}),
    (COUNT_DIMS, {"hour": event_counts_hourly, "day": event_counts_daily}),
)
_TYPES: Grains = {"hour": event_types_hourly, "day": event_types_daily}
_LATENCY: tuple[tuple[tuple[str, ...], Grains], ...] = (
    (LATENCY_CHANNEL_DIMS, {"hour": latency_channels_hourly, "day": latency_channels_daily}),
    (LATENCY_DIMS, {"hour": latency_hourly, "day": latency_daily}),
)


def _tables(
    families: tuple[tuple[tuple[str, ...], Grains], ...],
    by: Sequence[str],
    filters: Mapping[str, Any],
) -> Grains:
    """The narrowest rollup with every dimension of ``by`` and of the filters given."""
    needed = {*by, *(k for k, v in filters.items() if v is not None)} - {"le"}
    for dims, tables in families:
        if needed <= set(dims):
            return tables
    raise ValueError(f"no rollup has the dimensions {sorted(needed)}")


def split_range(
    start: datetime, end: datetime, now: datetime | None = None
) -> list[tuple[str, datetime, datetime, int]]:
    """``[start, end)`` (whole hours) as signed pieces ``(table, from, to, sign)`` whose sum
    is the range: the daily table (``"day"``) for whole days, the hourly one (``"hour"``)
    for the hours at either edge. Counts add up, so an edge day mostly inside the range is
    read as its daily row minus the few hours outside it (sign -1): never more than 12
    hourly buckets per edge. A range that runs past ``now`` reads today from the daily
    table: nothing has happened after now, so today's row holds exactly its hours so far."""
    day = timedelta(days=1)
    if start >= end:
        return []
    if end <= start.replace(hour=0) + day:
        # Inside one day: its hours (or, past now, the day less the hours before start).
        lo = start.replace(hour=0)
        if now is not None and end > now and end - start > timedelta(hours=12):
            return [p for p in [("day", lo, lo + day, 1), ("hour", lo, start, -1)] if p[1] < p[2]]
        return [("hour", start, end, 1)]
    first_day = start if start.hour == 0 else (start + day).replace(hour=0)
    last_day = end.replace(hour=0)
    out: list[tuple[str, datetime, datetime, int]] = []
    if start < first_day:
        lead = first_day - day
        if first_day - start > timedelta(hours=12):
            out += [("day", lead, first_day, 1), ("hour", lead, start, -1)]
        else:
            out.append(("hour", start, first_day, 1))
    if first_day < last_day:
        out.append(("day", first_day, last_day, 1))
    if last_day < end:
        if now is not None and end > now:
            out.append(("day", last_day, last_day + day, 1))
        elif end - last_day > timedelta(hours=12):
            out += [("day", last_day, last_day + day, 1), ("hour", end, last_day + day, -1)]
        else:
            out.append(("hour", last_day, end, 1))
    return [p for p in out if p[1] < p[2]]


def _is_list(value: Any) -> bool:
    return isinstance(value, list | tuple | set | frozenset)


def _where(table: Any, piece: int, filters: Mapping[str, Any], arrays: bool) -> Any:
    """One piece's condition with named parameters (see :func:`_params`): the bucket in
    ``[lo<piece>, hi<piece>)`` and each filter given. A list filter is ``= ANY(array)``
    through the driver (``arrays``: one parameter whatever its length), ``IN`` otherwise."""
    cond = [
        table.c.bucket >= bindparam(f"lo{piece}", type_=table.c.bucket.type),
        table.c.bucket < bindparam(f"hi{piece}", type_=table.c.bucket.type),
    ]
    for name, value in filters.items():
        if value is None:
            continue
        col, key = table.c[name], f"f_{name}"
        if not _is_list(value):
            cond.append(col == bindparam(key, type_=col.type))
        elif arrays:
            cond.append(col == any_(bindparam(key, type_=ARRAY(col.type))))
        else:
            cond.append(col.in_(bindparam(key, expanding=True)))
    return and_(*cond)


def _params(
    pieces: Sequence[tuple[str, datetime, datetime, int]], filters: Mapping[str, Any]
) -> dict[str, Any]:
    """The values of :func:`_where`'s parameters."""
    out: dict[str, Any] = {}
    for i, (_grain, lo, hi, _sign) in enumerate(pieces):
        out[f"lo{i}"], out[f"hi{i}"] = lo, hi
    for name, value in filters.items():
        if value is not None:
            out[f"f_{name}"] = list(value) if _is_list(value) else value
    return out


def _filter_shape(filters: Mapping[str, Any]) -> tuple[tuple[str, bool], ...]:
    return tuple((k, _is_list(v)) for k, v in sorted(filters.items()) if v is not None)


#: The driver's SQL and parameter order per statement shape: a handful per process.
_SQL: dict[tuple[Any, ...], tuple[str, tuple[str, ...]]] = {}


async def _rows(
    db: Database,
    shape: tuple[Any, ...],
    build: Callable[[bool], Statement],
    params: Mapping[str, Any],
) -> list[Sequence[Any]]:
    """The rows of ``build(arrays)`` with ``params``, on a connection of its own: through
    the driver on PostgreSQL, its SQL compiled once per ``shape``; else through SQLAlchemy."""
    async with direct_reads.driver(db) as driver:
        if driver is None:
            async with db.connect() as conn:
                return [tuple(r) for r in await conn.execute(build(False), dict(params))]
        cached = _SQL.get(shape)
        if cached is None:
            cached = _SQL[shape] = direct_reads.compile_sql(db, build(True))
        sql, order = cached
        got: list[Sequence[Any]] = await driver.fetch(sql, *(params[k] for k in order))
        return got


async def counts(
    db: Database,
    start: datetime,
    end: datetime,
    by: Sequence[str],
    filters: Mapping[str, Any] | None = None,
    *,
    now: datetime | None = None,
    per_type: bool = False,
) -> list[tuple[Any, ...]]:
    """Sums of ``count`` and ``value_sum`` over ``[start, end)`` grouped by the dimensions
    ``by`` (e.g. ``("event", "channel")``): rows ``(*by, count, value_sum)``. ``now``: see
    :func:`split_range`. ``per_type``: from the per-type counts (see the module's doc)."""
    filters = filters or {}
    tables = _TYPES if per_type else _tables(_COUNTS, by, filters)
    return await _summed(db, start, end, by, filters, tables, counts=True, now=now)


async def latency(
    db: Database,
    start: datetime,
    end: datetime,
    by: Sequence[str],
    filters: Mapping[str, Any] | None = None,
    *,
    now: datetime | None = None,
) -> list[tuple[Any, ...]]:
    """Histogram counts over ``[start, end)``: rows ``(*by, le, count)``."""
    filters = filters or {}
    tables = _tables(_LATENCY, by, filters)
    return await _summed(db, start, end, (*by, "le"), filters, tables, counts=False, now=now)


async def _summed(
    db: Database,
    start: datetime,
    end: datetime,
    by: Sequence[str],
    filters: Mapping[str, Any],
    tables: Grains,
    *,
    counts: bool,
    now: datetime | None = None,
) -> list[tuple[Any, ...]]:
    pieces = _coalesced(split_range(start, end, now))
    if not pieces:
        return []

    def build(arrays: bool) -> Statement:
        # Every piece of the range in ONE statement (a round trip, not one per piece),
        # each piece's sums times its sign, added up per key by the database: the rows
        # answered are the range's, not each piece's (thousands per type and template
        # over a day, each to add up in Python).
        parts = []
        for i, (grain, _lo, _hi, sign) in enumerate(pieces):
            t = tables[grain]
            sums = [func.sum(t.c.count)] + ([func.sum(t.c.value_sum)] if counts else [])
            parts.append(
                select(
                    *[t.c[name].label(name) for name in by],
                    *[(literal_column(str(sign)) * s).label(f"s{j}") for j, s in enumerate(sums)],
                )
                .where(_where(t, i, filters, arrays))
                .group_by(*[t.c[name] for name in by])
            )
        u = (parts[0] if len(parts) == 1 else union_all(*parts)).subquery()
        keys = [u.c[name] for name in by]
        net = func.sum(u.c.s0)
        # A key whose hours outside the range were all it had nets to zero: not a row.
        return (
            select(*keys, net, *([func.sum(u.c.s1)] if counts else []))
            .group_by(*keys)
            .having(net != literal_column("0"))
        )

    shape = (
        "summed",
        tuple((tables[grain].name, sign) for grain, _lo, _hi, sign in pieces),
        tuple(by),
        counts,
        _filter_shape(filters),
    )
    n = len(by)
    rows = await _rows(db, shape, build, _params(pieces, filters))
    return [(*r[:n], round(r[n]), *[float(v or 0) for v in r[n + 1 :]]) for r in rows]


def _coalesced(
    pieces: list[tuple[str, datetime, datetime, int]],
) -> list[tuple[str, datetime, datetime, int]]:
    """Adjacent pieces of the same table and sign as one (e.g. the whole days and today)."""
    out: list[tuple[str, datetime, datetime, int]] = []
    for piece in sorted(pieces, key=lambda p: (p[0], p[3], p[1])):
        last = out[-1] if out else None
        if last is not None and last[0] == piece[0] and last[3] == piece[3] and last[2] == piece[1]:
            out[-1] = (last[0], last[1], piece[2], last[3])
        else:
            out.append(piece)
    return out


async def series(
    db: Database,
    start: datetime,
    end: datetime,
    grain: str,
    filters: Mapping[str, Any],
    *,
    by: Sequence[str] = ("event",),
) -> list[Sequence[Any]]:
    """Counts per bucket of ``grain`` (``hour`` or ``day``) over ``[start, end)``:
    rows ``(bucket, *by, count, value_sum)``."""
    t = _tables(_COUNTS, by, filters)[grain]

    def build(arrays: bool) -> Statement:
        return (
            select(t.c.bucket, *[t.c[n] for n in by], func.sum(t.c.count), func.sum(t.c.value_sum))
            .where(_where(t, 0, filters, arrays))
            .group_by(t.c.bucket, *[t.c[n] for n in by])
            .order_by(t.c.bucket)
        )

    shape = ("series", t.name, tuple(by), _filter_shape(filters))
    return await _rows(db, shape, build, _params([(grain, start, end, 1)], filters))


async def latency_series(
    db: Database,
    start: datetime,
    end: datetime,
    grain: str,
    filters: Mapping[str, Any],
    *,
    by: Sequence[str] = (),
) -> list[Sequence[Any]]:
    """Histogram counts per bucket: rows ``(bucket, *by, le, count)``."""
    t = _tables(_LATENCY, by, filters)[grain]
    cols = [t.c[n] for n in by]

    def build(arrays: bool) -> Statement:
        return (
            select(t.c.bucket, *cols, t.c.le, func.sum(t.c.count))
            .where(_where(t, 0, filters, arrays))
            .group_by(t.c.bucket, *cols, t.c.le)
            .order_by(t.c.bucket)
        )

    shape = ("latency_series", t.name, tuple(by), _filter_shape(filters))
    return await _rows(db, shape, build, _params([(grain, start, end, 1)], filters))


async def parts(
    db: Database,
    edges: Sequence[datetime],
    grain: str,
    filters: Mapping[str, Any],
    *,
    by: Sequence[str],
    latency: bool = False,
) -> list[Sequence[Any]]:
    """Sums over consecutive periods of ``grain`` buckets, ``[edges[i], edges[i+1])``
    (``edges`` increasing): rows ``(i, *by, count, value_sum)``, or with ``latency``
    histogram counts ``(i, *by, le, count)``. The database adds up the buckets of each
    period: a few rows per period and key, where :func:`series` answers one per bucket
    (the health score's windows span 50 hours and 14 days: thousands of rows to add up
    in Python, milliseconds of CPU each time)."""
    t = _tables(_LATENCY if latency else _COUNTS, by, filters)[grain]
    keys = [*by, "le"] if latency else list(by)
    n = len(edges) - 1

    def build(arrays: bool) -> Statement:
        # The period's number is worked out in a subquery and grouped on outside: GROUP
        # BY an expression with parameters would not match the same one in the SELECT.
        # The numbers are literals: they are the same for every call of this shape.
        whens: list[tuple[Any, Any]] = [
            (t.c.bucket < bindparam(f"e{i}", type_=t.c.bucket.type), literal_column(str(i - 1)))
            for i in range(1, n)
        ]
        part = case(*whens, else_=literal_column(str(n - 1))) if whens else literal_column("0")
        values = [t.c.count] if latency else [t.c.count, t.c.value_sum]
        inner = (
            select(part.label("part"), *[t.c[k] for k in keys], *values)
            .where(_where(t, 0, filters, arrays))
            .subquery()
        )
        sums = [func.sum(inner.c.count)] + ([] if latency else [func.sum(inner.c.value_sum)])
        cols = [inner.c.part, *[inner.c[k] for k in keys]]
        return select(*cols, *sums).group_by(*cols)

    shape = ("parts", t.name, tuple(keys), n, latency, _filter_shape(filters))
    params = _params([(grain, edges[0], edges[-1], 1)], filters)
    params.update({f"e{i}": edges[i] for i in range(1, n)})
    return await _rows(db, shape, build, params)
