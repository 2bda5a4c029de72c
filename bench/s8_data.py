"""S8's data: a plausible mix of events over 90 days, loaded into PostgreSQL (``COPY``)
or SQLite (``executemany``) and folded by the real rollup follower. Also used by the
dashboard scenario (``bench/s_dashboard.py``), which measures pages over the same events.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from bench.common import drop_db, fresh_db
from clarion.domain.events import event_row
from clarion.domain.types import EventType
from clarion.services.analytics_rollups import RollupFollower
from clarion.store.db import Database
from clarion.store.migrate import upgrade_sync

#: The PostgreSQL database S8 measures (and ``prepare`` leaves loaded).
DB = "clarion_bench_s8"
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


# --- loading (before measuring, or ahead of it) ---------------------------------------


def load_postgres(plain: str, total: int, now: datetime) -> dict[str, Any]:
    url = plain.replace("postgresql://", "postgresql+asyncpg://")
    upgrade_sync(url)
    out: dict[str, Any] = {"seed": asyncio.run(seed_postgres(plain, total, now))}
    print(f"  postgres seed: {out['seed']}", flush=True)
    out["fold"] = asyncio.run(fold(url, total))
    print(f"  postgres fold: {out['fold']}", flush=True)
    asyncio.run(_vacuum_rollups(plain))
    return out


def load_sqlite(path: str, total: int, now: datetime) -> dict[str, Any]:
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
    state["postgres"] = load_postgres(fresh_db(DB), pg_total, now)
    state["sqlite"] = load_sqlite(str(PREPARED / "clarion.db"), sq_total, now)
    (PREPARED / "state.json").write_text(json.dumps(state))
    return state


def clean() -> None:
    drop_db(DB)
    (PREPARED / "clarion.db").unlink(missing_ok=True)
    (PREPARED / "state.json").unlink(missing_ok=True)


def prepared_state(quick: bool) -> dict[str, Any] | None:
    if not os.environ.get("CLARION_BENCH_S8_PREPARED"):
        return None
    state: dict[str, Any] = json.loads((PREPARED / "state.json").read_text())
    if state["quick"] != quick:
        raise RuntimeError("the prepared S8 data is of the other size (--quick or not)")
    state["postgres"]["prepared_minutes_before"] = state["sqlite"]["prepared_minutes_before"] = (
        round((datetime.now(UTC) - datetime.fromisoformat(state["now"])).total_seconds() / 60, 1)
    )
    return state
