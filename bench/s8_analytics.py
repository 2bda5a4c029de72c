"""S8 analytics: the analytics endpoints over 90 days of events, and what keeping the
rollups costs ingest.

1. Seed ``events`` with a plausible mix (10,000,000 rows on PostgreSQL, 1,000,000 on
   SQLite; quick: 1,000,000 / 200,000) over the last 90 days, time-ordered as they
   arrive: PostgreSQL by ``COPY`` (asyncpg ``copy_records_to_table``, without ``txid`` so
   its server default applies; secondary indexes dropped for the load and recreated
   from their own definitions after it), SQLite by ``executemany`` in big transactions.
   Then fold them with the real ``RollupFollower.catch_up`` and report its rate.
2. ``clarion serve`` on that database with ``CLARION_ANALYTICS_ROLLUPS=false`` (nothing
   folds in the background while we measure) and an admin API key.
3. Each endpoint alone, sequentially on one kept-alive connection: warm-up, then N
   requests, p50/p99. The export streams 30 days of NDJSON, read to the end.
   In the same run, for scale: the smallest query that answers from the rollups (one
   GROUP BY on the daily or hourly table), the same count straight from ``events``
   (what the rollups save), an authenticated trivial GET through the same server (the
   HTTP floor), and the database's own export rate (``COPY ... TO STDOUT``).
4. S1's single-process PostgreSQL ingest with rollups on and off, ABBA order, fresh
   database each time: the cost of the follower on the send path.

    PYTHONPATH=$PWD .venv/bin/python bench/run.py --only s8 [--quick]

or load first and measure later (see ``prepare``)::

    PYTHONPATH=$PWD .venv/bin/python -m bench.s8_analytics prepare [--quick]
    CLARION_BENCH_S8_PREPARED=1 PYTHONPATH=$PWD .venv/bin/python bench/run.py --only s8
    PYTHONPATH=$PWD .venv/bin/python -m bench.s8_analytics clean
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench import s1_ingest
from bench.common import (
    PG_BASE,
    Clarion,
    Procs,
    clarion_env,
    drop_db,
    fresh_db,
    percentiles,
    ratio,
    start_clarion,
)
from clarion.domain.events import event_row
from clarion.domain.types import EventType
from clarion.services.analytics_rollups import RollupFollower
from clarion.store.db import Database
from clarion.store.migrate import upgrade_sync

DB = "clarion_bench_s8"
S1_DB = "clarion_bench_s8_s1"
API = "/api/v1/notifications/analytics"
USERS = 50_000
DAYS = 90

# --- the data -----------------------------------------------------------------------------

#: The columns written (``id`` from the sequence, ``txid`` from its default).
COLUMNS = (
    "type",
    "notification_id",
    "user_id",
    "channel",
    "data",
    "created_at",
    "ntype",
    "template",
    "template_key",
    "priority",
    "provider",
    "reason",
    "latency_ms",
    "value",
    "experiment",
    "variant",
)

#: 20 notification types, most common first (Zipf-like weights), each with the template
#: kind and key it is rendered from (8 keys; some types share one) and its priority.
NTYPES: list[tuple[str, str | None, str | None, str]] = [
    ("comment", "stored", "comment", "normal"),
    ("mention", "stored", "mention", "high"),
    ("follow", "stored", "social", "low"),
    ("like", "stored", "social", "low"),
    ("order_shipped", "stored", "order", "normal"),
    ("order_delivered", "stored", "order", "normal"),
    ("payment_failed", "stored", "billing", "urgent"),
    ("invoice", "stored", "billing", "normal"),
    ("password_reset", "stored", "security", "urgent"),
    ("login_alert", "stored", "security", "high"),
    ("weekly_digest", "stored", "digest", "low"),
    ("news", "inline", None, "low"),
    ("promo", "inline", None, "low"),
    ("reminder", "stored", "reminder", "normal"),
    ("task_assigned", "stored", "reminder", "normal"),
    ("task_due", "stored", "reminder", "high"),
    ("invite", "stored", "social", "normal"),
    ("system", "inline", None, "high"),
    ("welcome", "stored", "comment", "normal"),
    ("survey", "inline", None, "low"),
]
NTYPE_WEIGHTS = [1 / (i + 1) ** 0.9 for i in range(len(NTYPES))]

PROVIDERS = {
    "in_app": [None],
    "email": ["smtp", "ses"],
    "push": ["webpush"],
    "webhook": ["webhook"],
    "sms": ["twilio", "vonage"],
}
#: Median delivery latency (ms) per channel, accepted -> delivered/sent.
DELIVERY_MS = {"email": 1800, "push": 350, "webhook": 90, "sms": 1400, "in_app": 20}

# (event, [(channel, weight)], [(reason, weight)] or None, latency median ms or None, share %)
_Weighted = list[tuple[Any, float]]
_MIX: list[tuple[str, _Weighted, _Weighted | None, str | None, float]] = [
    ("accepted", [("in_app", 0.8), (None, 0.2)], None, None, 35.0),
    ("held", [(None, 0.6), ("email", 0.3), ("sms", 0.1)],
     [("batched", 0.5), ("scheduled", 0.3), ("quiet_hours", 0.2)], None, 2.0),
    ("suppressed", [("email", 0.5), ("push", 0.2), ("sms", 0.2), ("in_app", 0.1)],
     [("preference", 0.5), ("quiet_hours", 0.2), ("rate_limited", 0.1), ("no_contact", 0.15),
      ("duplicate", 0.05)], None, 2.5),
    ("sent", [("email", 0.8), ("sms", 0.2)], None, "delivery", 9.0),
    ("delivered", [("push", 0.45), ("webhook", 0.35), ("email", 0.15), ("sms", 0.05)], None,
     "delivery", 21.0),
    ("failed", [("email", 0.3), ("push", 0.3), ("webhook", 0.3), ("sms", 0.1)],
     [("timeout", 0.3), ("http_5xx", 0.3), ("http_4xx", 0.15), ("connection", 0.15),
      ("rate_limited", 0.1)], None, 1.5),
    ("dead", [("email", 0.3), ("push", 0.3), ("webhook", 0.3), ("sms", 0.1)],
     [("permanent", 0.5), ("http_4xx", 0.3), ("timeout", 0.2)], None, 0.3),
    ("seen", [("in_app", 1.0)], None, "seen", 13.0),
    ("read", [("in_app", 1.0)], None, "read", 9.0),
    ("clicked", [("in_app", 1.0)], None, None, 3.5),
    ("archived", [("in_app", 1.0)], None, None, 1.5),
    ("converted", [(None, 1.0)], None, None, 0.5),
    ("unsubscribed", [("email", 0.8), ("sms", 0.2)], None, None, 0.2),
]  # fmt: skip


def _combos() -> tuple[list[tuple[Any, ...]], list[float]]:
    """Every (event, channel, provider, reason, latency kind) with its share."""
    combos: list[tuple[Any, ...]] = []
    weights: list[float] = []
    for kind, channels, reasons, lat, share in _MIX:
        for channel, cw in channels:
            provs = PROVIDERS.get(channel or "", [None])
            if kind in ("accepted", "held", "suppressed", "seen", "read", "clicked", "archived"):
                provs = [None]  # no provider is involved in these
            for provider in provs:
                for reason, rw in reasons or [(None, 1.0)]:
                    combos.append((kind, channel, provider, reason, lat))
                    weights.append(share * cw * rw / len(provs))
    return combos, weights


def _check_columns() -> None:
    """The rows here have exactly the columns the domain's builder gives events."""
    row = event_row(EventType.ACCEPTED, datetime.now(UTC), user_id="u")
    missing = set(row) ^ set(COLUMNS)
    if missing:
        raise RuntimeError(f"events columns changed: {sorted(missing)}")


def generate(
    total: int, now: datetime, chunk: int, *, sqlite: bool, seed: int = 8
) -> Iterator[list[tuple[Any, ...]]]:
    """``total`` event rows in ``COLUMNS`` order over [now - 90 days, now), time-ordered
    with a little jitter (late events), in chunks. SQLite gets its own storage form
    (``YYYY-MM-DD HH:MM:SS.ffffff`` UTC text, JSON as text), as SQLAlchemy writes it."""
    _check_columns()
    rnd = random.Random(seed)
    combos, weights = _combos()
    cum = list(_accumulate(weights))
    ncum = list(_accumulate(NTYPE_WEIGHTS))
    start = now - timedelta(days=DAYS) + timedelta(minutes=5)
    span = (now - timedelta(seconds=1) - start).total_seconds()
    lognorm, randrange, rand = rnd.lognormvariate, rnd.randrange, rnd.random
    done = 0
    while done < total:
        n = min(chunk, total - done)
        kinds = rnd.choices(combos, cum_weights=cum, k=n)
        types = rnd.choices(NTYPES, cum_weights=ncum, k=n)
        rows: list[tuple[Any, ...]] = []
        append = rows.append
        for j in range(n):
            i = done + j
            kind, channel, provider, reason, lat = kinds[j]
            ntype, template, template_key, priority = types[j]
            at = start + timedelta(seconds=i * span / total - 3 * rand())
            # Some heavy users: the square skews towards small ids.
            user = f"u{int(USERS * rand() ** 2)}"
            nid = max(1, int(i * 0.35) - randrange(2000))
            latency = None
            if lat == "delivery":
                latency = int(lognorm(0, 0.8) * DELIVERY_MS[channel])
            elif lat == "seen":
                latency = int(lognorm(0, 1.2) * 600_000)
            elif lat == "read":
                latency = int(lognorm(0, 1.4) * 1_800_000)
            data = None
            if kind in ("sent", "delivered", "failed", "dead"):
                data = json.dumps({"delivery_id": nid * 3 + 1, "attempt": 1})
            elif kind == "clicked":
                data = '{"action_id": "open"}'
            value = round(20 + 80 * rand(), 2) if kind == "converted" else None
            if sqlite:
                at = at.strftime("%Y-%m-%d %H:%M:%S.%f")
            append(
                (
                    kind,
                    nid,
                    user,
                    channel,
                    data,
                    at,
                    ntype,
                    template,
                    template_key,
                    priority,
                    provider,
                    reason,
                    latency,
                    value,
                    None,
                    None,
                )
            )
        done += n
        yield rows


def _accumulate(ws: list[float]) -> Iterator[float]:
    t = 0.0
    for w in ws:
        t += w
        yield t


# --- loading and folding ------------------------------------------------------------------


async def seed_postgres(url: str, total: int, now: datetime) -> dict[str, Any]:
    """COPY ``total`` events; secondary indexes are rebuilt after the load from their own
    definitions (the same indexes the migration made, built once instead of row by row)."""
    conn = await asyncpg.connect(url)
    try:
        defs = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'events' AND "
            "indexname NOT IN (SELECT conname FROM pg_constraint "
            "WHERE conrelid = 'events'::regclass)"
        )
        for d in defs:
            await conn.execute(f'DROP INDEX "{d["indexname"]}"')
        t0 = time.perf_counter()
        gen_s = 0.0
        it = generate(total, now, 100_000, sqlite=False)
        while True:
            g0 = time.perf_counter()
            rows = next(it, None)
            gen_s += time.perf_counter() - g0
            if rows is None:
                break
            await conn.copy_records_to_table("events", records=rows, columns=list(COLUMNS))
        copy_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        for d in defs:
            await conn.execute(d["indexdef"])
        index_s = time.perf_counter() - t1
        t2 = time.perf_counter()
        await conn.execute("VACUUM ANALYZE events")
        no_txid = await conn.fetchval("SELECT count(*) FROM events WHERE txid IS NULL")
        count = await conn.fetchval("SELECT count(*) FROM events")
        return {
            "events": count,
            "events_without_txid": no_txid,
            "load_seconds": round(copy_s, 1),
            "of_which_generating_rows_seconds": round(gen_s, 1),
            "index_build_seconds": round(index_s, 1),
            "vacuum_analyze_seconds": round(time.perf_counter() - t2, 1),
            "load_events_per_s": round(total / copy_s),
            "indexes_rebuilt": [d["indexname"] for d in defs],
        }
    finally:
        await conn.close()


def seed_sqlite(path: str, total: int, now: datetime) -> dict[str, Any]:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        sql = f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
        t0 = time.perf_counter()
        for rows in generate(total, now, 100_000, sqlite=True):
            conn.execute("BEGIN")
            conn.executemany(sql, rows)
            conn.execute("COMMIT")
        load_s = time.perf_counter() - t0
        conn.execute("ANALYZE")
        count = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        return {
            "events": count,
            "load_seconds": round(load_s, 1),
            "load_events_per_s": round(total / load_s),
        }
    finally:
        conn.close()


async def fold(url: str, total: int) -> dict[str, Any]:
    """The real follower, caught up from zero: events folded per second."""
    db = Database(url)
    try:
        follower = RollupFollower(db, retention_days=DAYS)
        t0, c0 = time.perf_counter(), time.process_time()
        folded = await follower.catch_up(within=3600)
        seconds = time.perf_counter() - t0
        cpu = time.process_time() - c0
    finally:
        await db.dispose()
    return {
        "events_folded": folded,
        "all_folded": folded == total,
        "fold_seconds": round(seconds, 1),
        "fold_events_per_s": round(folded / seconds) if seconds else None,
        "follower_cpu_seconds": round(cpu, 1),
    }


# --- measuring ----------------------------------------------------------------------------


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def endpoint_cases(now: datetime) -> dict[str, tuple[str, dict[str, str], str]]:
    """name -> (path, query, target class). Ranges end at the next whole hour."""
    to = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    d30 = {"from": _iso(to - timedelta(days=30)), "to": _iso(to)}
    h24 = {"from": _iso(to - timedelta(hours=24)), "to": _iso(to)}
    return {
        "dashboard_30d": (f"{API}/dashboard", d30, "30d"),
        "dashboard_24h": (f"{API}/dashboard", h24, "24h"),
        "user_metrics_30d": (f"{API}/metrics/{{user}}", d30, "30d"),
        # Without ``window``: the score of all windows, which a process computes at most
        # once a second (so most of these are that answer again); with it, computed afresh.
        "health_score": (f"{API}/health-score", {}, "30d"),
        "health_score_fresh": (f"{API}/health-score", {"window": "24h"}, "30d"),
        "trends_30d_by_day": (
            f"{API}/trends",
            {"metric": "delivered", "interval": "day", **d30},
            "30d",
        ),
        "trends_24h_by_hour": (
            f"{API}/trends",
            {"metric": "delivered", "interval": "hour", **h24},
            "24h",
        ),
    }


def timed_gets(
    client: httpx.Client, path: str, params: dict[str, str], warmup: int, n: int
) -> dict[str, Any]:
    """``warmup`` then ``n`` sequential GETs, each read to its last byte. ``{user}`` in the
    path becomes a random user (the same users for every run: a fixed seed)."""
    rnd = random.Random(13)
    times: list[float] = []
    statuses: dict[str, int] = {}
    first_error = None
    size = 0
    for k in range(warmup + n):
        url = path.replace("{user}", f"u{rnd.randrange(USERS)}")
        t0 = time.perf_counter()
        r = client.get(url, params=params)
        body = r.content
        dt = time.perf_counter() - t0
        if r.status_code != 200 and first_error is None:
            first_error = f"{r.status_code}: {body[:300]!r}"
        if k >= warmup:
            statuses[str(r.status_code)] = statuses.get(str(r.status_code), 0) + 1
            times.append(dt)
            size = len(body)
    out: dict[str, Any] = {"requests": n, "status": statuses, **percentiles(times)}
    out["response_bytes"] = size
    if first_error:
        out["first_error"] = first_error
    return out


def export(client: httpx.Client, params: dict[str, str]) -> dict[str, Any]:
    """Stream the NDJSON export to its end; events/s over the whole response."""
    lines = size = 0
    t0 = time.perf_counter()
    first_byte = None
    with client.stream(
        "GET", f"{API}/events", params={**params, "format": "ndjson"}, timeout=600
    ) as r:
        status = r.status_code
        for chunk in r.iter_bytes():
            if first_byte is None:
                first_byte = time.perf_counter() - t0
            lines += chunk.count(b"\n")
            size += len(chunk)
    seconds = time.perf_counter() - t0
    return {
        "status": status,
        "events": lines,
        "bytes": size,
        "seconds": round(seconds, 2),
        "first_byte_ms": None if first_byte is None else round(first_byte * 1000, 1),
        "events_per_s": round(lines / seconds) if seconds and status == 200 else None,
    }


def measure_endpoints(server: Clarion, now: datetime, quick: bool) -> dict[str, Any]:
    warmup, n = (10, 60) if quick else (20, 200)
    headers = {"Authorization": f"Bearer {server.key}"}
    out: dict[str, Any] = {"warmup_requests": warmup, "measured_requests": n}
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
        # The HTTP floor: an authenticated trivial read through the same server and client.
        out["http_floor_unread_count"] = timed_gets(
            client, "/api/v1/notifications/unread-count", {"user_id": "u1"}, warmup, n
        )
        for name, (path, params, _cls) in endpoint_cases(now).items():
            out[name] = timed_gets(client, path, params, warmup, n)
            print(f"  {name}: {json.dumps(out[name])[:300]}", flush=True)
        d30 = endpoint_cases(now)["dashboard_30d"][1]
        out["export_30d_ndjson"] = export(client, d30)
        print(f"  export: {out['export_30d_ndjson']}", flush=True)
    return out


async def pg_references(url: str, now: datetime, n: int) -> dict[str, Any]:
    """The same questions asked of PostgreSQL directly, on one open connection."""
    to = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    d30, h24 = to - timedelta(days=30), to - timedelta(hours=24)
    conn = await asyncpg.connect(url)
    try:

        async def timed(sql: str, *args: Any, reps: int) -> dict[str, Any]:
            times = []
            for _ in range(reps + 3):
                t0 = time.perf_counter()
                await conn.fetch(sql, *args)
                times.append(time.perf_counter() - t0)
            return {"runs": reps, **percentiles(times[3:])}

        floor = "SELECT event, sum(count) FROM {t} WHERE bucket >= $1 AND bucket < $2 GROUP BY 1"
        raw = (
            "SELECT type, count(*) FROM events WHERE created_at >= $1 AND created_at < $2 "
            "GROUP BY 1"
        )
        out = {
            "rollup_floor_30d": await timed(floor.format(t="event_counts_daily"), d30, to, reps=n),
            "rollup_floor_24h": await timed(floor.format(t="event_counts_hourly"), h24, to, reps=n),
            "raw_count_30d": await timed(raw, d30, to, reps=3),
            "raw_count_24h": await timed(raw, h24, to, reps=10),
            "rollup_rows": {
                t: await conn.fetchval(f"SELECT count(*) FROM {t}")
                for t in ("event_counts_hourly", "event_counts_daily", "latency_hourly")
            },
        }
        # The database's own export rate: the same 30 days as text rows to a null sink.
        sink = _Null()
        t0 = time.perf_counter()
        await conn.copy_from_query(
            "SELECT * FROM events WHERE created_at >= $1 AND created_at < $2",
            d30,
            to,
            output=sink.write,
        )
        seconds = time.perf_counter() - t0
        out["copy_export_30d"] = {
            "events": sink.lines,
            "seconds": round(seconds, 2),
            "events_per_s": round(sink.lines / seconds),
        }
        return out
    finally:
        await conn.close()


class _Null:
    def __init__(self) -> None:
        self.lines = 0

    async def write(self, data: bytes) -> None:
        self.lines += data.count(b"\n")


def sqlite_references(path: str, now: datetime, n: int) -> dict[str, Any]:
    to = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    fmt = "%Y-%m-%d %H:%M:%S.%f"
    d30 = (to - timedelta(days=30)).strftime(fmt)
    h24 = (to - timedelta(hours=24)).strftime(fmt)
    end = to.strftime(fmt)
    conn = sqlite3.connect(path)
    try:

        def timed(sql: str, *args: Any, reps: int) -> dict[str, Any]:
            times = []
            for _ in range(reps + 3):
                t0 = time.perf_counter()
                conn.execute(sql, args).fetchall()
                times.append(time.perf_counter() - t0)
            return {"runs": reps, **percentiles(times[3:])}

        floor = "SELECT event, sum(count) FROM {t} WHERE bucket >= ? AND bucket < ? GROUP BY 1"
        raw = (
            "SELECT type, count(*) FROM events WHERE created_at >= ? AND created_at < ? GROUP BY 1"
        )
        out = {
            "rollup_floor_30d": timed(floor.format(t="event_counts_daily"), d30, end, reps=n),
            "rollup_floor_24h": timed(floor.format(t="event_counts_hourly"), h24, end, reps=n),
            "raw_count_30d": timed(raw, d30, end, reps=3),
            "raw_count_24h": timed(raw, h24, end, reps=10),
        }
        t0 = time.perf_counter()
        rows = 0
        for _ in conn.execute(
            "SELECT * FROM events WHERE created_at >= ? AND created_at < ?", (d30, end)
        ):
            rows += 1
        seconds = time.perf_counter() - t0
        out["fetch_export_30d"] = {
            "events": rows,
            "seconds": round(seconds, 2),
            "events_per_s": round(rows / seconds) if seconds else None,
        }
        return out
    finally:
        conn.close()


def verdicts(measured: dict[str, Any], now: datetime, backend: str) -> dict[str, Any]:
    """Each endpoint's p99 against its target (PostgreSQL: 50 ms for 30 days, 20 ms for 24
    hours; SQLite: 100 ms), and the export against 100,000 events/s."""
    out: dict[str, Any] = {}
    for name, (_p, _q, cls) in endpoint_cases(now).items():
        m = measured.get(name, {})
        target = 100 if backend == "sqlite" else (50 if cls == "30d" else 20)
        p99 = m.get("p99_ms")
        ok = m.get("status", {}).get("200", 0) == m.get("requests") and p99 is not None
        out[name] = {
            "p99_ms": p99,
            "target_p99_ms": target,
            "verdict": "not measured" if not ok else ("met" if p99 <= target else "missed"),
        }
    rate = measured.get("export_30d_ndjson", {}).get("events_per_s")
    out["export_30d_ndjson"] = {
        "events_per_s": rate,
        "target_events_per_s": 100_000,
        "verdict": "not measured" if rate is None else ("met" if rate >= 100_000 else "missed"),
    }
    return out


def compare(measured: dict[str, Any], refs: dict[str, Any]) -> dict[str, Any]:
    """Ratios: endpoint p50 over (HTTP floor p50 + the one-query rollup floor p50): how many
    "smallest possible answers" one call costs; raw count p50 over the endpoint p50: how
    much the rollups save against counting events."""

    def ok_p50(name: str) -> float | None:
        m = measured.get(name, {})
        return m.get("p50_ms") if m.get("status", {}).get("200") == m.get("requests") else None

    http = ok_p50("http_floor_unread_count")
    out: dict[str, Any] = {}
    for name in ("dashboard_30d", "dashboard_24h", "trends_30d_by_day", "trends_24h_by_hour"):
        span = "30d" if "30d" in name else "24h"
        p50 = ok_p50(name)
        floor = refs.get(f"rollup_floor_{span}", {}).get("p50_ms")
        raw = refs.get(f"raw_count_{span}", {}).get("p50_ms")
        out[name] = {
            "over_floor_p50": ratio(
                p50, None if http is None or floor is None else http + floor, 2
            ),
            "raw_count_over_endpoint_p50": ratio(raw, p50, 2),
        }
    db_rate = (refs.get("copy_export_30d") or refs.get("fetch_export_30d") or {}).get(
        "events_per_s"
    )
    rate = measured.get("export_30d_ndjson", {}).get("events_per_s")
    out["export_over_database_rate"] = ratio(rate, db_rate, 3)
    return out


# --- the scenario -------------------------------------------------------------------------


def postgres(procs: Procs, quick: bool) -> dict[str, Any]:
    total = 1_000_000 if quick else 10_000_000
    prepared = _prepared(quick)
    plain = f"{PG_BASE}/{DB}" if prepared else fresh_db(DB)
    url = plain.replace("postgresql://", "postgresql+asyncpg://")
    try:
        if prepared:
            now = datetime.fromisoformat(prepared["now"])
            out: dict[str, Any] = {"events": total, **prepared["postgres"]}
        else:
            now = datetime.now(UTC)
            out = {"events": total, **_load_postgres(plain, total, now)}
        env = clarion_env(url, CLARION_ANALYTICS_ROLLUPS="false")
        server = start_clarion(procs, env, log_name="s8-postgres")
        try:
            out["endpoints"] = measure_endpoints(server, now, quick)
        finally:
            procs.stop(server.proc)
        out["references"] = asyncio.run(pg_references(plain, now, 60 if quick else 200))
        out["verdicts"] = verdicts(out["endpoints"], now, "postgres")
        out["ratios"] = compare(out["endpoints"], out["references"])
        return out
    finally:
        if not prepared:  # prepared data stays for another run: ``clean`` drops it
            drop_db(DB)


def _load_postgres(plain: str, total: int, now: datetime) -> dict[str, Any]:
    url = plain.replace("postgresql://", "postgresql+asyncpg://")
    upgrade_sync(url)
    out: dict[str, Any] = {"seed": asyncio.run(seed_postgres(plain, total, now))}
    print(f"  postgres seed: {out['seed']}", flush=True)
    out["fold"] = asyncio.run(fold(url, total))
    print(f"  postgres fold: {out['fold']}", flush=True)
    asyncio.run(_vacuum_rollups(plain))
    return out


async def _vacuum_rollups(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        for t in (
            *("event_counts_hourly", "event_counts_daily", "latency_hourly", "latency_daily"),
            *("event_totals_hourly", "event_totals_daily", "event_types_hourly"),
            *("event_types_daily", "latency_channels_hourly", "latency_channels_daily"),
        ):
            await conn.execute(f"VACUUM ANALYZE {t}")
    finally:
        await conn.close()


def sqlite(procs: Procs, quick: bool) -> dict[str, Any]:
    total = 200_000 if quick else 1_000_000
    prepared = _prepared(quick)
    with tempfile.TemporaryDirectory(prefix="clarion-bench-s8-") as tmp:
        path = str(PREPARED / "clarion.db") if prepared else str(Path(tmp) / "clarion.db")
        url = f"sqlite+aiosqlite:///{path}"
        if prepared:
            now = datetime.fromisoformat(prepared["now"])
            out: dict[str, Any] = {"events": total, **prepared["sqlite"]}
        else:
            now = datetime.now(UTC)
            out = {"events": total, **_load_sqlite(path, total, now)}
        env = clarion_env(url, redis=False, CLARION_ANALYTICS_ROLLUPS="false")
        server = start_clarion(procs, env, log_name="s8-sqlite")
        try:
            out["endpoints"] = measure_endpoints(server, now, quick)
        finally:
            procs.stop(server.proc)
        out["references"] = sqlite_references(path, now, 60 if quick else 200)
        out["verdicts"] = verdicts(out["endpoints"], now, "sqlite")
        out["ratios"] = compare(out["endpoints"], out["references"])
        return out


def _load_sqlite(path: str, total: int, now: datetime) -> dict[str, Any]:
    url = f"sqlite+aiosqlite:///{path}"
    upgrade_sync(url)
    out: dict[str, Any] = {"seed": seed_sqlite(path, total, now)}
    print(f"  sqlite seed: {out['seed']}", flush=True)
    out["fold"] = asyncio.run(fold(url, total))
    print(f"  sqlite fold: {out['fold']}", flush=True)
    conn = sqlite3.connect(path)
    conn.execute("ANALYZE")
    conn.close()
    return out


# --- loading ahead of measuring ------------------------------------------------------------
#: Where ``prepare`` leaves the SQLite database and what it loaded (the PostgreSQL one is
#: ``DB``). On a shared machine the load (minutes of COPY and folding) can run while
#: nobody measures, and ``CLARION_BENCH_S8_PREPARED=1 bench/run.py --only s8`` then only
#: measures (as often as wanted: the data stays until ``python -m bench.s8_analytics
#: clean``); the ranges are taken from the time of the load, so they hold the same events.
PREPARED = Path(tempfile.gettempdir()) / "clarion-bench-s8"


def prepare(quick: bool) -> dict[str, Any]:
    PREPARED.mkdir(exist_ok=True)
    (PREPARED / "clarion.db").unlink(missing_ok=True)
    now = datetime.now(UTC)
    pg_total, sq_total = (1_000_000, 200_000) if quick else (10_000_000, 1_000_000)
    state: dict[str, Any] = {"now": now.isoformat(), "quick": quick}
    state["postgres"] = _load_postgres(fresh_db(DB), pg_total, now)
    state["sqlite"] = _load_sqlite(str(PREPARED / "clarion.db"), sq_total, now)
    (PREPARED / "state.json").write_text(json.dumps(state))
    return state


def clean() -> None:
    drop_db(DB)
    (PREPARED / "clarion.db").unlink(missing_ok=True)
    (PREPARED / "state.json").unlink(missing_ok=True)


def _prepared(quick: bool) -> dict[str, Any] | None:
    if not os.environ.get("CLARION_BENCH_S8_PREPARED"):
        return None
    state: dict[str, Any] = json.loads((PREPARED / "state.json").read_text())
    if state["quick"] != quick:
        raise RuntimeError("the prepared S8 data is of the other size (--quick or not)")
    state["postgres"]["prepared_minutes_before"] = state["sqlite"]["prepared_minutes_before"] = (
        round((datetime.now(UTC) - datetime.fromisoformat(state["now"])).total_seconds() / 60, 1)
    )
    return state


def rollup_cost(procs: Procs, quick: bool) -> dict[str, Any]:
    """S1's single-process PostgreSQL ingest (same function, same parameters) with the
    follower on and off, each on a fresh database, in pairs of alternating order (on off,
    off on, ...) so that a drift of the machine during the run weighs on both sides."""
    seconds = 4 if quick else 15
    order = ["true", "false", "false", "true"] + ([] if quick else ["true", "false"])
    runs: list[dict[str, Any]] = []
    for rollups in order:
        plain = fresh_db(S1_DB)
        url = plain.replace("postgresql://", "postgresql+asyncpg://")
        load = os.getloadavg()[0]
        try:
            env = clarion_env(url, CLARION_ANALYTICS_ROLLUPS=rollups)
            r = s1_ingest._ingest(procs, env, seconds, None)
            lag = asyncio.run(_unfolded(plain))
        finally:
            drop_db(S1_DB)
        run = {
            "rollups": rollups == "true",
            "ok_per_s": r["ok_per_s"],
            "p50_ms": r["p50_ms"],
            "p99_ms": r["p99_ms"],
            "cpu_ms_per_request": r["cpu_ms_per_request"],
            "loadavg_1min_before": round(load, 2),
            **lag,
        }
        print(f"  s1 rollups={rollups}: {run}", flush=True)
        runs.append(run)
    return {
        "setup": "bench/s1_ingest.py _ingest: clarion serve, 1 process, PostgreSQL + Redis, "
        f"32 connections closed loop, {seconds} s after 2 s warm-up, a fresh database per "
        f"run; order {', '.join('on' if o == 'true' else 'off' for o in order)}",
        **cost_summary(runs),
    }


def cost_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Throughput with rollups on over off (means, and per adjacent pair), CPU per send,
    and a verdict that says "inconclusive" when the pairs disagree by more than the
    target itself (the machine's noise is then bigger than what is being measured)."""
    on = [r for r in runs if r["rollups"]]
    off = [r for r in runs if not r["rollups"]]
    on_rate = statistics.mean(r["ok_per_s"] for r in on)
    off_rate = statistics.mean(r["ok_per_s"] for r in off)
    cost = round(1 - on_rate / off_rate, 4) if off_rate else None
    pairs = []
    for a, b in zip(runs[0::2], runs[1::2], strict=False):
        on_run, off_run = (a, b) if a["rollups"] else (b, a)
        pairs.append(ratio(on_run["ok_per_s"], off_run["ok_per_s"], 4))
    spread = round(max(pairs) - min(pairs), 4) if len(pairs) > 1 else None
    cpu_on = statistics.mean(r["cpu_ms_per_request"] for r in on)
    cpu_off = statistics.mean(r["cpu_ms_per_request"] for r in off)
    if cost is None:
        verdict = "not measured"
    elif spread is not None and spread > 0.05:
        verdict = "inconclusive"
    else:
        verdict = "met" if cost <= 0.05 else "missed"
    return {
        "runs": runs,
        "rollups_on_per_s": round(on_rate, 1),
        "rollups_off_per_s": round(off_rate, 1),
        "on_over_off": ratio(on_rate, off_rate, 4),
        "on_over_off_per_pair": pairs,
        "pair_spread": spread,
        "cost_fraction": cost,
        "cpu_ms_per_request_on": round(cpu_on, 3),
        "cpu_ms_per_request_off": round(cpu_off, 3),
        "cpu_cost_fraction": round(cpu_on / cpu_off - 1, 4) if cpu_off else None,
        "target_cost_fraction": 0.05,
        "verdict": verdict,
    }


async def _unfolded(url: str) -> dict[str, Any]:
    """Events written, and events the follower had not folded when the server stopped."""
    conn = await asyncpg.connect(url)
    try:
        total = await conn.fetchval("SELECT count(*) FROM events")
        cur = await conn.fetchrow("SELECT txid, event_id FROM analytics_cursor LIMIT 1")
        if cur is None:
            left = total
        else:
            left = await conn.fetchval(
                "SELECT count(*) FROM events WHERE (txid, id) > ($1::bigint, $2::bigint)",
                cur["txid"],
                cur["event_id"],
            )
        return {"events_written": total, "events_unfolded_at_stop": left}
    finally:
        await conn.close()


def run(procs: Procs, quick: bool, profile: bool) -> dict[str, Any]:
    parts = os.environ.get("CLARION_BENCH_S8_PARTS", "postgres,sqlite,s1").split(",")
    result: dict[str, Any] = {
        "setup": "events seeded by COPY (PostgreSQL) / executemany (SQLite) over 90 days, "
        "folded by RollupFollower.catch_up; clarion serve (1 process) with "
        "CLARION_ANALYTICS_ROLLUPS=false; sequential GETs on one kept-alive connection",
        "users": USERS,
        "days": DAYS,
        "targets": {
            "postgres_30d_p99_ms": 50,
            "postgres_24h_p99_ms": 20,
            "sqlite_p99_ms": 100,
            "export_events_per_s": 100_000,
            "rollup_cost_fraction": 0.05,
        },
    }
    for name, fn in (("postgres", postgres), ("sqlite", sqlite), ("s1", rollup_cost)):
        if name not in parts:
            continue
        print(f"  -- s8 {name}", flush=True)
        try:
            result["s1_rollup_cost" if name == "s1" else name] = fn(procs, quick)
        except Exception as exc:  # one part failing keeps the others' figures
            import traceback

            result[f"{name}_error"] = f"{exc!r}: {traceback.format_exc()[-1500:]}"
            print(result[f"{name}_error"], flush=True)
    return result


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["clean"]:
        clean()
    elif sys.argv[1:2] == ["prepare"]:
        print(json.dumps(prepare("--quick" in sys.argv[2:]), default=str)[:2000])
    else:
        sys.exit("usage: python -m bench.s8_analytics prepare [--quick] | clean")
