"""S1 ingest: ``POST /notifications``, one user each, closed loop, on PostgreSQL + Redis and
on the embedded SQLite mode; then bulk sends (``user_ids`` of 1,000) on PostgreSQL.

Ratios beside the absolute figures: server CPU per send (against bare Starlette's CPU per
request), the capacity at p99 <= 25 ms (open loop, stepped: bench/capacity.py) and the
latency at half of it, and for bulk sends the rows written per second against a raw
multi-row insert of the same rows through the same driver (``_raw_insert``)."""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
import uuid
from typing import Any

import asyncpg

from bench import capacity, profiling
from bench.common import (
    Procs,
    Usage,
    clarion_env,
    drop_db,
    fresh_db,
    loadgen,
    postgres_cpu_seconds,
    server_pids,
    start_clarion,
)

DB = "clarion_bench_s1"


def _one(url: str, key: str) -> dict[str, Any]:
    """The loadgen request of a single send to a random one of 10,000 users."""
    return {
        "method": "POST",
        "url": f"{url}/api/v1/notifications",
        "headers": {"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        "body": '{"user_id": "{u}", "type": "follow", "title": "Bo followed you {i}",'
        ' "message": "Say hi!"}',
    }


def _pg_cpu_delta(cpu0: float | None) -> float | None:
    cpu1 = postgres_cpu_seconds()
    return None if cpu0 is None or cpu1 is None else cpu1 - cpu0


def _ingest(
    procs: Procs,
    env: dict[str, str],
    seconds: float,
    profile_name: str | None,
    objective_p99_ms: float | None = None,
    quick: bool = True,
) -> dict[str, Any]:
    """Closed-loop throughput and server CPU per send; with ``objective_p99_ms``, also the
    open-loop capacity at that p99 and the latency at half of it (same server)."""
    server = start_clarion(procs, env)
    one = {
        "name": "one",
        "mode": "closed",
        "concurrency": 32,
        "warmup": 0,
        "duration": 2,
        "max_requests": int(seconds * 20_000),
        "users": 10_000,
        "requests": [_one(server.url, server.key)],
    }
    # The warm-up is a run of its own, so the measured run's CPU is that of the sends it
    # counts.
    loadgen(procs, {"jobs": [one]})
    spy = profiling.start(procs, server.proc.pid, profile_name, seconds) if profile_name else None
    usage = Usage(server_pids(server.proc.pid)).start()
    pg0 = postgres_cpu_seconds() if "postgresql" in env["CLARION_DATABASE_URL"] else None
    res = loadgen(procs, {"jobs": [{**one, "duration": seconds}]})["jobs"]["one"]
    usage.stop()
    pg_cpu = _pg_cpu_delta(pg0)
    out = {**res, **usage.as_dict()}
    sends = max(1, res["ok"])
    out["cpu_ms_per_request"] = round(1000 * usage.cpu / max(1, res["requests"]), 3)
    out["server_cpu_us_per_send"] = round(1e6 * usage.cpu / sends, 1)
    if pg_cpu is not None:
        out["postgres_cpu_us_per_send"] = round(1e6 * pg_cpu / sends, 1)
    if spy is not None:
        out["profile"] = profiling.finish(procs, spy, profile_name or "s1")
    if objective_p99_ms is not None:
        measure = capacity.rate_measure(
            procs, _one(server.url, server.key), seconds=2 if quick else 3
        )
        closed = res["ok_per_s"] or 500.0
        cap = capacity.search(
            measure,
            objective_p99_ms=objective_p99_ms,
            start=closed / 2,
            max_rate=closed * 1.5,
            growth=1.4,
            resolution=1.1,
            max_steps=6 if quick else 9,
        )
        out["capacity"] = cap
        half = None if cap["rate_per_s"] is None else cap["rate_per_s"] / 2
        out["at_half_capacity"] = capacity.at_rate(measure, half)
    procs.stop(server.proc)
    return out


def _bulk(
    procs: Procs, env: dict[str, str], pg_url: str, seconds: float, raw_seconds: float
) -> dict[str, Any]:
    server = start_clarion(procs, env)
    headers = {"Authorization": f"Bearer {server.key}", "Content-Type": "application/json"}
    ids = json.dumps([f"{{u}}-{n}" for n in range(1000)])
    job = {
        "name": "bulk",
        "mode": "closed",
        "concurrency": 2,
        "warmup": 1,
        "duration": seconds,
        "max_requests": 2_000,
        "users": 20,
        "requests": [
            {
                "method": "POST",
                "url": f"{server.url}/api/v1/notifications",
                "headers": headers,
                "body": '{"user_ids": ' + ids + ', "type": "news", "title": "Dark mode {i}"}',
            }
        ],
    }
    before = asyncio.run(_table_rows(pg_url))
    usage = Usage(server_pids(server.proc.pid)).start()
    res = loadgen(procs, {"jobs": [job]}, timeout=seconds + 120)["jobs"]["bulk"]
    usage.stop()
    procs.stop(server.proc)
    after = asyncio.run(_table_rows(pg_url))
    grown = {t: after[t] - before.get(t, 0) for t in after if after[t] != before.get(t, 0)}
    raw = asyncio.run(_raw_insert(pg_url, raw_seconds))
    notifications_per_s = res["ok_per_s"] * 1000
    return {
        **res,
        **usage.as_dict(),
        "recipients_per_request": 1000,
        "notifications_per_s": round(notifications_per_s, 1),
        "cpu_us_per_notification": round(1e6 * usage.cpu / max(1, res["ok"] * 1000), 2),
        # Rows the send's own transaction writes (from the rows of one send, users counted
        # by the upsert included) and what every table grew by over the run (warm-up
        # sends included, and whatever the server wrote after them).
        "rows_per_notification": raw["rows_per_notification"],
        "rows_per_s": round(notifications_per_s * raw["rows_per_notification"], 1),
        "raw_insert_rows_per_s": raw["rows_per_s"],
        "ratio_to_raw_insert": (
            round(notifications_per_s * raw["rows_per_notification"] / raw["rows_per_s"], 3)
            if raw["rows_per_s"]
            else None
        ),
        "table_rows_grown": grown,
        "raw_insert": raw,
    }


async def _table_rows(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        names = await conn.fetch(
            "SELECT relname FROM pg_class"
            " WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"
        )
        return {r[0]: int(await conn.fetchval(f'SELECT count(*) FROM "{r[0]}"')) for r in names}
    finally:
        await conn.close()


async def _columns(conn: Any, table: str) -> list[tuple[str, str]]:
    """(name, SQL type) of the columns an insert gives; those the database fills from a
    function default (ids from a sequence, the events' ``txid``) are left to it, as
    Clarion's inserts leave them."""
    rows = await conn.fetch(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), pg_get_expr(d.adbin, d.adrelid)"
        " FROM pg_attribute a LEFT JOIN pg_attrdef d"
        " ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
        " WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped"
        " ORDER BY a.attnum",
        table,
    )
    return [(r[0], r[1]) for r in rows if not (r[2] and "(" in r[2])]


def _unnest(table: str, cols: list[tuple[str, str]], tail: str = "") -> str:
    casts = ", ".join(f"${i}::{t}[]" for i, (_, t) in enumerate(cols, 1))
    names = ", ".join(c for c, _ in cols)
    return f"INSERT INTO {table} ({names}) SELECT * FROM unnest({casts}){tail}"


async def _raw_insert(url: str, seconds: float, connections: int = 2) -> dict[str, Any]:
    """The rows of the last bulk send written again, as many times as fit in ``seconds``,
    each time in one transaction with ONE unnest insert per table through asyncpg, over
    ``connections`` connections (the bulk run's client connections): the users' counting
    upsert, the notifications (ids back from ``RETURNING``), their deliveries (fresh ids)
    and events, each pointing at the new notification ids. Each connection has its own
    users (the send's, renamed), created by its warm-up transaction, so later upserts
    update existing rows as Clarion's do."""
    conn = await asyncpg.connect(url)
    try:
        title = await conn.fetchval("SELECT title FROM notifications ORDER BY id DESC LIMIT 1")
        notes = await conn.fetch("SELECT * FROM notifications WHERE title = $1 ORDER BY id", title)
        nids = [r["id"] for r in notes]
        dels = await conn.fetch(
            "SELECT * FROM deliveries WHERE notification_id = ANY($1::bigint[])", nids
        )
        evs = await conn.fetch(
            "SELECT * FROM events WHERE notification_id = ANY($1::bigint[])", nids
        )
        cols = {t: await _columns(conn, t) for t in ("notifications", "deliveries", "events")}
    finally:
        await conn.close()
    at = {nid: i for i, nid in enumerate(nids)}
    users = sorted({r["user_id"] for r in notes})
    now = notes[0]["created_at"]
    upsert = (
        "INSERT INTO users (user_id, data, unread_count, unseen_count, created_at, updated_at)"
        " SELECT * FROM unnest($1::varchar[], $2::json[], $3::int[], $4::int[],"
        " $5::timestamptz[], $6::timestamptz[])"
        " ON CONFLICT (user_id) DO UPDATE SET"
        " unread_count = users.unread_count + excluded.unread_count,"
        " unseen_count = users.unseen_count + excluded.unseen_count"
    )
    sql = {
        "notifications": _unnest("notifications", cols["notifications"], " RETURNING id"),
        "deliveries": _unnest("deliveries", cols["deliveries"]),
        "events": _unnest("events", cols["events"]),
    }

    def arrays(table: str, rows: list[Any], fixed: dict[str, list[Any]]) -> list[list[Any]]:
        return [fixed.get(c) or [r[c] for r in rows] for c, _ in cols[table]]

    def prepared(w: int) -> dict[str, Any]:
        """Everything but the new ids, built before the clock starts."""
        name = {u: f"raw{w}-{u}" for u in users}
        return {
            "users": [
                [name[u] for u in users],
                ["{}"] * len(users),
                [1] * len(users),
                [1] * len(users),
                [now] * len(users),
                [now] * len(users),
            ],
            "notifications": arrays(
                "notifications", notes, {"user_id": [name[r["user_id"]] for r in notes]}
            ),
            "deliveries": arrays(
                "deliveries", dels, {"user_id": [name[r["user_id"]] for r in dels]}
            ),
            "events": arrays("events", evs, {"user_id": [name[r["user_id"]] for r in evs]}),
        }

    del_cols = [c for c, _ in cols["deliveries"]]
    ev_cols = [c for c, _ in cols["events"]]

    async def send(c: Any, p: dict[str, Any]) -> None:
        async with c.transaction():
            await c.execute(upsert, *p["users"])
            # nextval runs row by row in unnest's order: ascending ids are the rows' order.
            got = sorted(r[0] for r in await c.fetch(sql["notifications"], *p["notifications"]))
            if dels:
                d = list(p["deliveries"])
                d[del_cols.index("id")] = [str(uuid.uuid4()) for _ in dels]
                d[del_cols.index("notification_id")] = [got[at[r["notification_id"]]] for r in dels]
                await c.execute(sql["deliveries"], *d)
            if evs:
                e = list(p["events"])
                e[ev_cols.index("notification_id")] = [got[at[r["notification_id"]]] for r in evs]
                await c.execute(sql["events"], *e)

    state = {"end": float("inf"), "sends": 0}
    warmed = [asyncio.Event() for _ in range(connections)]
    go = asyncio.Event()

    async def worker(w: int) -> None:
        c = await asyncpg.connect(url)
        try:
            p = prepared(w)
            await send(c, p)  # creates this connection's users, prepares the statements
            warmed[w].set()
            await go.wait()
            while time.perf_counter() < state["end"]:
                await send(c, p)
                state["sends"] += 1
        finally:
            warmed[w].set()
            await c.close()

    tasks = [asyncio.create_task(worker(w)) for w in range(connections)]
    for e in warmed:
        await e.wait()
    pg0 = postgres_cpu_seconds()
    started = time.perf_counter()
    state["end"] = started + seconds
    go.set()
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    pg_cpu = _pg_cpu_delta(pg0)
    rows_per_send = len(users) + len(notes) + len(dels) + len(evs)
    rows = rows_per_send * state["sends"]
    return {
        "method": "one transaction per send of the last bulk send's rows: users upsert, "
        "notifications RETURNING id, deliveries, events (one unnest insert each, asyncpg)",
        "connections": connections,
        "seconds": round(elapsed, 3),
        "sends": state["sends"],
        "rows_per_send": {
            "users": len(users),
            "notifications": len(notes),
            "deliveries": len(dels),
            "events": len(evs),
        },
        "rows_per_notification": round(rows_per_send / max(1, len(notes)), 3),
        "rows_per_s": round(rows / elapsed, 1),
        "postgres_cpu_us_per_row": None
        if pg_cpu is None
        else round(1e6 * pg_cpu / max(1, rows), 2),
    }


def run(procs: Procs, quick: bool, profile: bool) -> dict[str, Any]:
    seconds = 4 if quick else 15
    pg = fresh_db(DB)
    pg_async = pg.replace("postgresql://", "postgresql+asyncpg://")
    try:
        postgres = _ingest(
            procs,
            clarion_env(pg_async),
            seconds,
            "s1_ingest_postgres" if profile else None,
            objective_p99_ms=25,
            quick=quick,
        )
        # One process per core, as docs recommend for a 2-core machine (live updates
        # between the processes go over Redis).
        two = {**clarion_env(pg_async), "CLARION_WORKERS": "2"}
        postgres_2 = _ingest(procs, two, seconds, None)
        bulk = _bulk(procs, two, pg, seconds, raw_seconds=3 if quick else 5)
    finally:
        drop_db(DB)
    with tempfile.TemporaryDirectory(prefix="clarion-bench-") as tmp:
        sqlite = _ingest(
            procs,
            clarion_env(f"sqlite+aiosqlite:///{tmp}/clarion.db", redis=False),
            seconds,
            "s1_ingest_sqlite" if profile else None,
        )
    return {
        "setup": "clarion serve (1 process, embedded worker) on PostgreSQL + Redis, the same "
        "with --workers 2 (postgres_2_processes, bulk), and on SQLite without Redis; loadgen: "
        "32 connections, closed loop, 10,000 distinct users; postgres.capacity: open loop, "
        "stepped to the highest rate with p99 <= 25 ms (bench/capacity.py)",
        "postgres": postgres,
        "postgres_2_processes": postgres_2,
        "sqlite": sqlite,
        "bulk_postgres": bulk,
        "targets": {
            "postgres_per_s": 3000,
            "postgres_p99_ms": 25,
            "sqlite_per_s": 1500,
            "bulk_notifications_per_s": 50_000,
        },
    }
