"""The rollup follower on both databases: each event folded exactly once, in whatever order
and grouping events arrive (late, out of order, interleaved with folding), equal to a
recomputation from the raw events; on PostgreSQL also when transactions commit out of id
order; retention deletes raw events and keeps rollups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from clarion.domain.events import event_row
from clarion.domain.rollup import COUNT_DIMS, fold
from clarion.domain.types import EventType
from clarion.services.container import Services
from clarion.store import events as event_store
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

T0 = datetime(2026, 11, 1, tzinfo=UTC)
_KINDS = [
    EventType.ACCEPTED,
    EventType.DELIVERED,
    EventType.SENT,
    EventType.FAILED,
    EventType.READ,
    EventType.SEEN,
    EventType.CONVERTED,
    EventType.SUPPRESSED,
]
_TABLES = (
    event_counts_hourly,
    event_counts_daily,
    latency_hourly,
    latency_daily,
    event_totals_hourly,
    event_totals_daily,
    event_types_hourly,
    event_types_daily,
    latency_channels_hourly,
    latency_channels_daily,
)


async def _reset(services: Services) -> None:
    async with services.db.begin() as conn:
        for table in (*_TABLES, analytics_cursor, events):
            await conn.execute(table.delete())


def _event(
    i: int, kind: EventType, minutes: int, channel: str | None, ms: int | None
) -> dict[str, Any]:
    return event_row(
        kind,
        T0 + timedelta(minutes=minutes),
        user_id=f"u{i % 3}",
        notification_id=i,
        dims={"ntype": f"t{i % 2}", "template": "simple", "priority": "normal"},
        channel=channel,
        provider="smtp" if channel == "email" else None,
        reason="timeout" if kind == EventType.FAILED else None,
        latency_ms=ms,
        value=2.5 if kind == EventType.CONVERTED else None,
    )


async def _tables(services: Services) -> dict[str, set[tuple[Any, ...]]]:
    out = {}
    async with services.db.connect() as conn:
        for t in _TABLES:
            rows = await conn.execute(select(t))
            out[t.name] = {_norm(tuple(r)) for r in rows}
    return out


def _norm(row: tuple[Any, ...]) -> tuple[Any, ...]:
    first = row[0]
    if isinstance(first, datetime):  # SQLite hands back naive UTC
        first = first.replace(tzinfo=UTC) if first.tzinfo is None else first.astimezone(UTC)
    return (first, *(float(v) if isinstance(v, float) else v for v in row[1:]))


async def _recomputed(services: Services) -> dict[str, set[tuple[Any, ...]]]:
    async with services.db.connect() as conn:
        raw = [r._mapping for r in await conn.execute(select(events))]
    inc = fold(raw)
    counts = lambda d: {(*k, int(c), float(v)) for k, (c, v) in d.items()}  # noqa: E731
    lat = lambda d: {(*k, n) for k, n in d.items()}  # noqa: E731
    full = {
        "event_counts_hourly": counts(inc.hourly),
        "event_counts_daily": counts(inc.daily),
        "latency_hourly": lat(inc.latency_hourly),
        "latency_daily": lat(inc.latency_daily),
    }
    return {**full, **_narrowed(full)}


def _narrowed(full: dict[str, set[tuple[Any, ...]]]) -> dict[str, set[tuple[Any, ...]]]:
    """The narrow rollups, summed here from the full ones: totals keep (event, channel,
    provider, reason); per type, the channel of accepted and the reason of delivered or
    sent only; latency per (metric, channel)."""

    def summed(rows: set[tuple[Any, ...]], key: Any, sums: int) -> set[tuple[Any, ...]]:
        out: dict[tuple[Any, ...], list[Any]] = {}
        for r in rows:
            slot = out.setdefault(key(r), [0] * sums)
            for i, v in enumerate(r[-sums:]):
                slot[i] += v
        return {(*k, *v) for k, v in out.items()}

    def total(r: tuple[Any, ...]) -> tuple[Any, ...]:
        return (r[0], r[1], r[3], r[6], r[7])

    def per_type(r: tuple[Any, ...]) -> tuple[Any, ...]:
        channel = r[3] if r[1] == "accepted" else ""
        reason = r[7] if r[1] in ("delivered", "sent") else ""
        return (r[0], r[1], r[2], r[4], r[5], channel, reason)

    def channel(r: tuple[Any, ...]) -> tuple[Any, ...]:
        return (r[0], r[1], r[2], r[5])

    out = {}
    for grain in ("hourly", "daily"):
        counts = full[f"event_counts_{grain}"]
        out[f"event_totals_{grain}"] = summed(counts, total, 2)
        out[f"event_types_{grain}"] = summed(counts, per_type, 2)
        out[f"latency_channels_{grain}"] = summed(full[f"latency_{grain}"], channel, 1)
    return out


_step = st.one_of(
    st.tuples(
        st.just("write"),
        st.lists(
            st.tuples(
                st.sampled_from(_KINDS),
                st.integers(0, 60 * 24 * 3),  # any time in three days: late and out of order
                st.sampled_from([None, "in_app", "email", "webhook"]),
                st.one_of(st.none(), st.integers(0, 10**7)),
            ),
            min_size=1,
            max_size=8,
        ),
    ),
    st.tuples(st.just("fold"), st.integers(1, 7)),
)


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(_step, min_size=1, max_size=10))
async def test_rollups_equal_a_recomputation_from_raw_events(
    services: Services, steps: list[Any]
) -> None:
    await _reset(services)
    services.rollups.page = 3  # small pages: many cursor moves per example
    n = 0
    for step in steps:
        if step[0] == "write":
            rows = []
            for kind, minutes, channel, ms in step[1]:
                rows.append(_event(n, kind, minutes, channel, ms))
                n += 1
            async with services.db.begin() as conn:
                await event_store.append(conn, rows)
        else:
            for _ in range(step[1]):
                await services.rollups.step()
    await services.rollups.catch_up()
    assert await services.rollups.step() == 0  # caught up: nothing folded twice
    assert await _tables(services) == await _recomputed(services)


async def test_a_transaction_committing_late_is_folded_once(services: Services) -> None:
    """PostgreSQL: an event whose transaction started first (smaller id) but commits after
    a later one was folded is still folded, once. On SQLite writers are serial."""
    await _reset(services)
    services.rollups.page = 100
    if services.db.is_sqlite:
        async with services.db.begin() as conn:
            await event_store.append(conn, [_event(1, EventType.ACCEPTED, 0, None, None)])
        assert await services.rollups.catch_up() == 1
        return
    engine = services.db.engine
    slow = await engine.connect()
    txn = await slow.begin()
    await event_store.append(slow, [_event(1, EventType.ACCEPTED, 0, None, None)])
    async with services.db.begin() as conn:  # starts later, commits first
        await event_store.append(conn, [_event(2, EventType.ACCEPTED, 1, None, None)])
    # Not past the running transaction: the later one waits for it, nothing is folded.
    assert await services.rollups.step() == 0
    await txn.commit()
    await slow.close()
    await services.rollups.catch_up()
    async with services.db.connect() as conn:
        total = (await conn.execute(select(func.sum(event_counts_hourly.c.count)))).scalar()
    assert total == 2
    assert await _tables(services) == await _recomputed(services)


async def test_retention_deletes_raw_events_and_keeps_rollups(services: Services) -> None:
    await _reset(services)
    now = datetime.now(UTC)
    old = [
        {**_event(i, EventType.ACCEPTED, 0, None, None), "created_at": now - timedelta(days=100)}
        for i in range(7)
    ]
    new = [{**_event(i, EventType.ACCEPTED, 0, None, None), "created_at": now} for i in range(3)]
    async with services.db.begin() as conn:
        await event_store.append(conn, old + new)
    await services.rollups.catch_up()
    assert await services.rollups.expire(now, force=True) == 7
    assert await services.rollups.expire(now, force=True) == 0
    async with services.db.connect() as conn:
        raw = (await conn.execute(select(func.count()).select_from(events))).scalar()
        kept = (await conn.execute(select(func.sum(event_counts_daily.c.count)))).scalar()
    assert raw == 3 and kept == 10


def test_count_dimensions_are_the_tables_keys() -> None:
    keys = [c.name for c in event_counts_hourly.primary_key.columns]
    assert keys == ["bucket", *COUNT_DIMS]


async def test_counts_over_any_range_equal_the_raw_events_in_it(services: Services) -> None:
    """Reads combine daily rows, hourly rows and daily rows less the hours outside the
    range: every whole-hour range gives exactly the count of its raw events."""
    from clarion.domain.rollup import weight
    from clarion.store import rollup_reads as analytics_store

    await _reset(services)
    rows = [
        _event(i, _KINDS[i % len(_KINDS)], (i * 37) % (60 * 24 * 3), "email", 10)
        for i in range(600)
    ]
    async with services.db.begin() as conn:
        await event_store.append(conn, rows)
    await services.rollups.catch_up()
    hour = timedelta(hours=1)
    for s, e in [(0, 72), (2, 70), (5, 30), (13, 47), (20, 23), (1, 2), (23, 49), (0, 24)]:
        start, end = T0 + s * hour, T0 + e * hour
        got = {
            ev: n for ev, n, _ in await analytics_store.counts(services.db, start, end, ("event",))
        }
        want: dict[str, int] = {}
        for r in rows:
            if start <= r["created_at"] < end:
                want[r["type"]] = want.get(r["type"], 0) + weight(r)
        assert got == want, (s, e)


async def test_sums_per_period_equal_the_raw_events_in_each(services: Services) -> None:
    """The health score's read: the sums of the buckets between consecutive edges, each
    period its own rows, hourly and daily, counts and latency."""
    from clarion.domain.rollup import weight
    from clarion.store import rollup_reads as analytics_store

    await _reset(services)
    rows = [
        _event(i, _KINDS[i % len(_KINDS)], (i * 37) % (60 * 24 * 3), "email", 10 + i)
        for i in range(600)
    ]
    async with services.db.begin() as conn:
        await event_store.append(conn, rows)
    await services.rollups.catch_up()
    hour, day = timedelta(hours=1), timedelta(days=1)
    cases = [
        ("hour", [T0 + h * hour for h in (1, 5, 6, 30, 49)]),
        ("day", [T0, T0 + day, T0 + 3 * day]),
    ]
    for grain, edges in cases:
        got = {
            (int(part), ev): int(n)
            for part, ev, n, _ in await analytics_store.parts(
                services.db, edges, grain, {}, by=("event",)
            )
        }
        want: dict[tuple[int, str], int] = {}
        for r in rows:
            for i in range(len(edges) - 1):
                if edges[i] <= r["created_at"] < edges[i + 1]:
                    want[(i, r["type"])] = want.get((i, r["type"]), 0) + weight(r)
        assert got == want, grain
        lat = await analytics_store.parts(
            services.db, edges, grain, {"metric": "delivered"}, by=("channel",), latency=True
        )
        got_lat: dict[tuple[int, int], int] = {}
        for part, channel, le, n in lat:
            assert channel == "email"
            got_lat[(int(part), int(le))] = got_lat.get((int(part), int(le)), 0) + int(n)
        want_lat: dict[tuple[int, int], int] = {}
        for i in range(len(edges) - 1):
            for _ch, le, n in await analytics_store.latency(
                services.db, edges[i], edges[i + 1], ("channel",), {"metric": "delivered"}
            ):
                want_lat[(i, int(le))] = want_lat.get((i, int(le)), 0) + int(n)
        assert want_lat and got_lat == want_lat, grain
