"""S8 analytics: the analytics endpoints over 90 days of events, and what keeping the
rollups costs ingest.

1. Seed ``events`` (``bench/s8_data.py``) with a plausible mix (10,000,000 rows on
   PostgreSQL, 1,000,000 on SQLite; quick: 1,000,000 / 200,000) over the last 90 days,
   time-ordered as they arrive: PostgreSQL by ``COPY`` (asyncpg
   ``copy_records_to_table``, without ``txid`` so its server default applies; secondary
   indexes dropped for the load and recreated from their own definitions after it),
   SQLite by ``executemany`` in big transactions.
   Then fold them with the real ``RollupFollower.catch_up`` and report its rate.
2. ``clarion serve`` on that database with ``CLARION_ANALYTICS_ROLLUPS=false`` (nothing
   folds in the background while we measure) and an admin API key.
3. Each endpoint alone, sequentially on one kept-alive connection: warm-up, then N
   requests, p50/p99. The export streams 30 days of NDJSON, read to the end.
   In the same run, for scale: the smallest query that answers from the rollups (one
   GROUP BY on the daily or hourly table), the same count straight from ``events``
   (what the rollups save), an authenticated trivial GET through the same server (the
   HTTP floor), and the database's own export rate (``COPY ... TO STDOUT``).
4. What keeping the rollups costs S1 ingest (``bench/feature_cost.py``, shared with S9's
   assignment cost): S1's sends to a server with the follower running and to one with
   ``CLARION_ANALYTICS_ROLLUPS=false``, in alternating blocks of the same number of
   sends; the verdict is on the server's CPU per send, the follower's fold included.

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
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench import feature_cost
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
from bench.s8_data import (
    DAYS,
    DB,
    PREPARED,
    USERS,
    clean,
    load_postgres,
    load_sqlite,
    prepare,
    prepared_state,
)

# The dashboard scenario (bench/s_dashboard.py) loads S8's events with these.
from bench.s8_data import _vacuum_rollups as _vacuum_rollups
from bench.s8_data import fold as fold
from bench.s8_data import seed_postgres as seed_postgres

S1_DB = "clarion_bench_s8_s1"
API = "/api/v1/notifications/analytics"

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
    # 1,000 measured requests: the p99 is the tenth-slowest answer, not the second (as
    # with 200), so one stray pause of the shared machine does not make it.
    warmup, n = (10, 60) if quick else (20, 1000)
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
    prepared = prepared_state(quick)
    plain = f"{PG_BASE}/{DB}" if prepared else fresh_db(DB)
    url = plain.replace("postgresql://", "postgresql+asyncpg://")
    try:
        if prepared:
            now = datetime.fromisoformat(prepared["now"])
            out: dict[str, Any] = {"events": total, **prepared["postgres"]}
        else:
            now = datetime.now(UTC)
            out = {"events": total, **load_postgres(plain, total, now)}
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


def sqlite(procs: Procs, quick: bool) -> dict[str, Any]:
    total = 200_000 if quick else 1_000_000
    prepared = prepared_state(quick)
    with tempfile.TemporaryDirectory(prefix="clarion-bench-s8-") as tmp:
        path = str(PREPARED / "clarion.db") if prepared else str(Path(tmp) / "clarion.db")
        url = f"sqlite+aiosqlite:///{path}"
        if prepared:
            now = datetime.fromisoformat(prepared["now"])
            out: dict[str, Any] = {"events": total, **prepared["sqlite"]}
        else:
            now = datetime.now(UTC)
            out = {"events": total, **load_sqlite(path, total, now)}
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


def rollup_cost(procs: Procs, quick: bool) -> dict[str, Any]:
    """S1's sends with the rollup follower running (the default: in the serve process,
    next to its embedded worker) and with ``CLARION_ANALYTICS_ROLLUPS=false``
    (``bench/feature_cost.py``); after every block, the events the follower had not
    folded yet."""
    return feature_cost.measure(
        procs,
        quick,
        db=S1_DB,
        budget_pct=5.0,
        off_env={"CLARION_ANALYTICS_ROLLUPS": "false"},
        on_env={"CLARION_ANALYTICS_ROLLUPS": "true"},
        check=lambda url: asyncio.run(_unfolded(url)),
        feature="the analytics rollup follower",
    )


async def _unfolded(url: str) -> dict[str, Any]:
    """Events written so far, and those the follower has not folded (on "off": all)."""
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
        return {"events_written": total, "events_unfolded": left}
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
            out = fn(procs, quick)
            if name == "s1":
                result["rollup_cost"] = out
            else:
                result[name] = out
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
